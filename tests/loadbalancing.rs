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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spanpipe_e2e::process::wait_timeout;
use spanpipe_e2e::{Spanpipe, free_ports, python_script, tail, venv_python, wait_until};

/// `(trace id, span id)`, hex.
type SpanKey = (String, String);

fn back_config(port: u16, metrics: u16, file: &Path) -> String {
    format!(
        "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{port} }}
exporters:
  file:
    path: {}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
",
        file.display()
    )
}

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

/// One back end: a spanpipe with a `file` exporter writing to `file`.
struct Back {
    sp: Spanpipe,
    file: PathBuf,
}

fn start_back(port: u16, metrics: u16, file: PathBuf) -> Back {
    let sp = Spanpipe::start(&back_config(port, metrics, &file), &[port]);
    Back { sp, file }
}

/// Every `(trace, span)` in a `file` exporter's OTLP/JSON lines (complete lines only).
fn spans_in(file: &Path) -> Vec<SpanKey> {
    let Ok(bytes) = std::fs::read(file) else {
        return Vec::new();
    };
    let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&bytes[..end]).lines() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", file.display(), tail(line, 300)));
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let t = s["traceId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    let id = s["spanId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    assert!(
                        t.len() == 32 && id.len() == 16,
                        "{}: bad ids {t:?} {id:?}",
                        file.display()
                    );
                    out.push((t, id));
                }
            }
        }
    }
    out
}

/// Starts `n` SDK clients against `front`, each sending `traces` traces (at most `rate` per second, 0: no limit).
fn start_clients(
    dir: &Path,
    front: u16,
    phase: &str,
    n: usize,
    traces: usize,
    rate: f64,
) -> Vec<(Child, PathBuf)> {
    (0..n)
        .map(|i| {
            let out = dir.join(format!("acked-{phase}-{i}.txt"));
            let seed = format!("{}{i}", phase.len());
            let child = Command::new(venv_python())
                .arg(python_script("lb_send.py"))
                .args(["--endpoint", &format!("127.0.0.1:{front}")])
                .args(["--traces", &traces.to_string()])
                .args(["--rate", &rate.to_string()])
                .args(["--seed", &seed, "--run-id", phase])
                .arg("--out")
                .arg(&out)
                .args(["--timeout", "100"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start lb_send.py");
            (child, out)
        })
        .collect()
}

/// Waits for the clients (bounded) and returns every span they saw acknowledged.
fn acked(clients: Vec<(Child, PathBuf)>) -> Vec<SpanKey> {
    let mut all = Vec::new();
    for (mut child, out) in clients {
        let status = wait_timeout(&mut child, Duration::from_secs(110)).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("lb_send.py did not finish in time");
        });
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert!(
            status.success(),
            "lb_send.py failed ({status}): {}",
            tail(&err, 3000)
        );
        let text = std::fs::read_to_string(&out).expect("acked ids");
        for line in text.lines() {
            let (t, s) = line.split_once(' ').expect("trace span");
            all.push((t.to_string(), s.to_string()));
        }
    }
    all
}

/// Waits (bounded) until every span of `want` is in one of `files`; returns what each file holds.
fn delivered(files: &[&Path], want: &[SpanKey], bound: Duration) -> Vec<Vec<SpanKey>> {
    let want: BTreeSet<&SpanKey> = want.iter().collect();
    let mut got = Vec::new();
    let ok = wait_until(bound, || {
        got = files.iter().map(|f| spans_in(f)).collect();
        let have: BTreeSet<&SpanKey> = got.iter().flatten().collect();
        want.iter().all(|k| have.contains(k))
    });
    if !ok {
        let have: BTreeSet<&SpanKey> = got.iter().flatten().collect();
        let missing = want.iter().filter(|k| !have.contains(*k)).count();
        panic!(
            "{missing} of {} acknowledged spans never arrived within {bound:?}",
            want.len()
        );
    }
    got
}

/// Per back end: the traces of `sent` it holds spans of. Panics on a duplicate span or a trace split over two.
fn traces_per_back(sent: &[SpanKey], at: &[Vec<SpanKey>]) -> Vec<usize> {
    let sent_traces: BTreeSet<&str> = sent.iter().map(|(t, _)| t.as_str()).collect();
    let mut copies: HashMap<&SpanKey, usize> = HashMap::new();
    let mut owner: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    for (i, spans) in at.iter().enumerate() {
        for k in spans {
            if sent_traces.contains(k.0.as_str()) {
                *copies.entry(k).or_insert(0) += 1;
                owner.entry(k.0.as_str()).or_default().insert(i);
            }
        }
    }
    let dups = copies.values().filter(|n| **n > 1).count();
    assert_eq!(dups, 0, "spans delivered more than once");
    let split: Vec<_> = owner.iter().filter(|(_, b)| b.len() > 1).take(5).collect();
    assert!(split.is_empty(), "traces split over back ends: {split:?}");
    let mut per = vec![0usize; at.len()];
    for backs in owner.values() {
        if let Some(b) = backs.iter().next() {
            per[*b] += 1;
        }
    }
    per
}

/// Traces whose spans are at more than one back end.
fn split_traces(at: &[Vec<SpanKey>]) -> usize {
    let mut owner: HashMap<&str, BTreeSet<usize>> = HashMap::new();
    for (i, spans) in at.iter().enumerate() {
        for (t, _) in spans {
            owner.entry(t.as_str()).or_default().insert(i);
        }
    }
    owner.values().filter(|b| b.len() > 1).count()
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
