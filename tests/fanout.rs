//! Fan-out under real clients: the Python OTel SDK sends 10,000 GenAI-agent spans to spanpipe A over gRPC,
//! HTTP/protobuf and HTTP/JSON; A batches them and exports to two real backends — a Python gRPC sink and a
//! second spanpipe (B) writing a `file` — and each backend must receive every span exactly once.

use std::time::{Duration, Instant};

use spanpipe_e2e::{
    IdDiff, SendSpans, Spanpipe, file_exporter_span_ids, free_ports, read_ids, spawn_python, tail,
    wait_until,
};

const TOTAL_SPANS: usize = 10_000;
const TRACE_SIZE: usize = 10;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn fanout_to_two_backends_delivers_every_span_exactly_once() {
    let [sink_port, b_grpc, a_grpc, a_http] = free_ports::<4>();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-fanout-")
        .tempdir()
        .expect("tempdir");
    let sink_ids = work.path().join("sink_ids.txt");
    let b_out = work.path().join("backend_b.jsonl");

    // Backend 1: the Python OTLP/gRPC sink.
    let mut sink = spawn_python(
        "grpc_sink.py",
        &[
            "--port".into(),
            sink_port.to_string(),
            "--ids-out".into(),
            sink_ids.display().to_string(),
        ],
    );

    // Backend 2: spanpipe B, OTLP/gRPC in, file out.
    let mut b = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{b_grpc} }}
processors:
  batch: {{ send_batch_size: 2048, timeout: 100ms }}
exporters:
  file: {{ path: {out} }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [file] }}
",
            out = b_out.display()
        ),
        &[b_grpc],
    );

    // spanpipe A: OTLP gRPC+HTTP in, batch, fan-out to both backends (gzip to the sink, zstd to B).
    let mut a = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{a_grpc} }}
      http: {{ endpoint: 127.0.0.1:{a_http} }}
processors:
  batch: {{ send_batch_size: 1024, timeout: 200ms }}
exporters:
  otlp/one:
    endpoint: 127.0.0.1:{sink_port}
    tls: {{ insecure: true }}
    compression: gzip
    timeout: 10s
    sending_queue: {{ enabled: true, queue_size: 1000, num_consumers: 4 }}
    retry_on_failure: {{ enabled: true, initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 60s }}
  otlp/two:
    endpoint: http://127.0.0.1:{b_grpc}
    compression: zstd
    timeout: 10s
    sending_queue: {{ enabled: true, queue_size: 1000, num_consumers: 4 }}
    retry_on_failure: {{ enabled: true, initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 60s }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp/one, otlp/two] }}
"
        ),
        &[a_grpc, a_http],
    );

    // Three real-SDK runs, one per protocol, 10,000 spans in total.
    let per_run = TOTAL_SPANS / 3;
    let runs = [
        SendSpans::new(
            "grpc",
            format!("127.0.0.1:{a_grpc}"),
            TOTAL_SPANS - 2 * per_run,
            "fanout-grpc",
        )
        .compression("gzip"),
        SendSpans::new(
            "http/protobuf",
            format!("http://127.0.0.1:{a_http}"),
            per_run,
            "fanout-http-protobuf",
        ),
        SendSpans::new(
            "http/json",
            format!("http://127.0.0.1:{a_http}"),
            per_run,
            "fanout-http-json",
        )
        .compression("gzip"),
    ];
    let mut sent: Vec<String> = Vec::with_capacity(TOTAL_SPANS);
    let mut send_time = Duration::ZERO;
    for run in &runs {
        let run = run.clone().trace_size(TRACE_SIZE);
        let res = run.run();
        eprintln!(
            "sent {} spans via {} in {:.2?} ({:.0} spans/s)",
            res.ids.len(),
            run.protocol,
            res.elapsed,
            res.ids.len() as f64 / res.elapsed.as_secs_f64()
        );
        send_time += res.elapsed;
        sent.extend(res.ids);
    }
    assert_eq!(
        sent.len(),
        TOTAL_SPANS,
        "the SDK runs did not export {TOTAL_SPANS} spans"
    );
    let unique: std::collections::HashSet<&String> = sent.iter().collect();
    assert_eq!(
        unique.len(),
        TOTAL_SPANS,
        "the SDK generated duplicate span ids"
    );
    eprintln!(
        "THROUGHPUT: {} spans sent through spanpipe A in {:.2?} of send wall time = {:.0} spans/s (3 SDK runs, \
         interpreter start-up included)",
        sent.len(),
        send_time,
        sent.len() as f64 / send_time.as_secs_f64()
    );

    // Wait (bounded) for both backends to have every id.
    let waited = Instant::now();
    let delivered = wait_until(DELIVERY_TIMEOUT, || {
        read_ids(&sink_ids).len() >= TOTAL_SPANS
            && file_exporter_span_ids(&b_out).len() >= TOTAL_SPANS
    });
    eprintln!(
        "backends caught up after {:.2?} (complete: {delivered})",
        waited.elapsed()
    );
    // Let late duplicates surface before the exact comparison.
    std::thread::sleep(Duration::from_secs(1));

    let one = IdDiff::compute(&sent, &read_ids(&sink_ids));
    let two = IdDiff::compute(&sent, &file_exporter_span_ids(&b_out));
    eprintln!("backend 1 (python gRPC sink): {one}");
    eprintln!("backend 2 (spanpipe B, file): {two}");
    assert!(
        one.is_exact() && two.is_exact(),
        "fan-out mismatch after {DELIVERY_TIMEOUT:?}:\n  backend 1 (python gRPC sink via otlp/one): {one}\n  backend 2 \
         (spanpipe B via otlp/two): {two}\nspanpipe A stderr:\n{}\nspanpipe B stderr:\n{}\nsink stderr:\n{}",
        tail(&a.stderr_text(), 4000),
        tail(&b.stderr_text(), 2000),
        tail(&sink.stderr_text(), 2000),
    );

    // Everything shuts down cleanly: A first (drains into the backends), then B, then the sink.
    let status = a.stop_gracefully();
    assert!(
        status.success(),
        "spanpipe A exited with {status} after SIGTERM"
    );
    let status = b.stop_gracefully();
    assert!(
        status.success(),
        "spanpipe B exited with {status} after SIGTERM"
    );
    sink.stop();
    // Nothing arrived after the comparison either (e.g. re-sent on shutdown).
    let after = IdDiff::compute(&sent, &read_ids(&sink_ids));
    assert!(after.is_exact(), "backend 1 after shutdown: {after}");
    let after = IdDiff::compute(&sent, &file_exporter_span_ids(&b_out));
    assert!(after.is_exact(), "backend 2 after shutdown: {after}");
}
