//! Helpers shared by the `loadbalancing*` suites (included with `#[path]`, not a test target): back ends with a
//! `file` exporter, the Python SDK clients (`tests/python/lb_send.py`), and reading who received which span.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use spanpipe_e2e::process::wait_timeout;
use spanpipe_e2e::{Spanpipe, python_script, tail, venv_python, wait_until};

/// `(trace id, span id)`, hex.
pub type SpanKey = (String, String);

/// A back end: OTLP/gRPC in, every request appended to `file` as OTLP/JSON.
pub fn back_config(host: &str, port: u16, metrics: u16, file: &Path) -> String {
    format!(
        "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: {host}:{port} }}
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

/// One back end: a spanpipe with a `file` exporter writing to `file`.
pub struct Back {
    pub sp: Spanpipe,
    pub file: PathBuf,
}

pub fn start_back(port: u16, metrics: u16, file: PathBuf) -> Back {
    start_back_on("127.0.0.1", port, metrics, file)
}

/// A back end listening on `host` (a loopback address); waits until it accepts connections there.
pub fn start_back_on(host: &str, port: u16, metrics: u16, file: PathBuf) -> Back {
    let sp = Spanpipe::start(&back_config(host, port, metrics, &file), &[]);
    let addr: std::net::SocketAddr = format!("{host}:{port}").parse().expect("addr");
    assert!(
        wait_until(Spanpipe::START_TIMEOUT, || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        }),
        "back end did not listen on {addr}:\n{}",
        tail(&sp.stderr_text(), 4000)
    );
    Back { sp, file }
}

/// Every `(trace, span)` in a `file` exporter's OTLP/JSON lines (complete lines only).
pub fn spans_in(file: &Path) -> Vec<SpanKey> {
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
pub fn start_clients(
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
pub fn acked(clients: Vec<(Child, PathBuf)>) -> Vec<SpanKey> {
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
pub fn delivered(files: &[&Path], want: &[SpanKey], bound: Duration) -> Vec<Vec<SpanKey>> {
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
pub fn traces_per_back(sent: &[SpanKey], at: &[Vec<SpanKey>]) -> Vec<usize> {
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
pub fn split_traces(at: &[Vec<SpanKey>]) -> usize {
    let mut owner: HashMap<&str, BTreeSet<usize>> = HashMap::new();
    for (i, spans) in at.iter().enumerate() {
        for (t, _) in spans {
            owner.entry(t.as_str()).or_default().insert(i);
        }
    }
    owner.values().filter(|b| b.len() > 1).count()
}
