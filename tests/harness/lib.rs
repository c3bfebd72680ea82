//! Shared harness for spanpipe's end-to-end tests.
//!
//! Every e2e suite drives the *real* `spanpipe` binary as a child process and talks to it with real clients
//! (the Python OpenTelemetry SDK via `tests/python/send_spans.py`, reqwest, tonic) and real backends
//! (`tests/python/grpc_sink.py`, a second spanpipe with a `file` exporter). Helpers live here so that every suite
//! starts processes, waits and compares span ids the same way.
//!
//! Ground rules the helpers enforce: only 127.0.0.1, every wait is bounded in time, every child process is
//! terminated when its guard drops (SIGTERM, then SIGKILL after a bound).
//!
//! Environment:
//! - `SPANPIPE_BIN`: the binary under test (default: `spanpipe` next to the test executable's profile dir,
//!   i.e. `<target>/debug/spanpipe`; built once with `cargo build -p spanpipe --bin spanpipe` if absent).
//! - `SPANPIPE_TEST_VENV`: Python virtualenv with `tests/python/requirements.txt` (default `<root>/.venv-test`,
//!   created by `scripts/test.sh`).

pub mod ids;
pub mod mlflow;
pub mod otlp;
pub mod process;
pub mod prometheus;
pub mod python;
pub mod wire;
pub mod yaml;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use ids::{IdDiff, count_ids, file_exporter_span_ids, read_ids};
pub use process::{CmdOutput, Spanpipe, run_bounded, run_spanpipe, run_spanpipe_env};
pub use python::{PyProcess, SendResult, SendSpans, run_python, spawn_python};

/// The repository root (the directory holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// `tests/python/<name>`.
pub fn python_script(name: &str) -> PathBuf {
    workspace_root().join("tests").join("python").join(name)
}

/// The profile directory (`<target>/debug`) the running test executable was built into, if recognisable.
fn profile_dir_of_current_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    Some(deps.parent()?.to_path_buf())
}

/// Path of the spanpipe binary under test: `$SPANPIPE_BIN`, else `spanpipe` in the test executable's profile
/// dir (honours `CARGO_TARGET_DIR`), else `<root>/target/debug/spanpipe`. Builds it once if none exists.
pub fn spanpipe_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("SPANPIPE_BIN") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "SPANPIPE_BIN={} does not exist", p.display());
            return p;
        }
        let profile = profile_dir_of_current_exe();
        let mut candidates: Vec<PathBuf> = profile.iter().map(|d| d.join("spanpipe")).collect();
        candidates.push(
            workspace_root()
                .join("target")
                .join("debug")
                .join("spanpipe"),
        );
        if let Some(found) = candidates.iter().find(|p| p.is_file()) {
            return found.clone();
        }
        // Not built yet: build it once (bounded), with the same target dir/profile as this test executable.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .args(["build", "-p", "spanpipe", "--bin", "spanpipe"]);
        if let Some(profile) = &profile {
            if profile.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            if let Some(target) = profile.parent() {
                cmd.env("CARGO_TARGET_DIR", target);
            }
        }
        let out = run_bounded(&mut cmd, Duration::from_secs(900));
        assert!(
            out.status.success(),
            "building spanpipe failed ({}):\n{}",
            out.status,
            out.stderr
        );
        candidates
            .into_iter()
            .find(|p| p.is_file())
            .expect("cargo build -p spanpipe succeeded but the spanpipe binary was not found")
    })
    .clone()
}

/// The test virtualenv's Python interpreter. Panics with instructions when the venv is missing.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("SPANPIPE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv-test"));
    let python = venv.join("bin").join("python");
    assert!(
        python.exists(),
        "Python test venv not found at {}.\nRun `bash scripts/test.sh` once (it creates .venv-test from \
         tests/python/requirements.txt), or point SPANPIPE_TEST_VENV at a venv with those packages.",
        venv.display()
    );
    python
}

/// A currently free TCP port on 127.0.0.1 (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// `n` distinct free ports.
pub fn free_ports<const N: usize>() -> [u16; N] {
    // Keep all listeners open until every port is chosen so the ports are distinct.
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    let mut ports = [0u16; N];
    for (slot, l) in ports.iter_mut().zip(&listeners) {
        *slot = l.local_addr().expect("local_addr").port();
    }
    ports
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Polls `cond` every 50 ms until it returns true or `timeout` elapses. Returns whether it became true.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `max` bytes of `text` (on a char boundary), for failure messages.
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Peak resident set size (`VmHWM` of `/proc/<pid>/status`) in MiB; 0 when unreadable.
pub fn peak_rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// Reads until the server closes `stream`; how long that took, or `None` if it stayed open for `bound`.
pub fn time_to_close(stream: &mut TcpStream, bound: Duration) -> Option<Duration> {
    use std::io::Read;
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    while start.elapsed() < bound {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// One series' value from a `/metrics` page on 127.0.0.1:`port` (exact name and labels as printed), 0 when absent.
pub fn scrape_value(port: u16, series: &str) -> u64 {
    use std::io::{Read, Write};
    let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}
