//! Graceful shutdown: on SIGTERM or SIGINT spanpipe flushes what its batch processor and queues hold before it
//! exits 0 — spans accepted (acknowledged to the client) are never lost by a normal stop.

use std::time::Duration;

use spanpipe_e2e::{IdDiff, SendSpans, Spanpipe, file_exporter_span_ids, free_ports, tail};

fn drains_on(sig: libc::c_int, sig_name: &str) {
    let [grpc, http] = free_ports::<2>();
    let out_dir = tempfile::Builder::new()
        .prefix("spanpipe-shutdown-")
        .tempdir()
        .expect("tempdir");
    let out = out_dir.path().join("spans.jsonl");
    // The batch would only flush after 60 s or 100k spans: only the shutdown drain can write these spans.
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ send_batch_size: 100000, timeout: 60s }}
exporters:
  file: {{ path: {out} }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [file] }}
",
            out = out.display()
        ),
        &[grpc, http],
    );
    let sent = SendSpans::new(
        "http/protobuf",
        format!("http://127.0.0.1:{http}"),
        500,
        format!("shutdown-{sig_name}"),
    )
    .trace_size(5)
    .run()
    .ids;
    assert_eq!(sent.len(), 500);
    sp.signal(sig);
    let status = sp.wait_exit_within(Duration::from_secs(30));
    assert!(
        status.success(),
        "spanpipe exited with {status} after {sig_name}; stderr:\n{}",
        tail(&sp.stderr_text(), 4000)
    );
    let diff = IdDiff::compute(&sent, &file_exporter_span_ids(&out));
    assert!(
        diff.is_exact(),
        "after {sig_name} the file exporter holds: {diff}\nstderr:\n{}",
        tail(&sp.stderr_text(), 4000)
    );
}

#[test]
fn sigterm_drains_batch_into_exporter() {
    drains_on(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_drains_batch_into_exporter() {
    drains_on(libc::SIGINT, "SIGINT");
}
