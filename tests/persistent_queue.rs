//! Persistent sending queues (`sending_queue.storage: file_storage/...`) with the real binary:
//!
//! - SIGKILL mid-stream with the backend down: after a restart with the backend up, every span whose gRPC export
//!   the client saw succeed is delivered (counted by span id; duplicates reported).
//! - SIGTERM with full queues: the memory-queued exporter drains to its live backend, the persistent one stops at
//!   once leaving its data on disk, and a restart delivers it: everything acknowledged is delivered or persisted.
//!
//! Client: a tonic gRPC client sending hand-built OTLP requests with unique span ids, recording which requests were
//! acknowledged. Backends: a second spanpipe with a `file` exporter (OTLP/gRPC in).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spanpipe_e2e::otlp::{
    TRACE_EXPORT_PATH, grpc_channel, grpc_unary_raw, hex, proto_body, span_id, trace_id,
};
use spanpipe_e2e::{
    IdDiff, Spanpipe, count_ids, file_exporter_span_ids, free_ports, tail, wait_until,
};

const SPANS_PER_REQUEST: u64 = 20;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the client sent and which of it was acknowledged.
#[derive(Default)]
struct Ledger {
    sent: Vec<String>,
    acked: Vec<String>,
    refused: usize,
    errors: usize,
}

/// One request's span ids (unique across the test: `base` separates runs).
fn request_ids(base: u64, n: u64) -> Vec<Vec<u8>> {
    (0..SPANS_PER_REQUEST)
        .map(|i| span_id(base + n * SPANS_PER_REQUEST + i))
        .collect()
}

/// `tasks` concurrent senders, each one request in flight, until `stop` or `max_requests` in all.
async fn send_until(
    port: u16,
    base: u64,
    tasks: u64,
    max_requests: u64,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let channel = grpc_channel(port).await;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (channel, stop, ledger) = (channel.clone(), stop.clone(), ledger.clone());
        handles.push(tokio::spawn(async move {
            let mut n = t;
            while n < max_requests && !stop.load(Ordering::SeqCst) {
                let ids = request_ids(base, n);
                let hexes: Vec<String> = ids.iter().map(|i| hex(i)).collect();
                ledger.lock().unwrap().sent.extend(hexes.iter().cloned());
                let body = proto_body(&trace_id(base + n), &ids);
                let result = grpc_unary_raw(channel.clone(), TRACE_EXPORT_PATH, body, None).await;
                let mut l = ledger.lock().unwrap();
                match result {
                    Ok(_) => l.acked.extend(hexes),
                    Err(s)
                        if s.code() == tonic::Code::Unavailable
                            && !s.message().contains("transport") =>
                    {
                        l.refused += 1
                    }
                    Err(_) => l.errors += 1,
                }
                drop(l);
                n += tasks;
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn backend(port: u16, out: &std::path::Path) -> Spanpipe {
    Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{port} }}
exporters:
  file: {{ path: {out} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
",
            out = out.display()
        ),
        &[port],
    )
}

/// spanpipe A: OTLP/gRPC in; `otlp/backend` with a persistent queue; `extra_exporter` optionally a second
/// exporter (YAML under `exporters:`) with its id.
fn collector_yaml(
    grpc: u16,
    metrics: u16,
    backend_port: u16,
    storage: &std::path::Path,
    queue_size: usize,
    extra: Option<(&str, String)>,
) -> String {
    let (extra_id, extra_yaml) = extra.map_or((String::new(), String::new()), |(id, y)| {
        (format!(", {id}"), y)
    });
    format!(
        "\
extensions:
  file_storage/queue:
    directory: {dir}
    create_directory: true
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
exporters:
  otlp/backend:
    endpoint: 127.0.0.1:{backend_port}
    tls: {{ insecure: true }}
    compression: none
    sending_queue:
      storage: file_storage/queue
      queue_size: {queue_size}
      num_consumers: 4
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 300ms, max_elapsed_time: 0s }}
{extra_yaml}
service:
  extensions: [file_storage/queue]
  shutdown_timeout: 10s
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp/backend{extra_id}] }}
",
        dir = storage.display()
    )
}

