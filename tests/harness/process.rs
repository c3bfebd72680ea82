//! Child processes: bounded one-shot commands and the long-running [`Spanpipe`] collector guard.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{port_open, spanpipe_bin, tail};

/// Output of a finished command, stdout/stderr decoded lossily.
#[derive(Debug)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// Exit code, panicking (with the output) if the process was killed by a signal.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| {
            panic!(
                "process ended by a signal: {}\nstderr:\n{}",
                self.status, self.stderr
            )
        })
    }
}

/// Sends `sig` to `pid` (ignoring errors: the process may already be gone).
pub fn send_signal(pid: u32, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; a stale pid at worst yields ESRCH.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Waits for `child` up to `timeout`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(25)),
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL and reap. Returns the exit status and whether SIGKILL was needed.
pub fn terminate(child: &mut Child, grace: Duration) -> (ExitStatus, bool) {
    if let Ok(Some(status)) = child.try_wait() {
        return (status, false);
    }
    send_signal(child.id(), libc::SIGTERM);
    if let Some(status) = wait_timeout(child, grace) {
        return (status, false);
    }
    let _ = child.kill();
    let status = child.wait().expect("reap killed child");
    (status, true)
}

/// Runs `cmd` to completion with stdin closed, killing it (and panicking) after `timeout`.
/// stdout/stderr go through temp files, so a chatty child can never block on a full pipe.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> CmdOutput {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create stdout file"))
        .stderr(File::create(&err_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let status = match wait_timeout(&mut child, timeout) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            panic!(
                "{cmd:?} did not finish within {timeout:?}; stderr tail:\n{}",
                tail(&stderr, 4000)
            );
        }
    };
    CmdOutput {
        status,
        stdout: String::from_utf8_lossy(&std::fs::read(&out_path).unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err_path).unwrap_or_default()).into_owned(),
    }
}

/// Runs `spanpipe ARGS...` (e.g. `validate --config f`) bounded to 60 s.
pub fn run_spanpipe(args: &[&str]) -> CmdOutput {
    run_spanpipe_env(args, &[])
}

/// Like [`run_spanpipe`] with extra environment variables.
pub fn run_spanpipe_env(args: &[&str], env: &[(&str, &str)]) -> CmdOutput {
    let mut cmd = Command::new(spanpipe_bin());
    cmd.args(args).current_dir(crate::workspace_root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(&mut cmd, Duration::from_secs(60))
}

/// A running `spanpipe` collector. Terminated (SIGTERM, then SIGKILL after 10 s) when dropped.
pub struct Spanpipe {
    child: Option<Child>,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    stderr_path: PathBuf,
    stdout_path: PathBuf,
}

impl Spanpipe {
    /// How long [`Spanpipe::start`] waits for the listed ports.
    pub const START_TIMEOUT: Duration = Duration::from_secs(30);

    /// Writes `yaml` to a temp dir, runs `spanpipe --config <it>`, and waits (bounded) until every port in
    /// `ports` accepts TCP connections on 127.0.0.1. Panics with the collector's stderr if it exits or times out.
    pub fn start(yaml: &str, ports: &[u16]) -> Spanpipe {
        Self::start_with_args(yaml, &[], ports)
    }

    /// [`Spanpipe::start`] with extra command-line arguments after `--config FILE` (e.g. `--set a.b=c`).
    pub fn start_with_args(yaml: &str, extra_args: &[&str], ports: &[u16]) -> Spanpipe {
        let dir = tempfile::Builder::new()
            .prefix("spanpipe-e2e-")
            .tempdir()
            .expect("tempdir");
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, yaml).expect("write config");
        let stderr_path = dir.path().join("spanpipe.stderr");
        let stdout_path = dir.path().join("spanpipe.stdout");
        let child = Command::new(spanpipe_bin())
            .arg("--config")
            .arg(&config_path)
            .args(extra_args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("create stdout file"))
            .stderr(File::create(&stderr_path).expect("create stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", spanpipe_bin().display()));
        let mut sp = Spanpipe {
            child: Some(child),
            dir,
            config_path,
            stderr_path,
            stdout_path,
        };
        let deadline = Instant::now() + Self::START_TIMEOUT;
        let mut pending: Vec<u16> = ports.to_vec();
        while !pending.is_empty() {
            if let Some(status) = sp.try_status() {
                panic!(
                    "spanpipe exited during startup ({status}) while waiting for ports {pending:?}\nconfig:\n{yaml}\nstderr:\n{}",
                    tail(&sp.stderr_text(), 8000)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "spanpipe did not open ports {pending:?} within {:?}\nconfig:\n{yaml}\nstderr:\n{}",
                    Self::START_TIMEOUT,
                    tail(&sp.stderr_text(), 8000)
                );
            }
            pending.retain(|p| !port_open(*p));
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        sp
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child present").id()
    }

    /// The temp dir holding the config and logs (a good place for `file` exporter output too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Exit status if the process has already exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait on spanpipe"))
    }

    /// True while the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_status().is_none()
    }

    /// Panics with stderr if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.try_status() {
            panic!(
                "spanpipe is not running any more ({status}); stderr:\n{}",
                tail(&self.stderr_text(), 8000)
            );
        }
    }

    /// Everything the collector wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// Everything the collector wrote to stdout so far.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stdout_path).unwrap_or_default()).into_owned()
    }

    /// Sends SIGTERM and waits up to `timeout` for a (draining) shutdown. Panics — after SIGKILL — if the
    /// process does not exit in time. Returns its exit status.
    pub fn stop_gracefully_within(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("spanpipe already stopped");
        let (status, killed) = terminate(&mut child, timeout);
        assert!(
            !killed,
            "spanpipe did not exit within {timeout:?} after SIGTERM (killed); stderr:\n{}",
            tail(&self.stderr_text(), 8000)
        );
        status
    }

    /// Sends `sig` (e.g. `libc::SIGINT`) without waiting.
    pub fn signal(&self, sig: libc::c_int) {
        send_signal(self.pid(), sig);
    }

    /// Waits up to `timeout` for the process to exit by itself (e.g. after [`Spanpipe::signal`]); panics —
    /// after SIGKILL — if it does not.
    pub fn wait_exit_within(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("spanpipe already stopped");
        if let Some(status) = wait_timeout(&mut child, timeout) {
            return status;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "spanpipe did not exit within {timeout:?}; stderr:\n{}",
            tail(&self.stderr_text(), 8000)
        );
    }

    /// SIGKILL now (for tests whose collector is deliberately wedged, e.g. a queue retrying a dead backend).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// [`Spanpipe::stop_gracefully_within`] with a 30 s bound.
    pub fn stop_gracefully(&mut self) -> ExitStatus {
        self.stop_gracefully_within(Duration::from_secs(30))
    }
}

impl Drop for Spanpipe {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = terminate(&mut child, Duration::from_secs(10));
        }
        if std::thread::panicking() {
            eprintln!(
                "---- spanpipe stderr ({}) ----\n{}\n---- end spanpipe stderr ----",
                self.config_path.display(),
                tail(&self.stderr_text(), 8000)
            );
        }
    }
}
