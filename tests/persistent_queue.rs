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

use prost::Message;
use spanpipe_e2e::otlp::{
    TRACE_EXPORT_PATH, grpc_channel, grpc_unary_raw, hex, proto_body, proto_request, span_id,
    trace_id,
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
    send_padded(port, base, tasks, max_requests, 0, stop, ledger).await
}

/// [`send_until`] with `padding` bytes of attribute in each request's first span.
async fn send_padded(
    port: u16,
    base: u64,
    tasks: u64,
    max_requests: u64,
    padding: usize,
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
                let body = match padding {
                    0 => proto_body(&trace_id(base + n), &ids),
                    p => proto_request(&trace_id(base + n), &ids, p).encode_to_vec(),
                };
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

/// A tmpfs of `size` mounted on `dir` for one test (unmounted when dropped); `None` where mounting is impossible
/// (not root, no mount(8), a container without CAP_SYS_ADMIN).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let out = spanpipe_e2e::process::run_bounded(
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={size},mode=0750"))
                .arg("tmpfs")
                .arg(dir),
            Duration::from_secs(20),
        );
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a {size} tmpfs on {} ({}): this test needs root (CAP_SYS_ADMIN)",
                dir.display(),
                out.stderr.trim()
            );
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }

    /// Used bytes of the file system (statvfs via df).
    fn used(&self) -> String {
        let out = spanpipe_e2e::process::run_bounded(
            std::process::Command::new("df")
                .args(["-B1", "--output=used"])
                .arg(&self.0),
            Duration::from_secs(20),
        );
        out.stdout.lines().last().unwrap_or("?").trim().to_string()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = spanpipe_e2e::process::run_bounded(
            std::process::Command::new("umount").arg("-l").arg(&self.0),
            Duration::from_secs(20),
        );
    }
}

/// Exact comparison of what a backend received with what was acknowledged: nothing acknowledged missing, nothing
/// refused delivered (all-or-nothing admission withdrew it), no duplicates. Prints the figures.
fn check_exact(
    label: &str,
    ledger: &Ledger,
    expected: &[String],
    received: &[String],
    stderr: &str,
) {
    let diff = IdDiff::compute(expected, received);
    let dup_extra: usize = diff.duplicated.iter().map(|(_, n)| n - 1).sum();
    eprintln!(
        "{label}: sent {} spans ({} requests refused, {} failed), acknowledged {}, expected {}, delivered {} \
         ({} unique), duplicated {dup_extra}, lost {}, delivered-but-not-expected {}",
        ledger.sent.len(),
        ledger.refused,
        ledger.errors,
        ledger.acked.len(),
        expected.len(),
        received.len(),
        count_ids(received).len(),
        diff.missing.len(),
        diff.unexpected.len(),
    );
    assert!(
        diff.missing.is_empty(),
        "{label}: {} expected spans never delivered (e.g. {:?}); stderr:\n{}",
        diff.missing.len(),
        diff.missing.iter().take(5).collect::<Vec<_>>(),
        tail(stderr, 6000)
    );
    assert!(
        diff.unexpected.is_empty(),
        "{label}: {} spans delivered that were not expected (refused, or damaged) (e.g. {:?})",
        diff.unexpected.len(),
        diff.unexpected.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(dup_extra, 0, "{label}: duplicates");
}

/// Two exporters with persistent queues: `otlp/one` in `disk` (room enough), `otlp/two` in `small`.
fn two_persistent_exporters_yaml(
    grpc: u16,
    http: u16,
    metrics: u16,
    backends: [u16; 2],
    disk: &std::path::Path,
    small: &std::path::Path,
) -> String {
    let exporter = |name: &str, port: u16, storage: &str| {
        format!(
            "  otlp/{name}:
    endpoint: 127.0.0.1:{port}
    tls: {{ insecure: true }}
    compression: none
    sending_queue: {{ storage: file_storage/{storage}, queue_size: 100000, num_consumers: 4 }}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 300ms, max_elapsed_time: 0s }}
"
        )
    };
    format!(
        "\
extensions:
  file_storage/disk:
    directory: {disk}
    segment_size: 256KiB
  file_storage/small:
    directory: {small}
    segment_size: 256KiB
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
exporters:
{one}{two}
service:
  extensions: [file_storage/disk, file_storage/small]
  shutdown_timeout: 10s
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp/one, otlp/two] }}
",
        disk = disk.display(),
        small = small.display(),
        one = exporter("one", backends[0], "disk"),
        two = exporter("two", backends[1], "small"),
    )
}

fn take_ledger(ledger: Arc<Mutex<Ledger>>) -> Ledger {
    Arc::try_unwrap(ledger)
        .ok()
        .expect("senders done")
        .into_inner()
        .unwrap()
}

