//! A real Prometheus server (Debian's `prometheus`) for the suites that check what a scraper or a remote-write
//! receiver sees: started on a given 127.0.0.1 port scraping given 127.0.0.1 targets every second, queried over
//! its HTTP API, stopped (SIGTERM, then SIGKILL) when dropped, its log printed when a test fails.

use std::collections::BTreeMap;
use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::otlp::http_client;
use crate::process::terminate;
use crate::{tail, wait_until};

/// One running `prometheus`.
pub struct PrometheusServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// GET `url` on a fresh current-thread runtime: status and body (status 0 when the request failed).
fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        match http_client().get(url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.text().await.unwrap_or_default())
            }
            Err(_) => (0, String::new()),
        }
    })
}

impl PrometheusServer {
    /// Listens on `port`, scrapes `targets` (job `spanpipe`) every second; with `remote_write`, also accepts
    /// remote write at `/api/v1/write`. Waits (60 s at most) until it is ready.
    pub fn start(port: u16, targets: &[u16], remote_write: bool) -> PrometheusServer {
        let dir = tempfile::Builder::new()
            .prefix("spanpipe-prom-")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
                 scrape_configs:\n  - job_name: spanpipe\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .expect("write prometheus.yml");
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        if remote_write {
            cmd.arg("--web.enable-remote-write-receiver");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("stderr")).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run prometheus ({e}): apt-get install prometheus"));
        let p = PrometheusServer { child, port, dir };
        let ready = wait_until(Duration::from_secs(60), || {
            get(&format!("http://127.0.0.1:{port}/-/ready")).0 == 200
        });
        assert!(ready, "prometheus not ready within 60 s:\n{}", p.log());
        p
    }

    /// The end of its log.
    pub fn log(&self) -> String {
        tail(
            &std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default(),
            4000,
        )
        .to_string()
    }

    /// An instant query's vector result as (labels, value as Prometheus wrote it).
    pub fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, String)> {
        let url = reqwest::Url::parse_with_params(
            &format!("http://127.0.0.1:{}/api/v1/query", self.port),
            &[("query", promql)],
        )
        .expect("url");
        let (status, body) = get(url.as_str());
        assert_eq!(status, 200, "query {promql}: {body}");
        let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
        doc["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                (
                    labels,
                    r["value"][1].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// An instant query's vector result as label set → number (NaN where it is not one).
    pub fn sums(&self, promql: &str) -> BTreeMap<BTreeMap<String, String>, f64> {
        self.query(promql)
            .into_iter()
            .map(|(l, v)| (l, v.parse().unwrap_or(f64::NAN)))
            .collect()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = terminate(&mut self.child, Duration::from_secs(10));
        if std::thread::panicking() {
            eprintln!("---- prometheus stderr ----\n{}", self.log());
        }
    }
}
