use std::sync::Mutex as StdMutex;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use spanpipe_config::{ComponentId, load_str};

use super::*;

/// Records what reaches it; refuses while `refuse` is set.
#[derive(Default)]
struct Sink {
    got: StdMutex<Vec<Batch>>,
    refuse: AtomicBool,
}

#[async_trait]
impl Consumer for Sink {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        if self.refuse.load(Ordering::Relaxed) {
            return Err(ConsumeError::Refused {
                reason: "full".into(),
                retry_after: Duration::from_millis(10),
            });
        }
        self.got.lock().unwrap().push(batch);
        Ok(())
    }
}

impl Sink {
    fn items(&self) -> usize {
        self.got.lock().unwrap().iter().map(|b| b.items).sum()
    }
    fn batches(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

fn spans_batch(first_id: u64, n: u64) -> Batch {
    let spans = (0..n)
        .map(|i| Span {
            trace_id: vec![1; 16],
            span_id: (first_id + i).to_be_bytes().to_vec(),
            name: "s".into(),
            ..Default::default()
        })
        .collect();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Batch::new(Signal::Traces, req.encode_to_vec(), n as usize)
}

fn build(yaml: &str, sink: Arc<Sink>) -> Result<Arc<dyn Processor>, ConfigError> {
    let node = load_str("t.yaml", yaml)?;
    let ctx = BuildContext::new(
        ComponentId {
            kind: "batch".into(),
            name: None,
        },
        "processors.batch".into(),
    );
    BatchProcessorFactory.build(&ctx, &node, Signal::Traces, sink)
}

fn span_ids(sink: &Sink) -> Vec<u64> {
    let mut ids = Vec::new();
    for b in sink.got.lock().unwrap().iter() {
        spanpipe_core::wire::scan_traces(&b.payload, |_, s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s.span_id);
            ids.push(u64::from_be_bytes(a));
        })
        .unwrap();
    }
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn size_trigger_sends_one_merged_batch() {
    let sink = Arc::new(Sink::default());
    let p = build("send_batch_size: 10\ntimeout: 10s", sink.clone()).unwrap();
    p.start().await.unwrap();
    for i in 0..3 {
        p.consume(spans_batch(i * 4, 4)).await.unwrap();
    }
    assert_eq!(sink.batches(), 1, "12 spans >= 10 sends once");
    assert_eq!(sink.items(), 12);
    assert_eq!(span_ids(&sink), (0..12).collect::<Vec<_>>());
    p.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn timeout_flushes_partial_batch() {
    let sink = Arc::new(Sink::default());
    let p = build("send_batch_size: 100\ntimeout: 200ms", sink.clone()).unwrap();
    p.start().await.unwrap();
    p.consume(spans_batch(0, 3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sink.items(), 0);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(sink.items(), 3);
    p.shutdown().await;
}

#[tokio::test]
async fn max_size_cuts_at_span_boundaries() {
    let sink = Arc::new(Sink::default());
    let p = build(
        "send_batch_size: 5\nsend_batch_max_size: 5\ntimeout: 10s",
        sink.clone(),
    )
    .unwrap();
    p.start().await.unwrap();
    p.consume(spans_batch(0, 12)).await.unwrap();
    let sizes: Vec<usize> = sink.got.lock().unwrap().iter().map(|b| b.items).collect();
    assert_eq!(sizes, vec![5, 5, 2]);
    assert_eq!(span_ids(&sink), (0..12).collect::<Vec<_>>());
    p.shutdown().await;
}

#[tokio::test]
async fn max_size_cuts_a_batch_of_requests_only_where_a_request_crosses_the_limit() {
    let sink = Arc::new(Sink::default());
    let p = build(
        "send_batch_size: 5\nsend_batch_max_size: 5\ntimeout: 10s",
        sink.clone(),
    )
    .unwrap();
    p.start().await.unwrap();
    // Requests of 2, 2 and 4 spans, flushed together when the third arrives (8 spans): the first two go into the
    // first batch as they are, the third is cut to fill it ([2 + 2 + 1]) and its rest makes the second ([3]).
    let requests: Vec<Batch> = [(0, 2), (2, 2), (4, 4)]
        .iter()
        .map(|&(first, n)| spans_batch(first, n))
        .collect();
    let shared: Vec<bytes::Bytes> = requests[..2]
        .iter()
        .map(|b| b.payload.parts()[0].clone())
        .collect();
    for r in requests {
        p.consume(r).await.unwrap();
    }
    let got = sink.got.lock().unwrap().clone();
    let sizes: Vec<usize> = got.iter().map(|b| b.items).collect();
    assert_eq!(sizes, vec![5, 3]);
    assert_eq!(span_ids(&sink), (0..8).collect::<Vec<_>>());
    // The requests that fit went on as they were received.
    let first: Vec<*const u8> = got[0].payload.parts()[..2]
        .iter()
        .map(|b| b.as_ptr())
        .collect();
    assert_eq!(first, shared.iter().map(|b| b.as_ptr()).collect::<Vec<_>>());
    assert_eq!(got[0].payload.parts().len(), 3);
    p.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn refusal_refuses_only_the_filling_request_and_keeps_the_rest() {
    let sink = Arc::new(Sink::default());
    let p = build("send_batch_size: 10\ntimeout: 50ms", sink.clone()).unwrap();
    p.start().await.unwrap();
    p.consume(spans_batch(0, 6)).await.unwrap();
    sink.refuse.store(true, Ordering::Relaxed);
    // This request fills the batch; the pipeline refuses: it is refused, the first 6 spans are kept.
    let err = p.consume(spans_batch(100, 6)).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Refused { .. }));
    // While stalled, new data is refused at once.
    assert!(p.consume(spans_batch(200, 1)).await.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.items(), 0);
    sink.refuse.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(span_ids(&sink), (0..6).collect::<Vec<_>>());
    // Accepting again.
    p.consume(spans_batch(300, 10)).await.unwrap();
    assert_eq!(sink.items(), 16);
    p.shutdown().await;
}

#[tokio::test]
async fn shutdown_flushes_pending() {
    let sink = Arc::new(Sink::default());
    let p = build("send_batch_size: 100\ntimeout: 1h", sink.clone()).unwrap();
    p.start().await.unwrap();
    p.consume(spans_batch(0, 7)).await.unwrap();
    p.shutdown().await;
    assert_eq!(sink.items(), 7);
}

#[test]
fn config_errors_name_the_key() {
    let sink = Arc::new(Sink::default());
    let err = build("send_batch_size: 10\nsend_batch_max_size: 5", sink.clone())
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("processors.batch.send_batch_max_size"),
        "{err}"
    );
    assert!(err.to_string().contains("t.yaml:2"), "{err}");
    let err = build("timeout: 5 parsecs", sink.clone()).err().unwrap();
    assert!(err.to_string().contains("t.yaml:1"), "{err}");
    let err = build("send_batch_sise: 5", sink).err().unwrap();
    assert!(err.to_string().contains("send_batch_sise"), "{err}");
}
