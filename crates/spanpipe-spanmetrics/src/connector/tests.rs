use std::sync::Mutex as StdMutex;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use spanpipe_core::ComponentId;

use super::*;
use crate::test_util::{request, span};

/// Keeps every batch it is given.
#[derive(Default)]
struct Capture(StdMutex<Vec<Batch>>);

#[async_trait]
impl Consumer for Capture {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.0.lock().unwrap().push(batch);
        Ok(())
    }
}

impl Capture {
    /// (count, tags.team) of every point of the last batch.
    fn last_points(&self) -> Vec<(u64, Option<String>)> {
        let batches = self.0.lock().unwrap();
        let Some(b) = batches.last() else {
            return vec![];
        };
        assert_eq!(b.signal, Signal::Metrics);
        let req = ExportMetricsServiceRequest::decode(&b.payload.to_vec()[..]).unwrap();
        let Some(Data::Histogram(h)) = &req.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!("histogram")
        };
        assert_eq!(b.items, h.data_points.len());
        let mut out: Vec<_> = h
            .data_points
            .iter()
            .map(|p| {
                let team = p
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "tags.team")
                    .map(|kv| {
                        format!(
                            "{:?}",
                            kv.value.as_ref().and_then(|v| v.value.as_ref()).unwrap()
                        )
                    });
                (p.count, team)
            })
            .collect();
        out.sort();
        out
    }

    fn batches(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn build(yaml: &str, downstream: Arc<Capture>) -> Arc<dyn Connector> {
    let node = spanpipe_config::load_str("t.yaml", yaml).unwrap();
    let ctx = BuildContext::new(
        ComponentId::new("mlflow_spanmetrics", None),
        "connectors.mlflow_spanmetrics".into(),
    );
    SpanMetricsConnectorFactory
        .build(&ctx, &node, Signal::Traces, Signal::Metrics, downstream)
        .unwrap_or_else(|e| panic!("{}: {}", e.key, e.message))
}

fn traces(bytes: Vec<u8>) -> Batch {
    Batch::new(Signal::Traces, bytes, 1)
}

#[tokio::test]
async fn flushes_on_its_interval_and_on_shutdown_with_waiting_points_untagged() {
    let down = Arc::new(Capture::default());
    let c = build(
        "tags: [team]\ntags_wait: 1h\nflush_interval: 100ms\n",
        down.clone(),
    );
    c.start().await.unwrap();
    // A complete trace, and a child whose root never comes.
    let root = span(1, 1, 0, 3.0, 1, &[("mlflow.traceTag.team", "rust")]);
    c.consume(traces(request(&[], vec![span(1, 2, 1, 1.0, 1, &[]), root])))
        .await
        .unwrap();
    c.consume(traces(request(&[], vec![span(2, 2, 1, 1.0, 1, &[])])))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while down.batches() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        down.last_points(),
        [
            (1, Some("StringValue(\"rust\")".into())),
            (1, Some("StringValue(\"rust\")".into()))
        ],
        "the orphan is still waiting"
    );
    c.shutdown().await;
    let points = down.last_points();
    assert_eq!(points.len(), 3);
    assert!(
        points.contains(&(1, None)),
        "the orphan was recorded untagged at shutdown: {points:?}"
    );
}

#[tokio::test]
async fn rejects_other_signals_and_malformed_traces_and_nothing_to_send_sends_nothing() {
    let down = Arc::new(Capture::default());
    let c = build("flush_interval: 50ms\n", down.clone());
    let metrics = Batch::new(Signal::Metrics, bytes::Bytes::new(), 0);
    let bad = Batch::new(
        Signal::Traces,
        bytes::Bytes::from_static(b"\x0a\x05\x12"),
        1,
    );
    // Not started: recorded on the caller's path, so a malformed batch is refused to the caller.
    assert!(matches!(
        c.consume(bad.clone()).await,
        Err(ConsumeError::Rejected { .. })
    ));
    c.start().await.unwrap();
    assert!(matches!(
        c.consume(metrics).await,
        Err(ConsumeError::Rejected { .. })
    ));
    // Started: the worker records; a batch it cannot read (only a broken component could hand one over, the
    // receiver's door refuses it) is logged and records nothing.
    assert!(c.consume(bad).await.is_ok());
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.shutdown().await;
    assert_eq!(down.batches(), 0);
}

#[test]
fn config_errors_name_the_key() {
    let err = |yaml: &str| {
        let node = spanpipe_config::load_str("t.yaml", yaml).unwrap();
        let ctx = BuildContext::new(
            ComponentId::new("mlflow_spanmetrics", None),
            "connectors.mlflow_spanmetrics".into(),
        );
        match SpanMetricsConnectorFactory.build(
            &ctx,
            &node,
            Signal::Traces,
            Signal::Metrics,
            Arc::new(Capture::default()),
        ) {
            Ok(_) => panic!("{yaml} should not build"),
            Err(e) => format!("{}: {}", e.key, e.message),
        }
    };
    assert!(err("buckets: [5, 1]").starts_with("connectors.mlflow_spanmetrics.buckets: "));
    assert!(err("metadata: [my.key]").contains("unknown metadata key"));
    assert!(err("tags: [a, a]").contains("listed twice"));
    assert!(err("max_series: 0").contains("max_series"));
    assert!(err("flush_interval: 0s").contains("flush_interval"));
    assert!(err("experiment_id_from: [{ header: x }]").contains("experiment_id_from"));
    assert!(err("bogus: 1").contains("bogus"));
    assert!(SpanMetricsConnectorFactory.supports(Signal::Traces, Signal::Metrics));
    assert!(!SpanMetricsConnectorFactory.supports(Signal::Traces, Signal::Traces));
}