/// Issue 14, case 1: exporter `two`'s persistent queue on a 3 MB tmpfs, exporter `one`'s on the ordinary disk,
/// both backends down. Requests are sent until the tmpfs is full: each is either acknowledged (written to both
/// queues) or refused (UNAVAILABLE) — never acknowledged and dropped; what `one` had already written for a refused
/// request is withdrawn (all-or-nothing), so the client's retry duplicates nothing. Once the backends are up
/// everything acknowledged arrives exactly once at each and nothing refused arrives anywhere; the queue frees its
/// space (acknowledgement writes that fail on the full disk do not hold segments back) and accepts again
/// without a restart.
#[test]
fn a_full_disk_refuses_and_never_acknowledges_what_it_did_not_keep() {
    let [a_grpc, a_http, a_metrics, b1, b2] = free_ports::<5>();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-pq-full-")
        .tempdir()
        .expect("tempdir");
    let (disk, small) = (work.path().join("disk"), work.path().join("small"));
    std::fs::create_dir(&disk).expect("storage dir");
    std::fs::create_dir(&small).expect("storage dir");
    let Some(tmpfs) = Tmpfs::mount(&small, "3m") else {
        return;
    };
    let (out1, out2) = (work.path().join("one.jsonl"), work.path().join("two.jsonl"));
    let yaml = two_persistent_exporters_yaml(a_grpc, a_http, a_metrics, [b1, b2], &disk, &small);
    let mut a = Spanpipe::start(&yaml, &[a_grpc, a_http]);
    let rt = runtime();

    // Phase 1: backends down; 16 KB requests until well past full.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    rt.block_on(send_padded(
        a_grpc,
        5 << 32,
        2,
        250,
        16_000,
        Arc::new(AtomicBool::new(false)),
        ledger.clone(),
    ));
    let ledger = take_ledger(ledger);
    let failures = |e: &str| {
        metric(
            a_metrics,
            &format!("spanpipe_exporter_persistent_queue_write_failures_total{{exporter=\"{e}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let (f1, f2) = (failures("otlp/one"), failures("otlp/two"));
    eprintln!(
        "disk full: {} requests acknowledged, {} refused, {} failed; write failures one={f1} two={f2}; tmpfs used {} bytes",
        ledger.acked.len() as u64 / SPANS_PER_REQUEST,
        ledger.refused,
        ledger.errors,
        tmpfs.used()
    );
    assert!(ledger.refused > 0, "the disk never filled up");
    assert!(!ledger.acked.is_empty(), "nothing was acknowledged");
    assert_eq!(ledger.errors, 0, "every request is acknowledged or refused");
    assert_eq!(f1, 0.0, "exporter one's disk has room");
    assert!(
        f2 >= ledger.refused as f64,
        "each refusal is a counted write failure"
    );
    // The refusal on each transport: HTTP 503 with a numeric Retry-After, gRPC UNAVAILABLE with RetryInfo.
    let ids: Vec<Vec<u8>> = (0..SPANS_PER_REQUEST)
        .map(|i| span_id((4 << 32) + i))
        .collect();
    let body = proto_request(&trace_id(4 << 32), &ids, 16_000).encode_to_vec();
    let (status, retry_after, grpc) = rt.block_on(async {
        let r = spanpipe_e2e::otlp::http_post(
            &spanpipe_e2e::otlp::http_client(),
            a_http,
            "/v1/traces",
            "application/x-protobuf",
            None,
            body.clone(),
        )
        .await;
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let grpc = spanpipe_e2e::otlp::grpc_export_raw(a_grpc, body, None).await;
        (r.status().as_u16(), retry_after, grpc)
    });
    eprintln!("disk full: HTTP answered {status} (Retry-After {retry_after:?}); gRPC {grpc:?}");
    assert_eq!(status, 503, "HTTP refusal");
    assert!(
        retry_after
            .as_deref()
            .is_some_and(|v| v.parse::<u64>().is_ok()),
        "503 without a numeric Retry-After: {retry_after:?}"
    );
    let st = grpc.expect_err("gRPC refusal");
    assert_eq!(st.code(), tonic::Code::Unavailable, "{st:?}");
    assert!(
        st.message().contains("storage is full") && !st.message().contains(".log"),
        "the client hears why, not the file path: {st:?}"
    );
    {
        use tonic_types::StatusExt;
        assert!(
            st.get_details_retry_info().is_some(),
            "UNAVAILABLE without RetryInfo: {st:?}"
        );
    }
    let stderr = a.stderr_text();
    assert!(
        stderr.contains("persistent queue: write failed; requests are refused"),
        "stderr:\n{}",
        tail(&stderr, 4000)
    );

    // Phase 2: backends up: exactly what was acknowledged arrives, at each backend, once.
    let _one = backend(b1, &out1);
    let _two = backend(b2, &out2);
    let got1 = wait_for_ids(&out1, &ledger.acked);
    let got2 = wait_for_ids(&out2, &ledger.acked);
    check_exact(
        "disk full, backend one",
        &ledger,
        &ledger.acked,
        &got1,
        &a.stderr_text(),
    );
    check_exact(
        "disk full, backend two",
        &ledger,
        &ledger.acked,
        &got2,
        &a.stderr_text(),
    );

    // Phase 3: the delivered data's space is free again (no restart): new requests are accepted.
    let drained = wait_until(Duration::from_secs(30), || {
        ["otlp/one", "otlp/two"].iter().all(|e| {
            metric(
                a_metrics,
                &format!("spanpipe_exporter_persistent_queue_bytes{{exporter=\"{e}\"}}"),
            ) == Some(0.0)
        })
    });
    assert!(
        drained,
        "the queues did not empty; stderr:\n{}",
        tail(&a.stderr_text(), 4000)
    );
    let used_after = tmpfs.used();
    let more = Arc::new(Mutex::new(Ledger::default()));
    rt.block_on(send_padded(
        a_grpc,
        6 << 32,
        1,
        40,
        16_000,
        Arc::new(AtomicBool::new(false)),
        more.clone(),
    ));
    let more = take_ledger(more);
    eprintln!(
        "after draining (tmpfs used {used_after} bytes): {} of 40 requests acknowledged, {} refused; write failures \
         one={} two={}",
        more.acked.len() as u64 / SPANS_PER_REQUEST,
        more.refused,
        failures("otlp/one"),
        failures("otlp/two"),
    );
    assert_eq!(
        (more.acked.len() as u64, more.refused),
        (40 * SPANS_PER_REQUEST, 0),
        "accepting again without a restart; stderr:\n{}",
        tail(&a.stderr_text(), 4000)
    );
    let mut all = ledger.acked.clone();
    all.extend(more.acked.iter().cloned());
    let got1 = wait_for_ids(&out1, &all);
    let got2 = wait_for_ids(&out2, &all);
    check_exact(
        "after space freed, backend one",
        &more,
        &all,
        &got1,
        &a.stderr_text(),
    );
    check_exact(
        "after space freed, backend two",
        &more,
        &all,
        &got2,
        &a.stderr_text(),
    );
    a.stop_gracefully();
    drop(tmpfs);
}

/// The records of the one non-empty segment of `storage` (there is one when nothing rotated): (offset, data
/// length) from each 16-byte header's length field.
fn segment_records(storage: &std::path::Path) -> (std::path::PathBuf, Vec<(usize, usize)>) {
    let mut logs = Vec::new();
    for owner in std::fs::read_dir(storage).expect("storage dir") {
        let owner = owner.expect("entry").path();
        if !owner.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&owner).expect("owner dir") {
            let p = f.expect("entry").path();
            if p.extension().is_some_and(|e| e == "log")
                && std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0) > 0
            {
                logs.push(p);
            }
        }
    }
    assert_eq!(logs.len(), 1, "one non-empty segment: {logs:?}");
    let path = logs.remove(0);
    let bytes = std::fs::read(&path).expect("read segment");
    let mut records = Vec::new();
    let mut off = 0usize;
    while off + 16 <= bytes.len() {
        let len = u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]])
            as usize;
        records.push((off, len));
        off += 16 + len;
    }
    assert_eq!(off, bytes.len(), "the segment is whole before the damage");
    (path, records)
}

