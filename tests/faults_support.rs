//! Helpers of the fault-injection suite (included with `#[path]`, not a test target): the `spanpipe-loadgen`
//! binary, its scriptable `sink` (the fake OTLP backend, real gRPC/HTTP) as a guard, and bounded `send` runs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use spanpipe_e2e::process::{terminate, wait_timeout};
use spanpipe_e2e::{port_open, run_bounded, tail, wait_until, workspace_root};

/// `$SPANPIPE_LOADGEN_BIN`, else `spanpipe-loadgen` in the test executable's profile dir (built there, bounded,
/// when absent).
pub fn loadgen_bin() -> PathBuf {
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
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
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
        // scripts/test.sh builds it with spanpipe; build here only when it is missing (a `cargo build` from inside
        // `cargo test` resolves features differently and would rebuild half the tree).
        if bin.is_file() {
            return bin;
        }
        let out = run_bounded(&mut cmd, Duration::from_secs(900));
        assert!(
            out.status.success(),
            "building spanpipe-loadgen: {}",
            out.stderr
        );
        assert!(bin.is_file(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// What a sink saw: its JSON report and every span's arrival.
pub struct SinkResult {
    pub report: Value,
    /// What the sink printed (a failed re-bind after a down window shows here).
    pub stderr: String,
    /// `(span id, arrival unix ms)` in arrival order.
    pub arrivals: Vec<(u64, u64)>,
}

impl SinkResult {
    pub fn unique(&self) -> u64 {
        self.report["unique"].as_u64().unwrap_or(0)
    }
    pub fn duplicates(&self) -> u64 {
        self.report["duplicates"].as_u64().unwrap_or(u64::MAX)
    }
    /// First arrival per span id.
    pub fn first_arrival(&self) -> HashMap<u64, u64> {
        let mut m = HashMap::with_capacity(self.arrivals.len());
        for &(id, ms) in &self.arrivals {
            m.entry(id).or_insert(ms);
        }
        m
    }
    /// The fault log's entries of `event` (`status`, `reset`, `down`, `up`): their unix ms.
    pub fn fault_times(&self, event: &str) -> Vec<u64> {
        self.report["faults"]["log"]
            .as_array()
            .map(|log| {
                log.iter()
                    .filter(|e| e["event"] == event)
                    .filter_map(|e| e["unix_ms"].as_u64())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A running `spanpipe-loadgen sink`; killed when dropped.
pub struct Sink {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Sink {
    /// Starts a sink on 127.0.0.1:`port` speaking `protocol` (`grpc` or `http`) with the fault script `faults`.
    pub fn start(protocol: &str, port: u16, faults: &[&str]) -> Sink {
        Self::start_with_args(protocol, port, faults, &[])
    }

    /// [`Sink::start`] with more `sink` options, e.g. `["--latency", "2s"]`.
    pub fn start_with_args(protocol: &str, port: u16, faults: &[&str], extra: &[&str]) -> Sink {
        let dir = tempfile::Builder::new()
            .prefix("spanpipe-sink-")
            .tempdir()
            .expect("tempdir");
        let mut cmd = Command::new(loadgen_bin());
        cmd.args(["--threads", "1", "sink"])
            .arg(format!("--{protocol}"))
            .arg(format!("127.0.0.1:{port}"))
            .args(["--idle-exit", "600s", "--max-duration", "300s"])
            .arg("--report")
            .arg(dir.path().join("report.json"))
            .arg("--arrivals")
            .arg(dir.path().join("arrivals.txt"));
        for f in faults {
            cmd.arg("--fault").arg(f);
        }
        cmd.args(extra);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr")).expect("stderr file"))
            .spawn()
            .expect("spawn sink");
        let sink = Sink {
            child: Some(child),
            dir,
            port,
        };
        // A script that starts with `down` keeps the port closed on purpose: the sink's start-up line says it runs.
        let started = format!("on 127.0.0.1:{port}");
        assert!(
            wait_until(Duration::from_secs(20), || port_open(port)
                || sink.stderr().contains(&started)),
            "sink on {port} did not start: {}",
            sink.stderr()
        );
        sink
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Stops the sink (SIGTERM) and reads what it saw.
    pub fn finish(mut self) -> SinkResult {
        let mut child = self.child.take().expect("running");
        let (status, killed) = terminate(&mut child, Duration::from_secs(10));
        assert!(
            !killed && status.success(),
            "sink exit {status}: {}",
            self.stderr()
        );
        let report =
            std::fs::read_to_string(self.dir.path().join("report.json")).expect("sink report");
        let report: Value = serde_json::from_str(report.trim()).expect("report JSON");
        let arrivals = std::fs::read_to_string(self.dir.path().join("arrivals.txt"))
            .expect("arrivals")
            .lines()
            .filter_map(|l| {
                let (id, ms) = l.split_once(' ')?;
                Some((u64::from_str_radix(id, 16).ok()?, ms.parse().ok()?))
            })
            .collect();
        SinkResult {
            report,
            arrivals,
            stderr: self.stderr(),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = wait_timeout(c, Duration::from_secs(5));
        }
    }
}

/// `spanpipe-loadgen send` over gRPC to 127.0.0.1:`port`, bounded; returns its JSON summary.
pub fn send(port: u16, total: u64, rate: Option<f64>, spans_per_request: u64, seed: u16) -> Value {
    let mut cmd = Command::new(loadgen_bin());
    cmd.args([
        "--threads",
        "1",
        "send",
        "--protocol",
        "grpc",
        "--connections",
        "4",
    ])
    .arg("--endpoint")
    .arg(format!("127.0.0.1:{port}"))
    .arg("--total")
    .arg(total.to_string())
    .arg("--spans-per-request")
    .arg(spans_per_request.to_string())
    .arg("--seed")
    .arg(seed.to_string())
    .args(["--hard-timeout", "120s"]);
    if let Some(r) = rate {
        cmd.arg("--rate").arg(r.to_string());
    }
    let out = run_bounded(&mut cmd, Duration::from_secs(150));
    assert!(
        out.status.success(),
        "loadgen send failed ({}):\n{}\n{}",
        out.status,
        out.stdout,
        tail(&out.stderr, 4000)
    );
    let json = out.stdout.lines().last().unwrap_or("");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("loadgen summary {json:?}: {e}"))
}

/// The span id `spanpipe-loadgen` gives span number `seq` of a run with `seed`.
pub fn loadgen_span_id(seed: u16, seq: u64) -> u64 {
    (u64::from(seed) << 48) | ((seq + 1) & ((1 << 48) - 1))
}

/// Nearest-rank percentile of unsorted samples (sorts a copy).
pub fn percentile(samples: &[i64], q: f64) -> i64 {
    let mut v = samples.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return 0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}
