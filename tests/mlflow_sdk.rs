//! MLflow's own tracing SDK (`@mlflow.trace`, `mlflow.start_span`; AGENT, CHAIN, LLM, TOOL spans) exporting over
//! OTLP to spanpipe — `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` with http/protobuf and with gRPC — and spanpipe's
//! `mlflow` exporter delivering to a real MLflow: read back with MLflow's client, every trace has its span types,
//! inputs, outputs, parent links, tags and state intact.

use std::path::Path;
use std::time::{Duration, Instant};

use spanpipe_e2e::mlflow::{mlflow_server, unique_suffix};
use spanpipe_e2e::{Spanpipe, free_ports, run_python, tail, wait_until};

const TRACES: usize = 5;

fn sdk(args: &[String]) -> spanpipe_e2e::CmdOutput {
    run_python("mlflow_sdk_workload.py", args, Duration::from_secs(180))
}

fn send(protocol: &str, endpoint: &str, uri: &str, run: &str, expected: &Path) {
    let out = sdk(&[
        "send".into(),
        "--endpoint".into(),
        endpoint.into(),
        "--protocol".into(),
        protocol.into(),
        "--traces".into(),
        TRACES.to_string(),
        "--tracking-uri".into(),
        uri.into(),
        "--run-id".into(),
        run.into(),
        "--expected".into(),
        expected.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "MLflow SDK send over {protocol} failed:\n{}\n{}",
        out.stdout,
        tail(&out.stderr, 4000)
    );
}

#[test]
fn mlflow_tracing_sdk_over_http_and_grpc_arrives_intact() {
    let server = mlflow_server();
    let mlflow = server.client();
    let run = format!("sdk-{}", unique_suffix());
    let experiment = format!("mlflow-sdk-{run}");
    let work = tempfile::Builder::new()
        .prefix("spanpipe-mlflow-sdk-")
        .tempdir()
        .expect("tempdir");
    let [grpc, http] = free_ports::<2>();
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ timeout: 100ms }}
exporters:
  mlflow:
    tracking_uri: {uri}
    experiment_name: {experiment}
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 2s }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [mlflow] }}
",
            uri = server.uri
        ),
        &[grpc, http],
    );
    let started = Instant::now();
    let runs = [
        (
            "http/protobuf",
            format!("http://127.0.0.1:{http}/v1/traces"),
        ),
        ("grpc", format!("http://127.0.0.1:{grpc}")),
    ];
    for (protocol, endpoint) in &runs {
        let expected = work
            .path()
            .join(format!("{}.json", protocol.replace('/', "-")));
        send(protocol, endpoint, &server.uri, &run, &expected);
    }
    let mut id = None;
    wait_until(Duration::from_secs(60), || {
        id = mlflow.experiment_id(&experiment);
        id.is_some()
    });
    let id = id.unwrap_or_else(|| {
        panic!(
            "experiment {experiment} never created; spanpipe:\n{}",
            sp.stderr_text()
        )
    });
    for (protocol, _) in &runs {
        let expected = work
            .path()
            .join(format!("{}.json", protocol.replace('/', "-")));
        let out = sdk(&[
            "check".into(),
            "--experiment-id".into(),
            id.clone(),
            "--tracking-uri".into(),
            server.uri.clone(),
            "--run-id".into(),
            run.clone(),
            "--expected".into(),
            expected.display().to_string(),
            "--timeout".into(),
            "90".into(),
        ]);
        assert!(
            out.status.success(),
            "traces sent by the MLflow SDK over {protocol} are not intact in MLflow:\n{}\nstderr:\n{}\nspanpipe:\n{}",
            out.stdout,
            tail(&out.stderr, 3000),
            tail(&sp.stderr_text(), 3000)
        );
    }
    eprintln!(
        "{} MLflow-SDK traces over http/protobuf and gRPC verified in {:.1?}",
        2 * TRACES,
        started.elapsed()
    );
    assert!(sp.stop_gracefully().success());
}
