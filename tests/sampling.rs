//! `probabilistic_sampler` across replicas: two spanpipe instances with the same `sampling_percentage` receive
//! the same 100,000 single-span traces (`spanpipe-loadgen send --seed`, identical ids on both runs) and write what
//! they keep with the `file` exporter. Both must keep exactly the same traces, exactly those the OTel consistent
//! sampling rule selects (trace id's low 56 bits >= the 25% threshold `c0000000000000`), the kept fraction must be
//! within 1 percentage point of 25%, and every kept span must carry `ot=th:c` in its `tracestate`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use spanpipe_e2e::{Spanpipe, free_ports, run_bounded, tail, wait_until, workspace_root};

const TRACES: u64 = 100_000;
const PERCENT: f64 = 25.0;
const THRESHOLD: u64 = 0xc0_0000_0000_0000;

/// `$SPANPIPE_LOADGEN_BIN`, else `spanpipe-loadgen` of the test executable's profile, built once (bounded).
fn loadgen() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("SPANPIPE_LOADGEN_BIN") {
            return PathBuf::from(p);
        }
        let profile = std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.parent()?.to_path_buf()))
            .expect("test executable in <target>/<profile>/deps");
        let bin = profile.join("spanpipe-loadgen");
        if !bin.is_file() {
            let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            cmd.current_dir(workspace_root()).args([
                "build",
                "-p",
                "spanpipe-loadgen",
                "--bin",
                "spanpipe-loadgen",
            ]);
            if profile.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            if let Some(target) = profile.parent() {
                cmd.env("CARGO_TARGET_DIR", target);
            }
            let out = run_bounded(&mut cmd, Duration::from_secs(900));
            assert!(
                out.status.success(),
                "building spanpipe-loadgen: {}",
                out.stderr
            );
        }
        bin
    })
    .clone()
}

fn start(dir: &Path, name: &str) -> (Spanpipe, u16, PathBuf) {
    let [grpc] = free_ports::<1>();
    let out = dir.join(format!("{name}.jsonl"));
    let sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
processors:
  probabilistic_sampler:
    sampling_percentage: {PERCENT}
  batch: {{ timeout: 50ms }}
exporters:
  file: {{ path: {out} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [probabilistic_sampler, batch], exporters: [file] }}
",
            out = out.display()
        ),
        &[grpc],
    );
    (sp, grpc, out)
}

fn send(port: u16) {
    let out = run_bounded(
        Command::new(loadgen()).args([
            "send",
            "--endpoint",
            &format!("127.0.0.1:{port}"),
            "--protocol",
            "grpc",
            "--total",
            &TRACES.to_string(),
            "--spans-per-trace",
            "1",
            "--spans-per-request",
            "1000",
            "--connections",
            "2",
            "--seed",
            "4242",
            "--hard-timeout",
            "60s",
        ]),
        Duration::from_secs(90),
    );
    assert!(
        out.status.success(),
        "loadgen send failed:\n{}\n{}",
        out.stdout,
        tail(&out.stderr, 3000)
    );
}

/// Kept traces (trace id → tracestate) from a `file` exporter's output.
fn kept(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut m = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("OTLP/JSON line");
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let tid = s["traceId"].as_str().expect("traceId").to_ascii_lowercase();
                    let ts = s["traceState"].as_str().unwrap_or_default().to_string();
                    assert!(
                        m.insert(tid.clone(), ts).is_none(),
                        "trace {tid} exported twice"
                    );
                }
            }
        }
    }
    m
}

/// Every trace id loadgen sends with `--seed 4242`, one span per trace (its `ids.rs` scheme).
fn all_trace_ids() -> Vec<[u8; 16]> {
    (0..TRACES)
        .map(|seq| {
            let mut id = [0u8; 16];
            let span_id = (4242u64 << 48) | ((seq + 1) & ((1 << 48) - 1));
            id[..8].copy_from_slice(&span_id.to_be_bytes());
            let mix = (seq + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            id[8..].copy_from_slice(&mix.to_be_bytes());
            id
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn two_replicas_keep_the_same_traces_at_the_configured_rate() {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("spanpipe-sampling-")
        .tempdir()
        .expect("tempdir");
    let (mut a, port_a, out_a) = start(dir.path(), "a");
    let (mut b, port_b, out_b) = start(dir.path(), "b");
    send(port_a);
    send(port_b);
    // The expected decision per trace, from the spec's rule, so the check does not rely on the sampler itself.
    let expected: BTreeSet<String> = all_trace_ids()
        .iter()
        .filter(|id| {
            id[9..]
                .iter()
                .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
                >= THRESHOLD
        })
        .map(|id| hex(id))
        .collect();
    for (sp, out) in [(&mut a, &out_a), (&mut b, &out_b)] {
        let done = wait_until(Duration::from_secs(30), || {
            kept(out).len() >= expected.len()
        });
        assert!(
            done,
            "{}: {} of {} expected traces; spanpipe:\n{}",
            out.display(),
            kept(out).len(),
            expected.len(),
            tail(&sp.stderr_text(), 3000)
        );
        assert!(sp.stop_gracefully().success());
    }
    let (ka, kb) = (kept(&out_a), kept(&out_b));
    assert_eq!(ka.len(), kb.len());
    let ids_a: BTreeSet<&String> = ka.keys().collect();
    let ids_b: BTreeSet<&String> = kb.keys().collect();
    let differ: Vec<_> = ids_a.symmetric_difference(&ids_b).take(5).collect();
    assert!(
        differ.is_empty(),
        "replicas decided differently, e.g. {differ:?}"
    );
    let got: BTreeSet<String> = ka.keys().cloned().collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "kept count differs from the spec's rule"
    );
    assert!(got == expected, "kept set differs from the spec's rule");
    let fraction = got.len() as f64 / TRACES as f64;
    assert!(
        (fraction - PERCENT / 100.0).abs() <= 0.01,
        "kept {fraction:.4} of traces, setting {PERCENT}%"
    );
    let bad: Vec<_> = ka
        .iter()
        .filter(|(_, ts)| ts.as_str() != "ot=th:c")
        .take(3)
        .collect();
    assert!(bad.is_empty(), "kept spans without ot=th:c: {bad:?}");
    eprintln!(
        "sampling: {} of {TRACES} traces kept ({:.3}%) by both replicas, identical sets, in {:.1?}",
        got.len(),
        fraction * 100.0,
        started.elapsed()
    );
}