/// Damages a segment's bytes given its records' (offset, data length); returns the request it destroyed.
type Damage = fn(&mut Vec<u8>, &[(usize, usize)]) -> usize;

/// Issue 14, case 2: 50 requests queued (backend down, one sender so record k is request k), spanpipe stopped,
/// the segment damaged by `damage` (which returns the request it destroyed), spanpipe restarted with the backend
/// up: every other request is delivered, exactly once, and exactly one damaged record is counted.
fn damaged_queue_case(label: &str, base: u64, damage: Damage) {
    let [a_grpc, a_metrics, b_grpc] = free_ports::<3>();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-pq-damage-")
        .tempdir()
        .expect("tempdir");
    let storage = work.path().join("queue");
    let out = work.path().join("backend.jsonl");
    let yaml = collector_yaml(a_grpc, a_metrics, b_grpc, &storage, 100_000, None);
    let mut a = Spanpipe::start(&yaml, &[a_grpc]);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    runtime().block_on(send_until(
        a_grpc,
        base,
        1,
        50,
        Arc::new(AtomicBool::new(false)),
        ledger.clone(),
    ));
    let ledger = take_ledger(ledger);
    assert_eq!(ledger.acked.len() as u64, 50 * SPANS_PER_REQUEST);
    a.stop_gracefully();

    let (path, records) = segment_records(&storage);
    assert_eq!(records.len(), 50, "one record per request");
    let mut bytes = std::fs::read(&path).expect("read segment");
    let lost_request = damage(&mut bytes, &records);
    std::fs::write(&path, &bytes).expect("write damaged segment");
    let lost: HashSet<String> = request_ids(base, lost_request as u64)
        .iter()
        .map(|i| hex(i))
        .collect();
    let expected: Vec<String> = ledger
        .acked
        .iter()
        .filter(|id| !lost.contains(*id))
        .cloned()
        .collect();

    let _b = backend(b_grpc, &out);
    let mut a2 = Spanpipe::start(&yaml, &[a_grpc]);
    let received = wait_for_ids(&out, &expected);
    let corrupt = metric(
        a_metrics,
        "spanpipe_exporter_persistent_queue_corrupt_records_total{exporter=\"otlp/backend\"}",
    );
    eprintln!(
        "{label}: request {lost_request} damaged; {} of 50 requests delivered; corrupt records counted {corrupt:?}",
        count_ids(&received).len() as u64 / SPANS_PER_REQUEST
    );
    check_exact(label, &ledger, &expected, &received, &a2.stderr_text());
    assert_eq!(
        corrupt,
        Some(1.0),
        "{label}: exactly the damaged record is counted"
    );
    a2.stop_gracefully();
}