/// The value of one sample line of spanpipe's `/metrics`, e.g. `otelcol_exporter_queue_size{exporter="otlp/backend"}`.
fn metric(port: u16, series: &str) -> Option<f64> {
    let body = runtime().block_on(async {
        let r = spanpipe_e2e::otlp::http_client()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .ok()?;
        r.text().await.ok()
    })?;
    body.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn wait_for_ids(out: &std::path::Path, want: &[String]) -> Vec<String> {
    let want: HashSet<&String> = want.iter().collect();
    let mut got = Vec::new();
    wait_until(DELIVERY_TIMEOUT, || {
        got = file_exporter_span_ids(out);
        let have: HashSet<&String> = got.iter().collect();
        want.iter().all(|id| have.contains(id))
    });
    // Let anything still in flight (duplicates) land before counting.
    std::thread::sleep(Duration::from_millis(500));
    file_exporter_span_ids(out)
}

/// Received spans checked against what the client sent and what it saw acknowledged.
fn check(label: &str, ledger: &Ledger, received: &[String], stderr: &str) {
    let diff = IdDiff::compute(&ledger.acked, received);
    let sent: HashSet<&String> = ledger.sent.iter().collect();
    let foreign = received.iter().filter(|id| !sent.contains(id)).count();
    let dup_extra: usize = count_ids(received).values().map(|n| n - 1).sum();
    let unique = count_ids(received).len();
    eprintln!(
        "{label}: sent {} spans, acknowledged {}, refused {} requests, failed {} requests; delivered {} ({} unique), \
         duplicated {dup_extra}, acknowledged-but-missing {}, delivered-but-unacknowledged {}",
        ledger.sent.len(),
        ledger.acked.len(),
        ledger.refused,
        ledger.errors,
        received.len(),
        unique,
        diff.missing.len(),
        diff.unexpected.len(),
    );
    assert!(
        diff.missing.is_empty(),
        "{label}: {} acknowledged spans were never delivered (e.g. {:?}); stderr:\n{}",
        diff.missing.len(),
        diff.missing.iter().take(5).collect::<Vec<_>>(),
        tail(stderr, 6000)
    );
    assert_eq!(foreign, 0, "{label}: spans delivered that were never sent");
}

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_span() {
    let [a_grpc, a_metrics, b_grpc] = free_ports::<3>();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-pq-kill-")
        .tempdir()
        .expect("tempdir");
    let storage = work.path().join("queue");
    let out = work.path().join("backend.jsonl");
    let yaml = collector_yaml(a_grpc, a_metrics, b_grpc, &storage, 100_000, None);

    // Phase 1: the backend is down; spanpipe is killed while clients are still sending.
    let mut a = Spanpipe::start(&yaml, &[a_grpc]);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let rt = runtime();
    let sender = rt.spawn(send_until(
        a_grpc,
        1 << 32,
        4,
        100_000,
        stop.clone(),
        ledger.clone(),
    ));
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || ledger
            .lock()
            .unwrap()
            .acked
            .len()
            >= 6_000),
        "the client got too few acknowledgements; stderr:\n{}",
        tail(&a.stderr_text(), 4000)
    );
    let queued = metric(
        a_metrics,
        "otelcol_exporter_queue_size{exporter=\"otlp/backend\"}",
    );
    let bytes = metric(
        a_metrics,
        "spanpipe_exporter_persistent_queue_bytes{exporter=\"otlp/backend\"}",
    );
    a.kill();
    let killed_after = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(40), sender).await })
        .expect("senders stop")
        .expect("sender task");
    eprintln!(
        "killed after {killed_after:?}; queue_size gauge {queued:?}, persistent bytes {bytes:?}"
    );
    assert!(
        queued.is_some_and(|q| q > 0.0),
        "queue size gauge: {queued:?}"
    );
    assert!(
        bytes.is_some_and(|b| b > 0.0),
        "persistent bytes gauge: {bytes:?}"
    );

    // Phase 2: backend up, spanpipe restarted on the same storage.
    let _b = backend(b_grpc, &out);
    let mut a2 = Spanpipe::start(&yaml, &[a_grpc]);
    let ledger = Arc::try_unwrap(ledger)
        .ok()
        .expect("senders done")
        .into_inner()
        .unwrap();
    let received = wait_for_ids(&out, &ledger.acked);
    check("SIGKILL", &ledger, &received, &a2.stderr_text());
    assert!(
        a2.stderr_text()
            .contains("persistent queue holds data from an earlier run"),
        "the restart should report recovered data; stderr:\n{}",
        tail(&a2.stderr_text(), 4000)
    );
    a2.stop_gracefully();
}

