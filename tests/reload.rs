//! Reload on SIGHUP, driven against the real binary: the config file is rewritten and the process signalled.
//!
//! - A changed exporter endpoint moves traffic from backend A to backend B while a client keeps sending: every
//!   accepted span arrives exactly once at A or B, requests answered before the SIGHUP at A, requests sent after
//!   the reload was logged at B; the receiver keeps its listener (no request fails).
//! - A broken file (bad YAML, an unknown key) is rejected with file, line and key in the log; the old pipeline
//!   keeps delivering.
//! - An unchanged exporter whose backend is down keeps its queued data across a reload that changes another
//!   exporter; when the backend comes up, everything is delivered once.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use spanpipe_e2e::otlp::{CT_PROTOBUF, hex, http_client, proto_body, span_id, trace_id};
use spanpipe_e2e::{
    IdDiff, PyProcess, Spanpipe, count_ids, file_exporter_span_ids, free_ports, read_ids,
    spawn_python, tail, wait_until,
};

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

fn grpc_sink(port: u16, ids_out: &Path) -> PyProcess {
    spawn_python(
        "grpc_sink.py",
        &[
            "--port".into(),
            port.to_string(),
            "--ids-out".into(),
            ids_out.display().to_string(),
        ],
    )
}

/// Whether one line of `log` contains every needle.
fn logged(log: &str, needles: &[&str]) -> bool {
    log.lines().any(|l| needles.iter().all(|n| l.contains(n)))
}

/// Waits (bounded) until the collector's stderr has `count` lines with every needle; returns when it saw them.
fn wait_logged(sp: &Spanpipe, needles: &[&str], count: usize, timeout: Duration) -> Instant {
    let seen = wait_until(timeout, || {
        let log = sp.stderr_text();
        log.lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
            >= count
    });
    assert!(
        seen,
        "no log line with {needles:?} within {timeout:?}; stderr:\n{}",
        tail(&sp.stderr_text(), 6000)
    );
    Instant::now()
}

/// Rewrites the collector's config file and sends SIGHUP.
fn reload_with(sp: &Spanpipe, yaml: &str) {
    std::fs::write(sp.config_path(), yaml).expect("rewrite config");
    sp.signal(libc::SIGHUP);
}

/// One OTLP/HTTP request of the client and what became of it.
struct Request {
    spans: Vec<String>,
    accepted: bool,
    started: Instant,
    finished: Instant,
}

/// Span ids of request `n`: `spans` ids, distinct across requests.
fn request_ids(n: u64, spans: usize) -> Vec<Vec<u8>> {
    (0..spans as u64).map(|i| span_id(n * 1000 + i)).collect()
}

/// Sends `requests` protobuf requests of `spans` spans to `port`, one after another. A 503 is retried (bounded):
/// it means nothing was kept. Any other answer or a transport error fails the test — the receiver is expected to
/// keep serving through a reload. `done` counts finished requests.
fn send_stream(
    port: u16,
    first: u64,
    requests: usize,
    spans: usize,
    done: Arc<AtomicUsize>,
) -> Vec<Request> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = http_client();
        let mut out = Vec::with_capacity(requests);
        for k in 0..requests as u64 {
            let n = first + k;
            let ids = request_ids(n, spans);
            let body = proto_body(&trace_id(n), &ids);
            let started = Instant::now();
            let mut accepted = false;
            for _attempt in 0..100 {
                let resp = client
                    .post(format!("http://127.0.0.1:{port}/v1/traces"))
                    .header(http::header::CONTENT_TYPE, CT_PROTOBUF)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("request {n}: transport error: {e}"));
                match resp.status().as_u16() {
                    200 => {
                        accepted = true;
                        break;
                    }
                    503 => tokio::time::sleep(Duration::from_millis(50)).await,
                    s => panic!("request {n}: unexpected HTTP {s}"),
                }
            }
            out.push(Request {
                spans: ids.iter().map(|s| hex(s)).collect(),
                accepted,
                started,
                finished: Instant::now(),
            });
            done.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        out
    })
}

fn collector_yaml(http: u16, backend: u16) -> String {
    format!(
        "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ send_batch_size: 200, timeout: 100ms }}
exporters:
  otlp/backend:
    endpoint: 127.0.0.1:{backend}
    tls: {{ insecure: true }}
    timeout: 10s
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 60s }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp/backend] }}
  telemetry: {{ logs: {{ level: info }} }}
"
    )
}

