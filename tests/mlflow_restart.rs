//! MLflow goes away while spans flow and comes back on the same port: spanpipe keeps accepting, keeps the spans
//! queued (retryable errors), and once MLflow is back every span sent is in MLflow — exactly the ids sent.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use spanpipe_e2e::mlflow::{b64_to_hex, own_mlflow_server};
use spanpipe_e2e::{Spanpipe, free_ports, read_ids, run_python, tail, wait_until};

const SPANS_PER_TRACE: usize = 5;

/// Sends `traces` traces paced by `pace_ms`; returns the span ids spanpipe acknowledged.
fn send(http: u16, run: &str, traces: usize, pace_ms: u32, ids: &std::path::Path) -> Vec<String> {
    let args: Vec<String> = vec![
        "--endpoint".into(),
        format!("http://127.0.0.1:{http}/v1/traces"),
        "--traces".into(),
        traces.to_string(),
        "--spans-per-trace".into(),
        SPANS_PER_TRACE.to_string(),
        "--run-id".into(),
        run.into(),
        "--pace-ms".into(),
        pace_ms.to_string(),
        "--ids-out".into(),
        ids.display().to_string(),
    ];
    let out = run_python("mlflow_otel_workload.py", &args, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "workload {run} failed:\n{}",
        tail(&out.stderr, 3000)
    );
    read_ids(ids)
}

#[test]
fn every_span_arrives_after_mlflow_restarts_on_the_same_port() {
    let t0 = Instant::now();
    let mut server = own_mlflow_server(&[]);
    let mlflow = server.client();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-mlflow-restart-")
        .tempdir()
        .expect("tempdir");
    let [http] = free_ports::<1>();
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ send_batch_size: 256, timeout: 100ms }}
exporters:
  mlflow:
    tracking_uri: {uri}
    experiment_name: restart
    timeout: 10s
    retry_on_failure: {{ initial_interval: 300ms, max_interval: 2s, max_elapsed_time: 0s }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [mlflow] }}
",
            uri = server.uri
        ),
        &[http],
    );

    // Phase 1: MLflow up.
    let mut sent = send(http, "before", 40, 0, &work.path().join("before.ids"));
    let mut id = None;
    assert!(wait_until(Duration::from_secs(60), || {
        id = mlflow.experiment_id("restart");
        id.is_some()
    }));
    let id = id.unwrap_or_default();

    // Phase 2: stop MLflow while a paced workload is flowing (the sender runs on its own thread).
    let during = work.path().join("during.ids");
    let sender = std::thread::spawn(move || send(http, "during", 60, 40, &during));
    std::thread::sleep(Duration::from_millis(800));
    let down_at = Instant::now();
    server.stop();
    eprintln!("[{:.1?}] MLflow stopped", t0.elapsed());
    sent.extend(sender.join().expect("sender thread"));
    sent.extend(send(
        http,
        "while-down",
        20,
        0,
        &work.path().join("down.ids"),
    ));
    std::thread::sleep(Duration::from_secs(2));
    sp.assert_running();
    let stderr = sp.stderr_text();
    assert!(
        stderr.contains("mlflow experiment \"restart\""),
        "spanpipe should be retrying:\n{}",
        tail(&stderr, 3000)
    );

    // Phase 3: MLflow back on the same port and database.
    server.start();
    eprintln!("MLflow was down for {:.1?}", down_at.elapsed());
    let total = sent.len();
    assert_eq!(
        total,
        120 * SPANS_PER_TRACE,
        "the SDK exported everything to spanpipe"
    );
    let n = mlflow.wait_for_spans(&id, total, Duration::from_secs(120));
    eprintln!("[{:.1?}] {n} spans in MLflow", t0.elapsed());
    let stored: BTreeSet<String> = mlflow
        .traces(&id)
        .iter()
        .flat_map(|t| t["spans"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["span_id"].as_str().map(b64_to_hex))
        .collect();
    let expected: BTreeSet<String> = sent.iter().cloned().collect();
    let missing: Vec<&String> = expected.difference(&stored).take(5).collect();
    assert!(
        n == total && stored == expected,
        "after the restart MLflow holds {n} spans, expected {total}; missing e.g. {missing:?}\nspanpipe:\n{}",
        tail(&sp.stderr_text(), 4000)
    );
    assert!(sp.stop_gracefully().success());
    eprintln!("[{:.1?}] spanpipe stopped", t0.elapsed());
    let log = sp.stderr_text();
    assert!(
        log.contains("send_failed=0"),
        "nothing counted as failed:\n{}",
        tail(&log, 2000)
    );
}