#[test]
fn sigterm_with_full_queues_delivers_or_persists_everything() {
    let [a_grpc, a_metrics, down_port, live_port] = free_ports::<4>();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-pq-term-")
        .tempdir()
        .expect("tempdir");
    let storage = work.path().join("queue");
    let down_out = work.path().join("down.jsonl");
    let live_out = work.path().join("live.jsonl");
    let live_exporter = format!(
        "  otlp/live:\n    endpoint: 127.0.0.1:{live_port}\n    tls: {{ insecure: true }}\n    sending_queue: {{ queue_size: 100000 }}\n"
    );
    let yaml = collector_yaml(
        a_grpc,
        a_metrics,
        down_port,
        &storage,
        50,
        Some(("otlp/live", live_exporter)),
    );
    let live = backend(live_port, &live_out);
    let mut a = Spanpipe::start(&yaml, &[a_grpc]);

    // Fill the persistent queue (50 requests, backend down) until the receiver refuses.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let rt = runtime();
    rt.block_on(send_until(
        a_grpc,
        2 << 32,
        2,
        80,
        Arc::new(AtomicBool::new(false)),
        ledger.clone(),
    ));
    let ledger = Arc::try_unwrap(ledger)
        .ok()
        .expect("senders done")
        .into_inner()
        .unwrap();
    assert!(
        ledger.refused > 0,
        "the queue should have filled up (refused {})",
        ledger.refused
    );
    assert_eq!(
        ledger.acked.len() as u64,
        50 * SPANS_PER_REQUEST,
        "exactly queue_size requests fit"
    );

    let t0 = Instant::now();
    let status = a.stop_gracefully_within(Duration::from_secs(20));
    let took = t0.elapsed();
    let stderr = a.stderr_text();
    assert!(
        status.success(),
        "exit {status}; stderr:\n{}",
        tail(&stderr, 4000)
    );
    assert!(
        stderr.contains("persistent queue stopped; its data stays on disk"),
        "stderr:\n{}",
        tail(&stderr, 4000)
    );
    assert!(
        took < Duration::from_secs(8),
        "a persistent queue does not wait for the dead backend ({took:?})"
    );

    // The memory-queued exporter drained to its live backend before exit.
    let live_got = file_exporter_span_ids(&live_out);
    check(
        "SIGTERM live backend (memory queue, drained)",
        &ledger,
        &live_got,
        &stderr,
    );

    // The persistent exporter's data is delivered after a restart with its backend up.
    let _down = backend(down_port, &down_out);
    let mut a2 = Spanpipe::start(&yaml, &[a_grpc]);
    let received = wait_for_ids(&down_out, &ledger.acked);
    check(
        "SIGTERM persisted backend (after restart)",
        &ledger,
        &received,
        &a2.stderr_text(),
    );
    a2.stop_gracefully();
    drop(live);
}

/// The at-least-once window: SIGKILL while the backend is up and the queue is delivering. Every acknowledged span
/// arrives; duplicates (records whose export succeeded just before the kill, not yet marked done) are reported.
#[test]
fn sigkill_while_delivering_loses_nothing_and_reports_duplicates() {
    let [a_grpc, a_metrics, b_grpc] = free_ports::<3>();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-pq-kill-up-")
        .tempdir()
        .expect("tempdir");
    let storage = work.path().join("queue");
    let out = work.path().join("backend.jsonl");
    let yaml = collector_yaml(a_grpc, a_metrics, b_grpc, &storage, 100_000, None);
    let _b = backend(b_grpc, &out);
    let mut a = Spanpipe::start(&yaml, &[a_grpc]);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let rt = runtime();
    let sender = rt.spawn(send_until(
        a_grpc,
        3 << 32,
        4,
        100_000,
        stop.clone(),
        ledger.clone(),
    ));
    assert!(
        wait_until(Duration::from_secs(30), || ledger
            .lock()
            .unwrap()
            .acked
            .len()
            >= 6_000),
        "the client got too few acknowledgements; stderr:\n{}",
        tail(&a.stderr_text(), 4000)
    );
    a.kill();
    stop.store(true, Ordering::SeqCst);
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(40), sender).await })
        .expect("senders stop")
        .expect("sender task");
    let before_restart = file_exporter_span_ids(&out).len();
    let mut a2 = Spanpipe::start(&yaml, &[a_grpc]);
    let ledger = Arc::try_unwrap(ledger)
        .ok()
        .expect("senders done")
        .into_inner()
        .unwrap();
    let received = wait_for_ids(&out, &ledger.acked);
    eprintln!("delivered before the kill: {before_restart} spans");
    check(
        "SIGKILL while delivering",
        &ledger,
        &received,
        &a2.stderr_text(),
    );
    a2.stop_gracefully();
}
