//! A real Prometheus (Debian's `prometheus` package) scrapes spanpipe's `prometheus` exporter every second and
//! receives the same metrics through `prometheus_remote_write`: `histogram_quantile(0.99, ...)` over the
//! span-duration histogram answers a number, and the scraped and remote-written series count the same spans per
//! label set — all the spans sent.

#[path = "spanmetrics_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use spanpipe_e2e::process::terminate;
use spanpipe_e2e::{SendSpans, Spanpipe, free_ports, tail, wait_until};
use support::http_get;

/// A Prometheus server in a temp dir, terminated on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(port: u16, scrape_port: u16) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("spanpipe-prom-")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
                 scrape_configs:\n  - job_name: spanpipe\n    static_configs:\n      - targets: ['127.0.0.1:{scrape_port}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("stderr")).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run prometheus ({e}): apt-get install prometheus"));
        let p = Prometheus { child, port, dir };
        let ready = wait_until(Duration::from_secs(60), || {
            http_get(&format!("http://127.0.0.1:{port}/-/ready")).0 == 200
        });
        assert!(ready, "prometheus not ready within 60 s:\n{}", p.log());
        p
    }

    fn log(&self) -> String {
        tail(
            &std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default(),
            4000,
        )
        .to_string()
    }

    /// An instant query's vector result as (labels, value).
    fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, String)> {
        let url = reqwest::Url::parse_with_params(
            &format!("http://127.0.0.1:{}/api/v1/query", self.port),
            &[("query", promql)],
        )
        .expect("url");
        let (status, body) = http_get(url.as_str());
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

    /// `sum by (...)` of a query, as label set → value.
    fn sums(&self, promql: &str) -> BTreeMap<BTreeMap<String, String>, f64> {
        self.query(promql)
            .into_iter()
            .map(|(l, v)| (l, v.parse().unwrap_or(f64::NAN)))
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = terminate(&mut self.child, Duration::from_secs(10));
        if std::thread::panicking() {
            eprintln!("---- prometheus stderr ----\n{}", self.log());
        }
    }
}

#[test]
fn prometheus_scrapes_and_receives_remote_write_of_the_same_histograms() {
    let [http, scrape, prom] = free_ports::<3>();
    let prometheus = Prometheus::start(prom, scrape);
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
connectors:
  mlflow_spanmetrics:
    flush_interval: 1s
exporters:
  prometheus:
    endpoint: 127.0.0.1:{scrape}
  prometheus_remote_write:
    endpoint: http://127.0.0.1:{prom}/api/v1/write
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 1s }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [mlflow_spanmetrics] }}
    metrics: {{ receivers: [mlflow_spanmetrics], exporters: [prometheus, prometheus_remote_write] }}
"
        ),
        &[http, scrape],
    );
    // Two waves a few scrapes apart, so rate() over the window sees the counters grow.
    let endpoint = format!("http://127.0.0.1:{http}");
    let wave = |run: &str| {
        SendSpans::new("http/protobuf", endpoint.as_str(), 300, run)
            .trace_size(6)
            .run()
    };
    wave("wave-1");
    std::thread::sleep(Duration::from_secs(4));
    wave("wave-2");

    let count = "mlflow_trace_span_duration_milliseconds_count";
    let by = "root, span_type, span_status, experiment_id";
    let mut scraped = BTreeMap::new();
    let mut written = BTreeMap::new();
    let total = |m: &BTreeMap<BTreeMap<String, String>, f64>| m.values().sum::<f64>();
    let arrived = wait_until(Duration::from_secs(60), || {
        scraped = prometheus.sums(&format!("sum by ({by}) ({count}{{job=\"spanpipe\"}})"));
        written = prometheus.sums(&format!("sum by ({by}) ({count}{{job=\"\"}})"));
        total(&scraped) >= 600.0 && total(&written) >= 600.0
    });
    assert!(
        arrived,
        "Prometheus did not get 600 spans both ways: scraped {scraped:?}, remote-written {written:?}\nspanpipe:\n{}",
        tail(&sp.stderr_text(), 4000)
    );
    assert_eq!(total(&scraped), 600.0);
    assert_eq!(scraped, written, "scrape and remote write disagree");
    assert!(
        scraped
            .keys()
            .any(|k| k["span_type"] == "AGENT" && k["root"] == "true")
    );

    let quantile = "histogram_quantile(0.99, sum by (le, span_type) (rate(mlflow_trace_span_duration_milliseconds_bucket[1m])))";
    let mut answer = Vec::new();
    let numeric = wait_until(Duration::from_secs(30), || {
        answer = prometheus.query(quantile);
        !answer.is_empty()
            && answer
                .iter()
                .all(|(_, v)| v.parse::<f64>().is_ok_and(f64::is_finite))
    });
    assert!(
        numeric,
        "histogram_quantile gave no finite numbers: {answer:?}"
    );
    eprintln!("p99 by span type: {answer:?}");

    let status = sp.stop_gracefully();
    assert!(status.success(), "spanpipe exited with {status}");
}
