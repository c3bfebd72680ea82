//! A real MLflow tracking server for the `mlflow_*` suites, and a small REST client to set it up and read traces
//! back.
//!
//! [`mlflow_server`] shares one server per test run when `MLFLOW_TEST_URI` is set (scripts/test.sh starts it),
//! else starts one for this process. Suites that stop, restart or reconfigure a server use [`own_mlflow_server`].
//! Servers use a SQLite store (only SQL stores ingest OTLP), listen on 127.0.0.1 only, have MLflow's usage
//! telemetry and job runner off, and are killed with their whole process group (the CLI forks uvicorn) when dropped.
//!
//! Read-back goes through the REST API (`/api/3.0/mlflow/traces/search` + `traces/batchGet`), so the same helpers
//! work on a shared server whose database file the test does not know.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{free_port, tail, venv_python, wait_until};

/// Bound for a server to answer `/health` (cold start on 2 busy cores can take a minute).
pub const MLFLOW_START_TIMEOUT: Duration = Duration::from_secs(150);

/// A tracking server: shared (`MLFLOW_TEST_URI`) or owned by this process.
pub struct MlflowServer {
    pub uri: String,
    pub port: u16,
    own: Option<OwnServer>,
}

struct OwnServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    args: Vec<String>,
    starts: usize,
}

/// The run's shared server if `MLFLOW_TEST_URI` is set, else a new one for this process.
pub fn mlflow_server() -> MlflowServer {
    match std::env::var("MLFLOW_TEST_URI") {
        Ok(uri) if !uri.trim().is_empty() => {
            let uri = uri.trim().trim_end_matches('/').to_string();
            let port = reqwest::Url::parse(&uri)
                .ok()
                .and_then(|u| u.port_or_known_default())
                .unwrap_or(0);
            let s = MlflowServer {
                uri,
                port,
                own: None,
            };
            assert!(
                s.client().healthy(),
                "MLFLOW_TEST_URI={} does not answer /health",
                s.uri
            );
            s
        }
        _ => own_mlflow_server(&[]),
    }
}

/// A server of our own (e.g. `&["--enable-workspaces"]`), started and waited for (bounded).
pub fn own_mlflow_server(extra_args: &[&str]) -> MlflowServer {
    let dir = tempfile::Builder::new()
        .prefix("spanpipe-mlflow-")
        .tempdir()
        .expect("tempdir");
    let port = free_port();
    let mut args: Vec<String> = vec![
        "server".into(),
        "--backend-store-uri".into(),
        format!("sqlite:///{}", dir.path().join("mlflow.db").display()),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
        "--workers".into(),
        "1".into(),
    ];
    args.extend(extra_args.iter().map(|a| a.to_string()));
    let mut s = MlflowServer {
        uri: format!("http://127.0.0.1:{port}"),
        port,
        own: Some(OwnServer {
            child: None,
            dir,
            args,
            starts: 0,
        }),
    };
    s.start();
    s
}

/// A suffix that keeps experiment names unique on a long-lived shared server (pid + time).
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// The `mlflow` CLI of the test venv.
pub fn mlflow_cli() -> PathBuf {
    venv_python().with_file_name("mlflow")
}

impl MlflowServer {
    /// True for a server this process started (and may stop).
    pub fn is_own(&self) -> bool {
        self.own.is_some()
    }

    /// (Re)starts an own server on the same port and database, waiting until `/health` answers.
    pub fn start(&mut self) {
        let own = self
            .own
            .as_mut()
            .expect("only an own server can be started");
        assert!(own.child.is_none(), "already running");
        own.starts += 1;
        let log = own.dir.path().join(format!("mlflow-{}.log", own.starts));
        let child = Command::new(mlflow_cli())
            .args(&own.args)
            .current_dir(own.dir.path())
            .env("MLFLOW_DISABLE_TELEMETRY", "true")
            .env("DO_NOT_TRACK", "true")
            // No job runner: it forks ~8 Python workers (evaluation jobs) that tracing does not use; start-up on
            // 2 busy cores drops from ~40 s to ~15 s.
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .stdin(Stdio::null())
            .stdout(File::create(&log).expect("log file"))
            .stderr(
                File::create(own.dir.path().join(format!("mlflow-{}.err", own.starts)))
                    .expect("log"),
            )
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", mlflow_cli().display()));
        own.child = Some(child);
        let started = Instant::now();
        let client = self.client();
        let up = wait_until(MLFLOW_START_TIMEOUT, || {
            std::thread::sleep(Duration::from_millis(250));
            client.healthy() || self.exited()
        });
        assert!(
            up && !self.exited(),
            "mlflow server did not become healthy within {MLFLOW_START_TIMEOUT:?}; log:\n{}",
            tail(&self.log_text(), 6000)
        );
        eprintln!(
            "mlflow server on {} ready in {:.1?}",
            self.uri,
            started.elapsed()
        );
    }