#[test]
fn a_flipped_bit_in_a_record_header_costs_only_that_record() {
    damaged_queue_case("header bit flipped", 7 << 32, |bytes, records| {
        // Record #2's length field: without resynchronisation everything after it was cut off.
        bytes[records[1].0 + 1] ^= 0x20;
        1
    });
}

#[test]
fn a_flipped_bit_in_record_data_costs_only_that_record() {
    damaged_queue_case("data bit flipped", 8 << 32, |bytes, records| {
        let (off, len) = records[20];
        bytes[off + 16 + len / 2] ^= 0x01;
        20
    });
}

#[test]
fn a_torn_tail_costs_only_the_last_record() {
    damaged_queue_case("torn tail", 9 << 32, |bytes, records| {
        let (off, len) = records[49];
        bytes.truncate(off + 16 + len / 3);
        49
    });
}

/// Issue 14, case 3: `sending_queue: { storage: ..., batch: }` (batching in the exporter's queue, defaults
/// enabled by the null value) instead of a `batch` processor. SIGKILL mid-stream, three runs (backend down, then
/// up twice so batches are being exported and acknowledged at the kill): after a restart every span the client
/// saw acknowledged is delivered. Duplicates (a batch exported but not yet acknowledged at the kill) are
/// reported.
#[test]
fn batch_in_the_persistent_queue_loses_no_acknowledged_span_on_sigkill() {
    for run in 0..3u64 {
        let [a_grpc, a_metrics, b_grpc] = free_ports::<3>();
        let work = tempfile::Builder::new()
            .prefix("spanpipe-pq-batch-")
            .tempdir()
            .expect("tempdir");
        let storage = work.path().join("queue");
        let out = work.path().join("backend.jsonl");
        let yaml = collector_yaml(a_grpc, a_metrics, b_grpc, &storage, 100_000, None).replacen(
            "      num_consumers: 4\n",
            "      num_consumers: 4\n      batch:\n",
            1,
        );
        assert!(yaml.contains("      batch:\n"));
        let backend_up = run > 0;
        let b = backend_up.then(|| backend(b_grpc, &out));
        let mut a = Spanpipe::start(&yaml, &[a_grpc]);
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let rt = runtime();
        let sender = rt.spawn(send_until(
            a_grpc,
            (10 + run) << 32,
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
                >= 4_000 + run as usize * 1_000),
            "the client got too few acknowledgements; stderr:\n{}",
            tail(&a.stderr_text(), 4000)
        );
        a.kill();
        stop.store(true, Ordering::SeqCst);
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(40), sender).await })
            .expect("senders stop")
            .expect("sender task");
        let before_restart = file_exporter_span_ids(&out).len();
        let _b = b.unwrap_or_else(|| backend(b_grpc, &out));
        let mut a2 = Spanpipe::start(&yaml, &[a_grpc]);
        let ledger = take_ledger(ledger);
        let received = wait_for_ids(&out, &ledger.acked);
        eprintln!(
            "batch run {} (backend {} during the stream): {before_restart} spans in the backend's file at the kill (its file exporter writes lazily)",
            run + 1,
            if backend_up { "up" } else { "down" }
        );
        check(
            &format!("sending_queue.batch SIGKILL run {}", run + 1),
            &ledger,
            &received,
            &a2.stderr_text(),
        );
        a2.stop_gracefully();
    }
}
