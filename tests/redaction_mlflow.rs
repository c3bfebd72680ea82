//! `redaction` in front of a real MLflow: MLflow's tracing SDK sends an AGENT trace whose input holds an e-mail
//! address and 2 MB of text (over OTLP/HTTP, within the receiver's 20 MiB body limit); spanpipe masks the
//! e-mail (preset `email`, also inside the JSON-encoded `mlflow.spanInputs`) and truncates the input to 64 KiB.
//! Read back with MLflow's client: the e-mail is nowhere, the input is truncated and MLflow still parses it as
//! JSON, span types are intact. spanpipe's /metrics reports the masked and truncated counts, not the values.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use spanpipe_e2e::mlflow::{mlflow_server, unique_suffix};
use spanpipe_e2e::{Spanpipe, free_ports, run_python, tail, wait_until};

const MAX_BYTES: usize = 64 * 1024;

fn metrics_text(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains("processor=\"redaction\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn an_email_and_a_2mb_input_reach_mlflow_masked_truncated_and_valid_json() {
    let server = mlflow_server();
    let mlflow = server.client();
    let experiment = format!("redaction-{}", unique_suffix());
    let work = tempfile::Builder::new()
        .prefix("spanpipe-redaction-")
        .tempdir()
        .expect("tempdir");
    let expected = work.path().join("expected.json");
    let [http, telemetry] = free_ports::<2>();
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http}, max_request_body_size: 20MiB }}
processors:
  redaction:
    allow_all_keys: true
    blocked_value_presets: [email]
    truncate: {{ max_bytes: {MAX_BYTES} }}
  batch: {{ timeout: 100ms }}
exporters:
  mlflow:
    tracking_uri: {uri}
    experiment_name: {experiment}
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 2s }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{telemetry} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [redaction, batch], exporters: [mlflow] }}
",
            uri = server.uri
        ),
        &[http],
    );
    let started = Instant::now();
    let out = run_python(
        "redaction_mlflow_workload.py",
        &[
            "send".into(),
            "--endpoint".into(),
            format!("http://127.0.0.1:{http}/v1/traces"),
            "--tracking-uri".into(),
            server.uri.clone(),
            "--expected".into(),
            expected.display().to_string(),
        ],
        Duration::from_secs(180),
    );
    assert!(
        out.status.success(),
        "MLflow SDK send failed:\n{}\n{}",
        out.stdout,
        tail(&out.stderr, 4000)
    );
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
    let out = run_python(
        "redaction_mlflow_workload.py",
        &[
            "check".into(),
            "--experiment-id".into(),
            id,
            "--max-bytes".into(),
            MAX_BYTES.to_string(),
            "--tracking-uri".into(),
            server.uri.clone(),
            "--expected".into(),
            expected.display().to_string(),
            "--timeout".into(),
            "90".into(),
        ],
        Duration::from_secs(180),
    );
    assert!(
        out.status.success(),
        "the trace in MLflow is not redacted as configured:\n{}\nstderr:\n{}\nspanpipe:\n{}",
        out.stdout,
        tail(&out.stderr, 3000),
        tail(&sp.stderr_text(), 3000)
    );
    let text = metrics_text(telemetry);
    // The root's input and output plus the child's input and output hold the e-mail; the root's input is cut.
    assert!(
        metric(&text, "spanpipe_redaction_masked_values") >= 4.0,
        "metrics:\n{}",
        tail(&text, 3000)
    );
    assert_eq!(
        metric(&text, "spanpipe_redaction_truncated_values"),
        1.0,
        "metrics:\n{}",
        tail(&text, 3000)
    );
    assert!(
        !text.contains("example.com"),
        "a value leaked into the metrics"
    );
    assert!(
        !sp.stderr_text().contains("example.com"),
        "a value leaked into the logs"
    );
    eprintln!("redaction → MLflow verified in {:.1?}", started.elapsed());
    assert!(sp.stop_gracefully().success());
}