#[test]
fn sighup_with_a_new_endpoint_moves_traffic_without_losing_a_span() {
    const REQUESTS: usize = 400;
    const SPANS: usize = 20;
    const RELOAD_AFTER: usize = 120;
    let [http, port_a, port_b] = free_ports::<3>();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-reload-")
        .tempdir()
        .expect("tempdir");
    let (ids_a, ids_b) = (work.path().join("a.txt"), work.path().join("b.txt"));
    let mut sink_a = grpc_sink(port_a, &ids_a);
    let mut sink_b = grpc_sink(port_b, &ids_b);
    let mut sp = Spanpipe::start(&collector_yaml(http, port_a), &[http]);

    let done = Arc::new(AtomicUsize::new(0));
    let client = std::thread::spawn({
        let done = done.clone();
        move || send_stream(http, 1, REQUESTS, SPANS, done)
    });
    assert!(
        wait_until(Duration::from_secs(60), || done.load(Ordering::SeqCst)
            >= RELOAD_AFTER),
        "the client did not get {RELOAD_AFTER} requests through"
    );
    let hup_sent = Instant::now();
    reload_with(&sp, &collector_yaml(http, port_b));
    let reloaded = wait_logged(&sp, &["configuration reloaded"], 1, Duration::from_secs(30));
    let sent = client.join().expect("client thread");
    sp.assert_running();

    let accepted: Vec<&Request> = sent.iter().filter(|r| r.accepted).collect();
    assert_eq!(
        accepted.len(),
        REQUESTS,
        "every request is eventually accepted (503s are retried)"
    );
    let expected: Vec<String> = accepted.iter().flat_map(|r| r.spans.clone()).collect();
    assert!(
        wait_until(DELIVERY_TIMEOUT, || {
            read_ids(&ids_a).len() + read_ids(&ids_b).len() >= expected.len()
        }),
        "backends got {} + {} of {} spans",
        read_ids(&ids_a).len(),
        read_ids(&ids_b).len(),
        expected.len()
    );
    // Let late duplicates surface before the exact comparison.
    std::thread::sleep(Duration::from_millis(500));
    let (got_a, got_b) = (read_ids(&ids_a), read_ids(&ids_b));
    let union: Vec<String> = got_a.iter().chain(&got_b).cloned().collect();
    let diff = IdDiff::compute(&expected, &union);
    assert!(
        diff.is_exact(),
        "A ∪ B must hold every accepted span exactly once: {diff}\nstderr:\n{}",
        tail(&sp.stderr_text(), 6000)
    );
    // Which side each request landed on. A batch is committed to one exporter generation only, so a request
    // answered before the SIGHUP was sent went to A, one sent after the reload was logged goes to B, and the
    // requests in between may go either way (but, as checked above, exactly once).
    let (in_a, in_b) = (count_ids(&got_a), count_ids(&got_b));
    let (mut before, mut after) = (0, 0);
    for r in &accepted {
        if r.finished < hup_sent {
            before += 1;
            assert!(
                r.spans.iter().all(|s| in_a.contains_key(s)),
                "a request answered before SIGHUP is not (all) at A"
            );
        }
        if r.started > reloaded {
            after += 1;
            assert!(
                r.spans.iter().all(|s| in_b.contains_key(s)),
                "a request sent after the reload is not (all) at B"
            );
        }
    }
    eprintln!(
        "A got {} spans, B got {}; {before} requests before the SIGHUP, {after} after the reload was logged",
        got_a.len(),
        got_b.len()
    );
    assert!(
        before >= RELOAD_AFTER && after > 0,
        "before={before} after={after}"
    );

    let log = sp.stderr_text();
    assert!(
        logged(&log, &["reload: replaced", "otlp/backend"]),
        "{}",
        tail(&log, 4000)
    );
    assert!(
        logged(&log, &["reload: kept", "receiver", "otlp"]),
        "{}",
        tail(&log, 4000)
    );
    assert!(
        logged(&log, &["configuration reloaded", "1 kept", "2 replaced"]),
        "{}",
        tail(&log, 4000)
    );
    let status = sp.stop_gracefully();
    assert!(status.success(), "spanpipe exited with {status}");
    sink_a.stop();
    sink_b.stop();
    let after_stop = IdDiff::compute(&expected, &[read_ids(&ids_a), read_ids(&ids_b)].concat());
    assert!(after_stop.is_exact(), "after shutdown: {after_stop}");
}

/// Sends one request of 5 spans numbered `n` and returns its span ids (the collector must accept it).
fn send_one(port: u16, n: u64) -> Vec<String> {
    let sent = send_stream(port, n, 1, 5, Arc::new(AtomicUsize::new(0)));
    assert!(sent[0].accepted, "request {n} was not accepted");
    sent[0].spans.clone()
}

