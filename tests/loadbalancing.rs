//! The `loadbalancing` exporter end to end: one front spanpipe routing by trace id (static resolver) to three
//! back spanpipes, each writing what it receives with a `file` exporter; the clients are the real OpenTelemetry
//! Python SDK (OTLP/gRPC, `tests/python/lb_send.py`), several at once, traces of 5–20 spans.
//!
//! - `ten_thousand_traces_stay_whole_and_spread_evenly`: 10,000 traces — every acknowledged span at exactly one
//!   back end (0 lost, 0 duplicated), every trace's spans all at one back end, each back end's share of traces
//!   within ±15% of a third.
//! - `a_stopped_back_end_hands_its_share_over_and_gets_it_back`: a back end stopped (SIGTERM) while clients send:
//!   nothing acknowledged is lost; while it is down every new trace goes whole to the other two; restarted on its
//!   port, about a third of new traces go to it again.
//!
//! Every wait is bounded. Figures are printed (`--nocapture`) for docs/components/loadbalancing.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spanpipe_e2e::{Spanpipe, free_ports, tail, wait_until};

#[path = "loadbalancing_support.rs"]
mod support;
use support::{Back, acked, delivered, split_traces, start_back, start_clients, traces_per_back};

/// `(trace id, span id)`, hex.
fn front_config(port: u16, metrics: u16, backs: &[u16]) -> String {
    let hostnames: Vec<String> = backs.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    format!(
        "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{port} }}
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        tls: {{ insecure: true }}
        compression: none
        timeout: 5s
        retry_on_failure: {{ initial_interval: 200ms, max_interval: 1s, max_elapsed_time: 60s }}
    resolver:
      static:
        hostnames: [{}]
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [loadbalancing] }}
",
        hostnames.join(", ")
    )
}

#[test]
fn ten_thousand_traces_stay_whole_and_spread_evenly() {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("spanpipe-lb-")
        .tempdir()
        .expect("tempdir");
    let [front, fm, b1, b2, b3, m1, m2, m3] = free_ports::<8>();
    let backs: Vec<Back> = [(b1, m1), (b2, m2), (b3, m3)]
        .iter()
        .enumerate()
        .map(|(i, (p, m))| start_back(*p, *m, dir.path().join(format!("back-{i}.jsonl"))))
        .collect();
    let mut front_sp = Spanpipe::start(&front_config(front, fm, &[b1, b2, b3]), &[front]);

    let sent = acked(start_clients(dir.path(), front, "even", 4, 2500, 0.0));
    let files: Vec<&Path> = backs.iter().map(|b| b.file.as_path()).collect();
    let at = delivered(&files, &sent, Duration::from_secs(60));
    let traces: BTreeSet<&str> = sent.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(traces.len(), 10_000, "traces sent");
    let per = traces_per_back(&sent, &at);
    let total: usize = at.iter().map(Vec::len).sum();
    assert_eq!(
        total,
        sent.len(),
        "every acknowledged span exactly once, nothing else"
    );
    let fair = 10_000.0 / 3.0;
    let offs: Vec<f64> = per
        .iter()
        .map(|n| (*n as f64 - fair) / fair * 100.0)
        .collect();
    eprintln!(
        "FIGURES even: {} traces, {} spans, traces per back end {per:?} (off a third: {offs:.1?} %), 0 lost, 0 duplicated, {:.1} s",
        traces.len(),
        sent.len(),
        started.elapsed().as_secs_f64()
    );
    for (n, off) in per.iter().zip(&offs) {
        assert!(
            off.abs() <= 15.0,
            "a back end got {n} traces ({off:.1}% off a third): {per:?}"
        );
    }
    front_sp.assert_running();
}

