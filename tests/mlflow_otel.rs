//! The Python OTel SDK → spanpipe → MLflow (+ a `file` backend, dual export): every trace is found in MLflow
//! with the same span names, parent links, statuses, attributes, events, trace state, tags and metadata as when the
//! same SDK sends the same workload straight to MLflow's `/v1/traces`. Both paths run against a real MLflow
//! server into two experiments and are compared trace by trace. Prints spans/s of both paths.

use std::time::{Duration, Instant};

use spanpipe_e2e::mlflow::{Mlflow, canonical, mlflow_server, unique_suffix};
use spanpipe_e2e::{
    IdDiff, Spanpipe, file_exporter_span_ids, free_ports, read_ids, run_python, tail, wait_until,
};

const TRACES: usize = 200;
const SPANS_PER_TRACE: usize = 5;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the deterministic workload; returns the acknowledged span ids and the SDK-side elapsed time.
fn workload(
    endpoint: &str,
    headers: &[String],
    run_id: &str,
    dir: &std::path::Path,
) -> (Vec<String>, Duration) {
    let ids = dir.join(format!("ids-{}.txt", headers.len()));
    let mut args = vec![
        "--endpoint".to_string(),
        endpoint.to_string(),
        "--traces".into(),
        TRACES.to_string(),
        "--spans-per-trace".into(),
        SPANS_PER_TRACE.to_string(),
        "--run-id".into(),
        run_id.into(),
        "--ids-out".into(),
        ids.display().to_string(),
    ];
    for h in headers {
        args.extend(["--header".to_string(), h.clone()]);
    }
    let started = Instant::now();
    let out = run_python("mlflow_otel_workload.py", &args, Duration::from_secs(150));
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "workload to {endpoint} failed:\n{}\n{}",
        out.stdout,
        tail(&out.stderr, 4000)
    );
    (read_ids(&ids), elapsed)
}

fn wait_experiment(mlflow: &Mlflow, name: &str) -> String {
    let mut id = None;
    wait_until(DELIVERY_TIMEOUT, || {
        id = mlflow.experiment_id(name);
        id.is_some()
    });
    id.unwrap_or_else(|| panic!("experiment {name:?} was never created"))
}

#[test]
fn otel_sdk_through_spanpipe_matches_direct_export() {
    let server = mlflow_server();
    let mlflow = server.client();
    let run = unique_suffix();
    let total = TRACES * SPANS_PER_TRACE;
    let work = tempfile::Builder::new()
        .prefix("spanpipe-mlflow-otel-")
        .tempdir()
        .expect("tempdir");
    let file_out = work.path().join("second-backend.jsonl");
    let via_name = format!("otel-via-spanpipe-{run}");
    let [http] = free_ports::<1>();
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ send_batch_size: 1024, timeout: 200ms }}
exporters:
  mlflow:
    tracking_uri: {uri}
    experiment_name: {via_name}
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 2s }}
  file: {{ path: {out} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [mlflow, file] }}
",
            uri = server.uri,
            out = file_out.display()
        ),
        &[http],
    );

    // Path 1: through spanpipe (the experiment is created by name on first use).
    let t0 = Instant::now();
    let (via_ids, via_sdk) = workload(
        &format!("http://127.0.0.1:{http}/v1/traces"),
        &[],
        &run,
        work.path(),
    );
    let via_id = wait_experiment(&mlflow, &via_name);
    mlflow.wait_for_complete_traces(&via_id, TRACES, DELIVERY_TIMEOUT);
    let via_visible = t0.elapsed();
    let via_count = mlflow.wait_for_spans(&via_id, total, DELIVERY_TIMEOUT);

    // Path 2: the same workload straight to MLflow.
    let direct_id = mlflow.create_experiment(&format!("otel-direct-{run}"));
    let t1 = Instant::now();
    let header = format!("x-mlflow-experiment-id={direct_id}");
    let (direct_ids, direct_sdk) = workload(
        &format!("{}/v1/traces", server.uri),
        &[header],
        &run,
        work.path(),
    );
    mlflow.wait_for_complete_traces(&direct_id, TRACES, DELIVERY_TIMEOUT);
    let direct_visible = t1.elapsed();
    let direct_count = mlflow.wait_for_spans(&direct_id, total, DELIVERY_TIMEOUT);

    assert_eq!(
        (via_ids.len(), direct_ids.len()),
        (total, total),
        "the SDK did not export every span"
    );
    assert_eq!(
        (via_count, direct_count),
        (total, total),
        "spans in MLflow (via spanpipe, direct) after {DELIVERY_TIMEOUT:?}; spanpipe stderr:\n{}",
        tail(&sp.stderr_text(), 4000)
    );
    eprintln!(
        "THROUGHPUT via spanpipe: SDK done in {via_sdk:.2?}, all {total} spans visible in MLflow after {via_visible:.2?} \
         = {:.0} spans/s end to end",
        total as f64 / via_visible.as_secs_f64()
    );
    eprintln!(
        "THROUGHPUT direct to MLflow: SDK done in {direct_sdk:.2?}, visible after {direct_visible:.2?} = {:.0} spans/s",
        total as f64 / direct_visible.as_secs_f64()
    );

    // Same traces, trace by trace.
    let via = canonical(&mlflow.traces(&via_id));
    let direct = canonical(&mlflow.traces(&direct_id));
    assert_eq!(via.len(), TRACES, "traces via spanpipe");
    assert_eq!(direct.len(), TRACES, "traces direct");
    for (no, d) in &direct {
        let v = via
            .get(no)
            .unwrap_or_else(|| panic!("trace {no} missing via spanpipe"));
        assert_eq!(
            v, d,
            "trace {no} differs (left: via spanpipe, right: direct)"
        );
    }
    // Span types and statuses really are there (the comparison is not vacuous).
    let sample = &direct[&3];
    assert_eq!(
        sample["state"], "ERROR",
        "trace 3's root has status ERROR: {sample}"
    );
    assert!(sample.to_string().contains("\"RETRIEVER\""), "{sample}");

    // The second backend got every span exactly once too.
    let second = file_exporter_span_ids(&file_out);
    let diff = IdDiff::compute(&via_ids, &second);
    assert!(diff.is_exact(), "file backend: {diff}");
    let status = sp.stop_gracefully();
    assert!(status.success(), "spanpipe exited with {status}");
}
