//! Python helpers: long-running scripts that print `READY` (e.g. `grpc_sink.py`) and one-shot runs of
//! `send_spans.py` through the test venv.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::ids::read_ids;
use crate::process::{CmdOutput, run_bounded, terminate};
use crate::{python_script, tail, venv_python};

/// A running Python script from `tests/python/`. Terminated (SIGTERM, then SIGKILL after 10 s) on drop.
pub struct PyProcess {
    child: Option<Child>,
    name: String,
    _dir: tempfile::TempDir,
    stderr_path: PathBuf,
}

/// Starts `tests/python/<script> ARGS...` with the venv's Python and waits (bounded, 30 s) until it prints a
/// line `READY` on stdout. Panics with its stderr if it exits first or times out.
pub fn spawn_python(script: &str, args: &[String]) -> PyProcess {
    const READY_TIMEOUT: Duration = Duration::from_secs(30);
    let dir = tempfile::Builder::new()
        .prefix("spanpipe-py-")
        .tempdir()
        .expect("tempdir");
    let stderr_path = dir.path().join("stderr");
    let mut child = Command::new(venv_python())
        .arg("-u")
        .arg(python_script(script))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&stderr_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {script}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        // Drains stdout for the whole life of the process so it can never block on a full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut proc = PyProcess {
        child: Some(child),
        name: script.to_string(),
        _dir: dir,
        stderr_path,
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) if line.trim() == "READY" => return proc,
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = proc.child.as_mut().and_then(|c| c.wait().ok());
                panic!(
                    "{script} exited before READY ({status:?}); stderr:\n{}",
                    tail(&proc.stderr_text(), 8000)
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    panic!(
                        "{script} did not print READY within {READY_TIMEOUT:?}; stderr:\n{}",
                        tail(&proc.stderr_text(), 8000)
                    );
                }
            }
        }
    }
}

impl PyProcess {
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// True while the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    /// SIGTERM and wait (bounded 10 s); panics if it had to be killed or exited non-zero.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("already stopped");
        let (status, killed) = terminate(&mut child, Duration::from_secs(10));
        assert!(
            !killed && status.success(),
            "{} did not stop cleanly ({status}, killed={killed}); stderr:\n{}",
            self.name,
            tail(&self.stderr_text(), 4000)
        );
    }
}

impl Drop for PyProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = terminate(&mut child, Duration::from_secs(10));
        }
        if std::thread::panicking() {
            eprintln!(
                "---- {} stderr ----\n{}\n---- end ----",
                self.name,
                tail(&self.stderr_text(), 4000)
            );
        }
    }
}

/// Runs `tests/python/<script> ARGS...` with the venv's Python to completion, bounded by `timeout`.
pub fn run_python(script: &str, args: &[String], timeout: Duration) -> CmdOutput {
    let mut cmd = Command::new(venv_python());
    cmd.arg("-u").arg(python_script(script)).args(args);
    run_bounded(&mut cmd, timeout)
}

/// One run of `send_spans.py`.
#[derive(Clone, Debug)]
pub struct SendSpans {
    /// `grpc`, `http/protobuf` or `http/json`.
    pub protocol: String,
    /// `127.0.0.1:PORT` for grpc, `http://127.0.0.1:PORT` for http.
    pub endpoint: String,
    pub spans: usize,
    pub trace_size: usize,
    pub run_id: String,
    /// `none`, `gzip` (all protocols) or `deflate` (http only).
    pub compression: String,
    /// Bound for the whole script run.
    pub timeout: Duration,
}

/// What a successful `send_spans.py` run exported.
#[derive(Debug)]
pub struct SendResult {
    /// Hex span ids the SDK exporter reported as successfully exported.
    pub ids: Vec<String>,
    pub elapsed: Duration,
    pub stderr: String,
}

impl SendSpans {
    pub fn new(
        protocol: &str,
        endpoint: impl Into<String>,
        spans: usize,
        run_id: impl Into<String>,
    ) -> Self {
        SendSpans {
            protocol: protocol.to_string(),
            endpoint: endpoint.into(),
            spans,
            trace_size: 10,
            run_id: run_id.into(),
            compression: "none".into(),
            timeout: Duration::from_secs(120),
        }
    }

    pub fn trace_size(mut self, n: usize) -> Self {
        self.trace_size = n;
        self
    }

    pub fn compression(mut self, c: &str) -> Self {
        self.compression = c.to_string();
        self
    }

    /// Runs the script (timed, interpreter start-up included); panics (with its stderr) unless it exits 0 having exported exactly `spans` spans.
    pub fn run(&self) -> SendResult {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids_out = dir.path().join("sent_ids.txt");
        let start = Instant::now();
        let out = self.run_raw(&ids_out);
        let elapsed = start.elapsed();
        assert!(
            out.status.success(),
            "send_spans.py {} failed ({}):\n{}",
            self.protocol,
            out.status,
            tail(&out.stderr, 8000)
        );
        let ids = read_ids(&ids_out);
        assert_eq!(
            ids.len(),
            self.spans,
            "send_spans.py {} reported success but wrote {} ids, expected {}",
            self.protocol,
            ids.len(),
            self.spans
        );
        SendResult {
            ids,
            elapsed,
            stderr: out.stderr,
        }
    }

    /// Runs the script writing ids to `ids_out`, returning its raw output whatever the exit status.
    pub fn run_raw(&self, ids_out: &Path) -> CmdOutput {
        let args: Vec<String> = vec![
            "--protocol".into(),
            self.protocol.clone(),
            "--endpoint".into(),
            self.endpoint.clone(),
            "--spans".into(),
            self.spans.to_string(),
            "--trace-size".into(),
            self.trace_size.to_string(),
            "--run-id".into(),
            self.run_id.clone(),
            "--ids-out".into(),
            ids_out.display().to_string(),
            "--compression".into(),
            self.compression.clone(),
            "--timeout".into(),
            self.timeout.as_secs().to_string(),
        ];
        // The script bounds itself; the extra margin only catches a wedged interpreter.
        run_python(
            "send_spans.py",
            &args,
            self.timeout + Duration::from_secs(15),
        )
    }
}
