use super::*;
use crate::test_util::{Capture, PRICES, V, points, request, settings, span};

fn llm(t: u8, model: &str) -> opentelemetry_proto::tonic::trace::v1::Span {
    span(
        t,
        1,
        0,
        250.0,
        0,
        &[
            ("gen_ai.operation.name", V::S("chat")),
            ("gen_ai.provider.name", V::S("openai")),
            ("gen_ai.request.model", V::S(model)),
            ("gen_ai.usage.input_tokens", V::I(1000)),
            ("gen_ai.usage.output_tokens", V::I(100)),
        ],
    )
}

#[tokio::test]
async fn flushes_semconv_metrics_with_cost_in_the_tables_currency() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prices.yaml");
    std::fs::write(&path, PRICES).unwrap();
    let cap = Arc::new(Capture::default());
    let prices = Arc::new(PriceSource::open(path.clone(), "genai_metrics").unwrap());
    let c = GenaiMetricsConnector::new(
        "genai_metrics".into(),
        settings(""),
        Some(prices.clone()),
        cap.clone(),
    );
    let batch = Batch::new(
        Signal::Traces,
        request(&[], vec![llm(1, "gpt-test"), llm(2, "nope")]),
        2,
    );
    c.consume(batch).await.unwrap();
    c.shutdown().await;
    let p = points(&cap);
    let base = "experiment_id=0,gen_ai.operation.name=chat,gen_ai.provider.name=openai,gen_ai.request.model=gpt-test";
    assert_eq!(
        p[&format!("gen_ai.client.token.usage{{{base},gen_ai.token.type=input}}")],
        (1.0, 1000.0)
    );
    assert_eq!(
        p[&format!("gen_ai.client.token.usage{{{base},gen_ai.token.type=output}}")],
        (1.0, 100.0)
    );
    assert_eq!(
        p[&format!("gen_ai.client.operation.duration{{{base}}}")],
        (1.0, 0.25)
    );
    let cost = p[&format!("gen_ai.client.cost{{{base}}}")].0;
    assert!((cost - (1000.0 * 2.0 + 100.0 * 8.0) / 1e6).abs() < 1e-15);
    assert!(
        !p.keys()
            .any(|k| k.starts_with("gen_ai.client.cost") && k.contains("nope"))
    );
    assert_eq!(c.counts().unpriced_spans, 1);
    let req =
        opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::decode(
            cap.0.lock().unwrap().last().unwrap().payload.to_bytes(),
        )
        .unwrap();
    let m = &req.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(
        m.iter()
            .find(|m| m.name == "gen_ai.client.cost")
            .unwrap()
            .unit,
        "USD"
    );
    assert_eq!(
        m.iter()
            .find(|m| m.name == "gen_ai.client.token.usage")
            .unwrap()
            .unit,
        "{token}"
    );

    // The table is re-read when the file changes: the model now has a price.
    std::fs::write(
        &path,
        format!("{PRICES}  - model: nope\n    input: 1\n    output: 1\n"),
    )
    .unwrap();
    assert!(prices.reload(true));
    assert!(prices.table().is_priced("nope", None, 0));
    std::fs::write(&path, "currency: [").unwrap();
    assert!(
        !prices.reload(true),
        "an invalid file keeps the last good table"
    );
    assert!(prices.table().is_priced("nope", None, 0));
}

#[tokio::test]
async fn refuses_other_signals_and_malformed_requests() {
    let cap = Arc::new(Capture::default());
    let c = GenaiMetricsConnector::new("g".into(), settings(""), None, cap);
    assert!(
        c.consume(Batch::new(Signal::Metrics, bytes::Bytes::new(), 0))
            .await
            .is_err()
    );
    let bad = Batch::new(
        Signal::Traces,
        bytes::Bytes::from_static(b"\x0a\xff\xff\xff\xff\x0f"),
        1,
    );
    assert!(c.consume(bad).await.is_err());
}

#[tokio::test]
async fn the_watcher_picks_up_a_changed_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prices.yaml");
    std::fs::write(&path, PRICES).unwrap();
    let prices = Arc::new(PriceSource::open(path.clone(), "w").unwrap());
    assert!(!prices.reload(false), "unchanged file: nothing to do");
    let cancel = CancellationToken::new();
    let task = prices.watch(Duration::from_millis(20), cancel.clone());
    assert!(!prices.table().is_priced("new-model", None, 0));
    // A different size, so the change is seen whatever the file system's time resolution.
    std::fs::write(
        &path,
        format!("{PRICES}  - model: new-model\n    input: 1\n    output: 1\n"),
    )
    .unwrap();
    let mut seen = false;
    for _ in 0..200 {
        if prices.table().is_priced("new-model", None, 0) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    task.await.unwrap();
    assert!(seen, "the changed table was not loaded within 2 s");
}

#[tokio::test]
async fn a_started_connector_reads_a_batch_of_several_parts_like_one_request() {
    let spans = || vec![llm(1, "gpt-test"), llm(2, "gpt-test"), llm(3, "other")];
    // Not started: the batch is recorded whole on the caller's path.
    let whole = Arc::new(Capture::default());
    let c = GenaiMetricsConnector::new("genai_metrics".into(), settings(""), None, whole.clone());
    c.consume(Batch::new(Signal::Traces, request(&[], spans()), 3))
        .await
        .unwrap();
    c.shutdown().await;
    // Started: the background worker reads the batch one part (one received request) at a time.
    let parted = Arc::new(Capture::default());
    let c = GenaiMetricsConnector::new("genai_metrics".into(), settings(""), None, parted.clone());
    c.start().await.unwrap();
    let parts: Vec<bytes::Bytes> = spans()
        .into_iter()
        .map(|s| request(&[], vec![s]).into())
        .collect();
    let payload = spanpipe_core::Payload::from_parts(parts);
    assert_eq!(payload.parts().len(), 3);
    c.consume(Batch::new(Signal::Traces, payload, 3))
        .await
        .unwrap();
    c.shutdown().await;
    let (whole, parted) = (points(&whole), points(&parted));
    let key = "gen_ai.client.operation.duration{experiment_id=0,gen_ai.operation.name=chat,\
               gen_ai.provider.name=openai,gen_ai.request.model=gpt-test}";
    assert_eq!(whole[key], (2.0, 0.5));
    assert_eq!(parted, whole);
}