    fn exited(&mut self) -> bool {
        let own = self.own.as_mut().expect("own");
        own.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Stops an own server (SIGTERM to its process group, SIGKILL after 10 s) and waits until the port is free.
    pub fn stop(&mut self) {
        let own = self
            .own
            .as_mut()
            .expect("only an own server can be stopped");
        if let Some(mut child) = own.child.take() {
            kill_group(&mut child);
        }
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(15), || !crate::port_open(port)),
            "port {port} still open"
        );
    }

    /// stdout + stderr of the current (or last) own server process.
    pub fn log_text(&self) -> String {
        let Some(own) = &self.own else {
            return String::new();
        };
        let read = |ext: &str| {
            std::fs::read_to_string(own.dir.path().join(format!("mlflow-{}.{ext}", own.starts)))
                .unwrap_or_default()
        };
        format!("{}{}", read("log"), read("err"))
    }

    /// A REST client for this server.
    pub fn client(&self) -> Mlflow {
        Mlflow::new(&self.uri, None)
    }
}

fn kill_group(child: &mut Child) {
    let pgid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: kill(2) with a negative pid signals the process group we created; no memory preconditions.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    if crate::process::wait_timeout(child, Duration::from_secs(10)).is_none() {
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
    }
    // Workers that outlived the CLI (it has exited) must not keep the port.
    // SAFETY: as above; ESRCH when the group is already gone.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        if std::thread::panicking() && self.is_own() {
            eprintln!(
                "---- mlflow server log ({}) ----\n{}\n---- end ----",
                self.uri,
                tail(&self.log_text(), 4000)
            );
        }
        if let Some(own) = self.own.as_mut()
            && let Some(mut child) = own.child.take()
        {
            kill_group(&mut child);
        }
    }
}

/// Blocking REST calls against a tracking server (optionally in a workspace).
pub struct Mlflow {
    pub uri: String,
    pub workspace: Option<String>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Mlflow {
    pub fn new(uri: &str, workspace: Option<&str>) -> Self {
        Mlflow {
            uri: uri.trim_end_matches('/').to_string(),
            workspace: workspace.map(str::to_string),
            // No pooled connections: a server restarted on the same port must not leave dead ones behind.
            http: {
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(0)
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(60))
                    .build()
                    .expect("reqwest client")
            },
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    /// The same server, addressed in `workspace`.
    pub fn in_workspace(&self, workspace: &str) -> Mlflow {
        Mlflow::new(&self.uri, Some(workspace))
    }

    /// `(status, JSON body)` of one call; transport errors read as status 0.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.uri);
        let mut req = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        };
        if let Some(ws) = &self.workspace {
            req = req.header("X-MLFLOW-WORKSPACE", ws);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        self.rt.block_on(async {
            match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    (
                        status,
                        // Spans may hold attributes as deep as a receiver accepts: more JSON levels than serde_json's
                        // default limit.
                        crate::ids::parse_deep_json(&text).unwrap_or(Value::String(text)),
                    )
                }
                Err(e) => (0, Value::String(e.to_string())),
            }
        })
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {}{path}: {v}", self.uri);
        v
    }

    pub fn healthy(&self) -> bool {
        self.call("GET", "/health", None).0 == 200
    }

    /// Creates an experiment and returns its id.
    pub fn create_experiment(&self, name: &str) -> String {
        let v = self.ok(
            "POST",
            "/api/2.0/mlflow/experiments/create",
            Some(json!({ "name": name })),
        );
        v["experiment_id"]
            .as_str()
            .expect("experiment_id")
            .to_string()
    }

    /// The id of an (active) experiment, if it exists.
    pub fn experiment_id(&self, name: &str) -> Option<String> {
        let q = format!(
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name={}",
            urlencode(name)
        );
        let (status, v) = self.call("GET", &q, None);
        (status == 200)
            .then(|| {
                v["experiment"]["experiment_id"]
                    .as_str()
                    .map(str::to_string)
            })
            .flatten()
    }

    /// Creates a workspace (servers started with `--enable-workspaces`).
    pub fn create_workspace(&self, name: &str) {
        let (status, v) = self.call(
            "POST",
            "/api/3.0/mlflow/workspaces",
            Some(json!({ "name": name })),
        );
        assert!(
            status == 200 || status == 201,
            "create workspace {name}: {status} {v}"
        );
    }

    /// Trace infos of an experiment (no spans): cheap enough to poll.
    pub fn trace_infos(&self, experiment_id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let mut body = json!({
                "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}],
                "max_results": 500,
            });
            if let Some(t) = &token {
                body["page_token"] = json!(t);
            }
            let v = self.ok("POST", "/api/3.0/mlflow/traces/search", Some(body));
            out.extend(v["traces"].as_array().cloned().unwrap_or_default());
            token = v["next_page_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        out
    }

    /// Polls (bounded) until `n` traces of the experiment are complete (root received: state OK or ERROR);
    /// returns the last count.
    pub fn wait_for_complete_traces(
        &self,
        experiment_id: &str,
        n: usize,
        timeout: Duration,
    ) -> usize {
        let mut last = 0;
        wait_until(timeout, || {
            last = self
                .trace_infos(experiment_id)
                .iter()
                .filter(|t| t["state"] == "OK" || t["state"] == "ERROR")
                .count();
            last >= n || {
                std::thread::sleep(Duration::from_millis(150));
                false
            }
        });
        last
    }

    /// Every trace of an experiment with its spans: `[{"trace_info": {...}, "spans": [...]}]`.
    pub fn traces(&self, experiment_id: &str) -> Vec<Value> {
        let ids: Vec<String> = self
            .trace_infos(experiment_id)
            .iter()
            .filter_map(|t| t["trace_id"].as_str().map(str::to_string))
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for group in ids.chunks(50) {
            let q: Vec<String> = group.iter().map(|id| format!("trace_ids={id}")).collect();
            let v = self.ok(
                "GET",
                &format!("/api/3.0/mlflow/traces/batchGet?{}", q.join("&")),
                None,
            );
            out.extend(v["traces"].as_array().cloned().unwrap_or_default());
        }
        out
    }

    /// Spans stored in an experiment.
    pub fn span_count(&self, experiment_id: &str) -> usize {
        self.traces(experiment_id)
            .iter()
            .map(|t| t["spans"].as_array().map_or(0, Vec::len))
            .sum()
    }

    /// Polls (every 500 ms, bounded) until the experiment holds at least `n` spans; returns the last count.
    pub fn wait_for_spans(&self, experiment_id: &str, n: usize, timeout: Duration) -> usize {
        let mut last = 0;
        wait_until(timeout, || {
            last = self.span_count(experiment_id);
            last >= n || {
                std::thread::sleep(Duration::from_millis(450));
                false
            }
        });
        last
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The hex of a base64 id as MLflow returns span ids (`"I3D85XJye5Y="`).
pub fn b64_to_hex(b64: &str) -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits: u32 = 0;
    let mut n = 0;
    let mut out = String::new();
    for c in b64.bytes().filter(|c| *c != b'=') {
        let Some(v) = ALPHA.iter().position(|a| *a == c) else {
            continue;
        };
        bits = (bits << 6) | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push_str(&format!("{:02x}", (bits >> n) & 0xff));
        }
    }
    out
}