#[test]
fn sighup_with_a_broken_file_keeps_serving_and_names_file_line_and_key() {
    let [http, port_a] = free_ports::<2>();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-reload-")
        .tempdir()
        .expect("tempdir");
    let ids_a = work.path().join("a.txt");
    let mut sink_a = grpc_sink(port_a, &ids_a);
    let good = collector_yaml(http, port_a);
    let mut sp = Spanpipe::start(&good, &[http]);
    let config = sp.config_path().display().to_string();
    let mut sent = send_one(http, 1);

    // 1. An unknown key in the exporter: rejected with file:line and the key path.
    let broken = good.replace(
        "    timeout: 10s\n",
        "    timeout: 10s\n    no_such_option: 1\n",
    );
    let line = broken
        .lines()
        .position(|l| l.contains("no_such_option"))
        .expect("inserted")
        + 1;
    reload_with(&sp, &broken);
    wait_logged(&sp, &["reload rejected"], 1, Duration::from_secs(30));
    let log = sp.stderr_text();
    let at = format!("{config}:{line}:");
    assert!(
        logged(
            &log,
            &[
                "reload rejected",
                &at,
                "exporters.otlp/backend.no_such_option"
            ]
        ),
        "expected {at} and the key in the rejection; stderr:\n{}",
        tail(&log, 4000)
    );
    sp.assert_running();
    sent.extend(send_one(http, 2));

    // 2. Not YAML at all.
    reload_with(&sp, &good.replace("service:\n", "service: [\n"));
    wait_logged(&sp, &["reload rejected"], 2, Duration::from_secs(30));
    assert!(logged(
        &sp.stderr_text(),
        &["reload rejected", &format!("{config}:")]
    ));
    sp.assert_running();
    sent.extend(send_one(http, 3));

    // 3. The valid file again: nothing changed, so everything is kept.
    reload_with(&sp, &good);
    wait_logged(
        &sp,
        &["configuration reloaded", "0 replaced"],
        1,
        Duration::from_secs(30),
    );
    sent.extend(send_one(http, 4));

    assert!(wait_until(DELIVERY_TIMEOUT, || read_ids(&ids_a).len() >= sent.len()));
    let status = sp.stop_gracefully();
    assert!(status.success(), "spanpipe exited with {status}");
    sink_a.stop();
    let diff = IdDiff::compute(&sent, &read_ids(&ids_a));
    assert!(diff.is_exact(), "the old pipeline kept delivering: {diff}");
    let log = sp.stderr_text();
    assert!(
        !logged(&log, &["reload: replaced"]),
        "a rejected reload replaced something:\n{}",
        tail(&log, 4000)
    );
}

fn two_exporters_yaml(http: u16, keep: u16, file: &Path) -> String {
    format!(
        "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
exporters:
  otlp/keep:
    endpoint: 127.0.0.1:{keep}
    tls: {{ insecure: true }}
    timeout: 2s
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 300ms, max_elapsed_time: 120s }}
  file/other:
    path: {file}
service:
  pipelines:
    traces/keep: {{ receivers: [otlp], exporters: [otlp/keep] }}
    traces/other: {{ receivers: [otlp], exporters: [file/other] }}
  telemetry: {{ logs: {{ level: info }} }}
",
        file = file.display()
    )
}

#[test]
fn an_unchanged_exporter_keeps_its_queued_data_across_a_reload() {
    const BEFORE: usize = 30;
    const AFTER: usize = 10;
    let [http, keep] = free_ports::<2>();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-reload-")
        .tempdir()
        .expect("tempdir");
    let (file_1, file_2, sink_ids) = (
        work.path().join("other-1.jsonl"),
        work.path().join("other-2.jsonl"),
        work.path().join("keep.txt"),
    );
    let mut sp = Spanpipe::start(&two_exporters_yaml(http, keep, &file_1), &[http]);
    // otlp/keep's backend is down: these spans wait in its queue (retrying).
    let done = Arc::new(AtomicUsize::new(0));
    let first: Vec<String> = send_stream(http, 1, BEFORE, 10, done.clone())
        .into_iter()
        .flat_map(|r| r.spans)
        .collect();
    assert!(wait_until(DELIVERY_TIMEOUT, || file_exporter_span_ids(
        &file_1
    )
    .len()
        >= first.len()));
    assert!(read_ids(&sink_ids).is_empty());

    // Reload changing only file/other.
    reload_with(&sp, &two_exporters_yaml(http, keep, &file_2));
    wait_logged(&sp, &["configuration reloaded"], 1, Duration::from_secs(30));
    let log = sp.stderr_text();
    assert!(
        logged(&log, &["reload: kept", "otlp/keep"]),
        "{}",
        tail(&log, 4000)
    );
    assert!(
        logged(&log, &["reload: replaced", "file/other"]),
        "{}",
        tail(&log, 4000)
    );
    let second: Vec<String> = send_stream(http, 1000, AFTER, 10, done)
        .into_iter()
        .flat_map(|r| r.spans)
        .collect();

    // The backend comes up: the queued spans and the new ones arrive, each once.
    let mut sink = grpc_sink(keep, &sink_ids);
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert!(
        wait_until(DELIVERY_TIMEOUT, || read_ids(&sink_ids).len() >= all.len()),
        "the sink got {} of {} spans; stderr:\n{}",
        read_ids(&sink_ids).len(),
        all.len(),
        tail(&sp.stderr_text(), 4000)
    );
    assert!(wait_until(DELIVERY_TIMEOUT, || file_exporter_span_ids(
        &file_2
    )
    .len()
        >= second.len()));
    let status = sp.stop_gracefully();
    assert!(status.success(), "spanpipe exited with {status}");
    sink.stop();
    let kept = IdDiff::compute(&all, &read_ids(&sink_ids));
    assert!(
        kept.is_exact(),
        "otlp/keep (queued across the reload): {kept}"
    );
    let one = IdDiff::compute(&first, &file_exporter_span_ids(&file_1));
    assert!(one.is_exact(), "file/other before the reload: {one}");
    let two = IdDiff::compute(&second, &file_exporter_span_ids(&file_2));
    assert!(two.is_exact(), "file/other after the reload: {two}");
}
