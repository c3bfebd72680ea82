//! Routing into per-backend queues against real OTLP/gRPC receivers (spanpipe's own, in process): every span
//! reaches exactly one backend by trace id, and what a removed backend still holds is re-routed, not dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use spanpipe_core::{
    Batch, ConsumeError, Consumer, Receiver, ReceiverFactory, Signal, SignalConsumers,
};
use spanpipe_otlp::receiver::OtlpReceiverFactory;

use crate::test_util::{balancer, ctx, node};

/// What one in-process backend received: (trace id, span id) per span.
#[derive(Default)]
struct Sink(Mutex<Vec<(Vec<u8>, Vec<u8>)>>);

#[async_trait]
impl Consumer for Sink {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let req = batch
            .payload
            .decode::<ExportTraceServiceRequest>()
            .expect("decodes");
        let mut got = self.0.lock().unwrap();
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                for s in ss.spans {
                    got.push((s.trace_id, s.span_id));
                }
            }
        }
        Ok(())
    }
}

async fn backend() -> (String, Arc<Sink>, Arc<dyn Receiver>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("127.0.0.1:{port}");
    let r = OtlpReceiverFactory
        .build(
            &ctx(),
            &node(&format!(
                "protocols: {{ grpc: {{ endpoint: {endpoint} }} }}"
            )),
        )
        .expect("receiver");
    let sink = Arc::new(Sink::default());
    let mut consumers = SignalConsumers::default();
    consumers.set(Signal::Traces, sink.clone());
    r.start(consumers).await.expect("receiver starts");
    (endpoint, sink, r)
}

/// `traces` traces of `spans` spans each, trace ids spread like random ones.
fn batch(first: u64, traces: u64, spans: u64) -> Batch {
    let mut all = Vec::new();
    for t in first..first + traces {
        let mut trace_id = (t.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .to_be_bytes()
            .to_vec();
        trace_id.extend_from_slice(&t.to_be_bytes());
        for s in 0..spans {
            all.push(Span {
                trace_id: trace_id.clone(),
                span_id: (t * 100 + s + 1).to_be_bytes().to_vec(),
                name: "s".into(),
                ..Default::default()
            });
        }
    }
    let n = all.len();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: all,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Batch::new(Signal::Traces, req.encode_to_vec(), n)
}

async fn wait_for(total: usize, sinks: &[&Arc<Sink>]) -> bool {
    for _ in 0..500 {
        let n: usize = sinks.iter().map(|s| s.0.lock().unwrap().len()).sum();
        if n >= total {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_span_reaches_one_backend_by_trace_id() {
    let (e1, s1, r1) = backend().await;
    let (e2, s2, r2) = backend().await;
    let (e3, s3, r3) = backend().await;
    let b = balancer(
        "resolver: { static: { hostnames: [a] } }\nprotocol: { otlp: { tls: { insecure: true }, compression: none } }",
    );
    b.set_resolved(vec![e1.clone(), e2.clone(), e3.clone()])
        .await;
    for i in 0..20 {
        let first = i * 50;
        let routed = if i % 2 == 0 {
            batch(first, 50, 4)
        } else {
            // A batch of several received requests, as the `batch` processor makes them; the last part holds one
            // trace, so it goes to one backend whole.
            Batch::concat(vec![
                batch(first, 30, 4),
                batch(first + 30, 19, 4),
                batch(first + 49, 1, 4),
            ])
            .expect("parts")
        };
        b.route(&routed).await.expect("routed");
    }
    assert!(wait_for(4000, &[&s1, &s2, &s3]).await, "all spans arrive");
    let mut owner: BTreeMap<Vec<u8>, BTreeSet<usize>> = BTreeMap::new();
    let mut spans = BTreeSet::new();
    for (i, s) in [&s1, &s2, &s3].iter().enumerate() {
        let got = s.0.lock().unwrap();
        assert!(got.len() > 800, "backend {i} got {} spans", got.len());
        for (t, id) in got.iter() {
            owner.entry(t.clone()).or_default().insert(i);
            assert!(spans.insert(id.clone()), "span delivered twice");
        }
    }
    assert_eq!(spans.len(), 4000);
    assert!(owner.values().all(|b| b.len() == 1), "a trace split");
    b.shutdown().await;
    for r in [r1, r2, r3] {
        r.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_backends_queue_is_rerouted_not_dropped() {
    // A backend that accepts connections but never answers: its exports time out and stay queued (the connect
    // check finds it alive, so it is not ejected) until the resolver drops it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_ep = silent.local_addr().unwrap().to_string();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    let accept = tokio::spawn(async move {
        while let Ok((sock, _)) = silent.accept().await {
            h.lock().unwrap().push(sock);
        }
    });
    let (e2, s2, r2) = backend().await;
    let b = balancer(
        "resolver: { static: { hostnames: [a] } }\nprotocol: { otlp: { tls: { insecure: true }, compression: none, timeout: 300ms, retry_on_failure: { initial_interval: 100ms, max_interval: 200ms } } }",
    );
    b.set_resolved(vec![silent_ep.clone()]).await;
    for i in 0..10 {
        b.route(&batch(i * 10, 10, 3)).await.expect("queued");
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(s2.0.lock().unwrap().is_empty());
    assert!(
        b.is_member(&silent_ep),
        "an answering-nothing backend is not ejected"
    );
    b.set_resolved(vec![e2.clone()]).await;
    assert!(
        wait_for(300, &[&s2]).await,
        "the removed backend's 300 queued spans reach the new one: {}",
        s2.0.lock().unwrap().len()
    );
    let ids: BTreeSet<Vec<u8>> =
        s2.0.lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect();
    assert_eq!(ids.len(), 300);
    b.shutdown().await;
    r2.shutdown().await;
    accept.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backend_is_a_retryable_error_and_an_empty_request_is_fine() {
    let b = balancer("resolver: { static: { hostnames: [a] } }");
    let e = b.route(&batch(0, 1, 1)).await.unwrap_err();
    assert!(
        matches!(e, spanpipe_core::ExportError::Retryable { .. }),
        "{e:?}"
    );
    b.set_resolved(vec!["127.0.0.1:9".into()]).await;
    b.route(&Batch::new(Signal::Traces, bytes::Bytes::new(), 0))
        .await
        .expect("nothing to route");
    let e = b
        .route(&Batch::new(
            Signal::Traces,
            bytes::Bytes::from_static(b"\x0a\xff"),
            1,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(e, spanpipe_core::ExportError::Undecodable { .. }),
        "{e:?}"
    );
    b.shutdown().await;
}