/// Traces reduced to what two exports of the same workload must share, keyed by the root's
/// `spanpipe.test.trace_no`: ids, times and trace-id-derived values removed, parents named, attributes sorted.
pub fn canonical(traces: &[Value]) -> std::collections::BTreeMap<i64, Value> {
    let mut out = std::collections::BTreeMap::new();
    for t in traces {
        let spans = t["spans"].as_array().cloned().unwrap_or_default();
        let names: std::collections::HashMap<String, String> = spans
            .iter()
            .map(|s| {
                (
                    s["span_id"].as_str().unwrap_or("").to_string(),
                    s["name"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let mut trace_no = -1;
        let mut canon: Vec<Value> = spans
            .iter()
            .map(|s| {
                let mut s = s.clone();
                let parent = s["parent_span_id"]
                    .as_str()
                    .and_then(|p| names.get(p).cloned());
                let obj = s.as_object_mut().expect("span object");
                for k in [
                    "trace_id",
                    "span_id",
                    "parent_span_id",
                    "start_time_unix_nano",
                    "end_time_unix_nano",
                ] {
                    obj.remove(k);
                }
                obj.insert("parent".into(), json!(parent));
                let mut attrs: Vec<Value> = obj
                    .get("attributes")
                    .and_then(|a| a.as_array())
                    .into_iter()
                    .flatten()
                    .filter(|a| a["key"] != "mlflow.traceRequestId")
                    .cloned()
                    .collect();
                attrs.sort_by_key(|a| a["key"].as_str().unwrap_or("").to_string());
                if parent.is_none() {
                    trace_no = attr_int(&attrs, "spanpipe.test.trace_no").unwrap_or(-1);
                }
                obj.insert("attributes".into(), Value::Array(attrs));
                if let Some(events) = obj.get_mut("events").and_then(|e| e.as_array_mut()) {
                    for e in events {
                        e.as_object_mut().map(|o| o.remove("time_unix_nano"));
                    }
                }
                s
            })
            .collect();
        canon.sort_by_key(|s| s["name"].as_str().unwrap_or("").to_string());
        let info = &t["trace_info"];
        let mut tags = info["tags"].clone();
        tags.as_object_mut()
            .map(|o| o.remove("mlflow.artifactLocation"));
        out.insert(
            trace_no,
            json!({
                "state": info["state"], "tags": tags, "trace_metadata": info["trace_metadata"],
                "request_preview": info["request_preview"], "response_preview": info["response_preview"],
                "spans": canon,
            }),
        );
    }
    out
}

/// An integer attribute from MLflow's span JSON (`int_value` as number or string).
pub fn attr_int(attrs: &[Value], key: &str) -> Option<i64> {
    let v = &attrs.iter().find(|a| a["key"] == key)?["value"]["int_value"];
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}
