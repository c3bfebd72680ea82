//! The `health_check` extension through a whole life: 503 while starting (an exporter whose destination is not
//! ready yet holds the start: a `file` exporter writing into a FIFO nobody reads), 200 once every pipeline runs,
//! 503 when the only real backend (a second spanpipe) is stopped and every send has failed for longer than
//! `check_collector_pipeline.interval`, 200 again once it is restarted on the same port, and 503 on both probes
//! while a SIGTERM drains a queue that cannot deliver (`shutdown_timeout` bounds it). `/livez` stays 200 through the
//! outage.

#[path = "spanmetrics_support.rs"]
mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use spanpipe_e2e::otlp::{grpc_export_raw, proto_body, span_id, trace_id};
use spanpipe_e2e::{Spanpipe, file_exporter_span_ids, free_ports, port_open, wait_until};
use support::{block_on, http_get};

/// `check_collector_pipeline.interval` of the test.
const INTERVAL: Duration = Duration::from_secs(1);

fn probe(port: u16, path: &str) -> (u16, String) {
    http_get(&format!("http://127.0.0.1:{port}{path}"))
}

fn backend(port: u16) -> Spanpipe {
    Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{port} }}
exporters:
  file: {{ path: spans.jsonl }}
service:
  telemetry: {{ metrics: {{ address: \"\" }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
"
        ),
        &[port],
    )
}

/// One request of 3 spans (ids unique per `n`), which spanpipe must accept.
fn send(grpc: u16, n: u64) {
    let spans: Vec<Vec<u8>> = (0..3).map(|i| span_id(n * 10 + i + 1)).collect();
    block_on(grpc_export_raw(
        grpc,
        proto_body(&trace_id(n), &spans),
        None,
    ))
    .unwrap_or_else(|e| panic!("request {n} not accepted: {e}"));
}

fn mkfifo(path: &Path) {
    let out = Command::new("mkfifo")
        .arg(path)
        .output()
        .expect("run mkfifo");
    assert!(out.status.success(), "mkfifo: {out:?}");
}

/// Opens the FIFO for reading (which lets spanpipe's `open` for writing return) and discards what arrives.
fn drain_fifo(path: PathBuf) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut f = std::fs::File::open(&path).expect("open fifo");
        let mut buf = [0u8; 8192];
        let mut total = 0u64;
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    })
}

#[test]
fn readiness_follows_start_outage_recovery_and_shutdown() {
    let [health, grpc, backend_port, dead] = free_ports::<4>();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-health-")
        .tempdir()
        .expect("tempdir");
    let fifo = work.path().join("audit.fifo");
    mkfifo(&fifo);
    let mut b = backend(backend_port);
    let yaml = format!(
        "\
extensions:
  health_check:
    endpoint: 127.0.0.1:{health}
    check_collector_pipeline: {{ enabled: true, interval: {interval}ms, exporter_failure_threshold: 2 }}
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
exporters:
  otlp/backend:
    endpoint: 127.0.0.1:{backend_port}
    tls: {{ insecure: true }}
    timeout: 2s
    retry_on_failure: {{ enabled: false }}
  otlp/retrying:
    endpoint: 127.0.0.1:{dead}
    tls: {{ insecure: true }}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 200ms, max_elapsed_time: 10m }}
  file/audit:
    path: {fifo}
service:
  shutdown_timeout: 3s
  telemetry: {{ metrics: {{ address: \"\" }} }}
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp/backend, otlp/retrying, file/audit] }}
",
        interval = INTERVAL.as_millis(),
        fifo = fifo.display()
    );
    // Only the health port: the rest cannot open while the FIFO holds the start.
    let mut sp = Spanpipe::start(&yaml, &[health]);

    // Starting.
    for _ in 0..5 {
        let (code, body) = probe(health, "/readyz");
        assert_eq!(code, 503, "starting: {body}");
        assert_eq!(
            body,
            r#"{"status":"Server not available","upSince":"0001-01-01T00:00:00Z","uptime":""}"#
        );
        assert_eq!(probe(health, "/").0, 503);
        assert_eq!(probe(health, "/livez").0, 200, "alive while starting");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!port_open(grpc), "receivers start after every exporter");

    // Running.
    let reader = drain_fifo(fifo.clone());
    assert!(
        wait_until(Duration::from_secs(10), || probe(health, "/readyz").0
            == 200),
        "not ready after start"
    );
    let (code, body) = probe(health, "/");
    assert_eq!(code, 200);
    assert!(
        body.starts_with(r#"{"status":"Server available","upSince":""#)
            && body.contains(r#""uptime":""#),
        "{body}"
    );
    assert!(port_open(grpc));
    send(grpc, 0);
    let spans_at = |b: &Spanpipe| file_exporter_span_ids(&b.dir().join("spans.jsonl")).len();
    assert!(wait_until(Duration::from_secs(10), || spans_at(&b) == 3));
    assert_eq!(probe(health, "/readyz").0, 200);

    // The backend goes away: every send fails; after INTERVAL (and more than 2 failures) readiness drops.
    b.stop_gracefully();
    let stopped = Instant::now();
    let mut n = 1;
    let unready = wait_until(Duration::from_secs(20), || {
        send(grpc, n);
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
        probe(health, "/readyz").0 == 503
    });
    assert!(
        unready,
        "still ready {:?} after the backend stopped",
        stopped.elapsed()
    );
    assert!(
        stopped.elapsed() >= INTERVAL,
        "unready after {:?}, before the {INTERVAL:?} window",
        stopped.elapsed()
    );
    let (code, body) = probe(health, "/");
    assert_eq!(code, 503);
    assert!(body.contains("Server not available"), "{body}");
    assert_eq!(
        probe(health, "/livez").0,
        200,
        "an outage never fails liveness"
    );

    // Restarted on the same port: the next delivered batch makes it ready again.
    let b2 = backend(backend_port);
    let ready_again = wait_until(Duration::from_secs(20), || {
        send(grpc, n);
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
        probe(health, "/readyz").0 == 200
    });
    assert!(ready_again, "not ready after the backend came back");
    assert!(spans_at(&b2) > 0, "the restarted backend receives spans");

    // Shutting down: `otlp/retrying` cannot deliver, so the drain lasts `shutdown_timeout`; both probes say 503.
    sp.signal(libc::SIGTERM);
    let both_down = wait_until(Duration::from_secs(5), || {
        probe(health, "/readyz").0 == 503 && probe(health, "/livez").0 == 503
    });
    assert!(both_down, "probes still 200 after SIGTERM");
    assert!(
        sp.is_running(),
        "503 observed while draining, not after exit"
    );
    let status = sp.wait_exit_within(Duration::from_secs(30));
    assert!(status.success(), "exit {status}");
    assert_eq!(
        probe(health, "/livez").0,
        0,
        "the endpoint is gone after exit"
    );
    let audit_bytes = reader.join().expect("fifo reader");
    assert!(audit_bytes > 0, "the file exporter wrote through the FIFO");
    let log = sp.stderr_text();
    assert!(log.contains("health check: not ready"), "{log}");
    // One line per change: not ready (starting), ready, not ready (outage), ready (recovered), not ready (stopping).
    let changes = (
        log.matches("health check: not ready").count(),
        log.matches("health check: ready").count(),
    );
    assert_eq!(changes, (3, 2), "{log}");
}