#[test]
fn a_stopped_back_end_hands_its_share_over_and_gets_it_back() {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("spanpipe-lb-fail-")
        .tempdir()
        .expect("tempdir");
    let [front, fm, b1, b2, b3, m1, m2, m3] = free_ports::<8>();
    let mut backs: Vec<Back> = [(b1, m1), (b2, m2), (b3, m3)]
        .iter()
        .enumerate()
        .map(|(i, (p, m))| start_back(*p, *m, dir.path().join(format!("back-{i}.jsonl"))))
        .collect();
    let mut front_sp = Spanpipe::start(&front_config(front, fm, &[b1, b2, b3]), &[front]);

    // Mid-stream: three clients at 150 traces/s each for ~4 s; back end 1 (the second) stops after 1.5 s.
    let clients = start_clients(dir.path(), front, "stop", 3, 600, 150.0);
    std::thread::sleep(Duration::from_millis(1500));
    let stopped_at = Instant::now();
    let mut gone = backs.remove(1);
    gone.sp.stop_gracefully_within(Duration::from_secs(20));
    let stop_took = stopped_at.elapsed();
    let sent_stop = acked(clients);
    let mut files: Vec<PathBuf> = backs.iter().map(|b| b.file.clone()).collect();
    files.insert(1, gone.file.clone());
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let at = delivered(&paths, &sent_stop, Duration::from_secs(60));
    let total: usize = at.iter().map(Vec::len).sum();
    assert_eq!(
        total,
        sent_stop.len(),
        "nothing acknowledged lost, nothing twice"
    );
    let at_gone = at[1].len();
    let split_in_stop = split_traces(&at);

    // While it is down: every new trace goes whole to the other two.
    let sent_down = acked(start_clients(dir.path(), front, "down", 3, 400, 0.0));
    let at = delivered(
        &paths,
        &[sent_stop.clone(), sent_down.clone()].concat(),
        Duration::from_secs(60),
    );
    let per_down = traces_per_back(&sent_down, &at);
    assert_eq!(
        per_down[1], 0,
        "no trace for the stopped back end: {per_down:?}"
    );
    assert_eq!(
        at[1].len(),
        at_gone,
        "the stopped back end got nothing more"
    );
    let down_traces: usize = per_down.iter().sum();
    assert_eq!(down_traces, 1200);

    // Restarted on its port (a new file): about a third of new traces go to it again.
    let back_file = dir.path().join("back-1-restarted.jsonl");
    let restarted = start_back(b2, m2, back_file.clone());
    let listening = Instant::now();
    // The front probes an ejected back end every 500 ms and logs when it takes it back.
    assert!(
        wait_until(Duration::from_secs(10), || front_sp
            .stderr_text()
            .contains("backend is back")),
        "the front did not take the restarted back end back:\n{}",
        tail(&front_sp.stderr_text(), 4000)
    );
    let readmitted = listening.elapsed();
    let sent_back = acked(start_clients(dir.path(), front, "back", 3, 600, 0.0));
    let paths_back: Vec<&Path> = vec![&files[0], &back_file, &files[2]];
    let at_back = delivered(&paths_back, &sent_back, Duration::from_secs(60));
    let per_back = traces_per_back(&sent_back, &at_back);
    let share = per_back[1] as f64 / 1800.0;
    eprintln!(
        "FIGURES failover: mid-stream {} spans acknowledged, all delivered once ({} at the stopped back end before \
         its stop, which took {:.1} s; {split_in_stop} traces in flight at the stop split over two back ends); while \
         down 1200 traces went {:?} (none to it); restarted, it was back on the front's ring {:.1} s after it \
         listened and got {:.1}% of 1800 new traces {per_back:?}; {:.1} s",
        sent_stop.len(),
        at_gone,
        stop_took.as_secs_f64(),
        per_down,
        readmitted.as_secs_f64(),
        share * 100.0,
        started.elapsed().as_secs_f64()
    );
    assert!(
        (0.22..=0.45).contains(&share),
        "share of the restarted back end: {share}"
    );
    let log = front_sp.stderr_text();
    assert!(
        log.contains("backend refuses connections"),
        "front log:\n{}",
        tail(&log, 4000)
    );
    assert!(
        log.contains("backend is back"),
        "front log:\n{}",
        tail(&log, 4000)
    );
    front_sp.assert_running();
    drop(restarted);
}
