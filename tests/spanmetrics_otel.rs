//! The OTel Collector's `spanmetrics` connector behind a real Prometheus (Debian's `prometheus` package): spans
//! from the Python OpenTelemetry SDK (two services, server and client spans, some failing) → spanpipe (traces →
//! `spanmetrics` → metrics → `prometheus` exporter) ← Prometheus scraping every second.
//! `traces_span_metrics_calls_total` and `traces_span_metrics_duration_milliseconds_count` per service, span
//! name, kind and status equal what was sent, and the PromQL Jaeger's Monitor tab issues answers.

#[path = "spanmetrics_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use spanpipe_e2e::process::terminate;
use spanpipe_e2e::{Spanpipe, free_ports, run_python, tail, wait_until};
use support::http_get;

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

    /// An instant query's vector result as label set → value.
    fn query(&self, promql: &str) -> BTreeMap<BTreeMap<String, String>, f64> {
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
                let v = r["value"][1]
                    .as_str()
                    .unwrap_or_default()
                    .parse()
                    .unwrap_or(f64::NAN);
                (labels, v)
            })
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
fn spanmetrics_calls_and_durations_in_prometheus_equal_the_spans_sent() {
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
  spanmetrics:
    metrics_flush_interval: 1s
exporters:
  prometheus:
    endpoint: 127.0.0.1:{scrape}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [spanmetrics] }}
    metrics: {{ receivers: [spanmetrics], exporters: [prometheus] }}
"
        ),
        &[http, scrape],
    );
    let work = tempfile::tempdir().expect("tempdir");
    let expected_path = work.path().join("expected.json");
    let send = || {
        let out = run_python(
            "otel_spanmetrics_send.py",
            &[
                "--endpoint".into(),
                format!("http://127.0.0.1:{http}"),
                "--expected".into(),
                expected_path.display().to_string(),
            ],
            Duration::from_secs(120),
        );
        assert!(
            out.status.success(),
            "sender failed:\n{}{}",
            out.stdout,
            out.stderr
        );
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&expected_path).expect("expected.json"))
                .expect("json");
        expected
            .as_array()
            .expect("list")
            .iter()
            .map(|e| {
                let labels: BTreeMap<String, String> = e["labels"]
                    .as_object()
                    .expect("labels")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                (labels, e["count"].as_f64().unwrap_or(f64::NAN))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let by = "service_name, span_name, span_kind, status_code";
    let seen = |want: &BTreeMap<BTreeMap<String, String>, f64>| {
        let total: f64 = want.values().sum();
        let mut calls = BTreeMap::new();
        let mut counts = BTreeMap::new();
        let arrived = wait_until(Duration::from_secs(60), || {
            calls = prometheus.query(&format!("sum by ({by}) (traces_span_metrics_calls_total)"));
            counts = prometheus.query(&format!(
                "sum by ({by}) (traces_span_metrics_duration_milliseconds_count)"
            ));
            calls.values().sum::<f64>() >= total && counts.values().sum::<f64>() >= total
        });
        (arrived, calls, counts)
    };
    // Two waves, so the counters grow between scrapes and rate() has something to say.
    let mut want = send();
    assert_eq!(want.values().sum::<f64>(), 300.0);
    let (arrived, calls, _) = seen(&want);
    assert!(
        arrived,
        "first wave not seen: {calls:?}\n{}",
        tail(&sp.stderr_text(), 4000)
    );
    for (k, v) in send() {
        *want.entry(k).or_default() += v;
    }
    let (arrived, calls, counts) = seen(&want);
    assert!(
        arrived,
        "Prometheus did not see 600 calls: {calls:?} / {counts:?}\nspanpipe:\n{}",
        tail(&sp.stderr_text(), 4000)
    );
    assert_eq!(calls, want, "calls per service/span/kind/status");
    assert_eq!(
        counts, want,
        "histogram counts per service/span/kind/status"
    );

    // The queries Jaeger's Monitor tab (SPM) issues: call rate, error rate, p95 latency by service.
    let spm = [
        "sum(rate(traces_span_metrics_calls_total{service_name=~\"cart|checkout\", span_kind=~\"SPAN_KIND_SERVER\"}[1m])) by (service_name)",
        "sum(rate(traces_span_metrics_calls_total{service_name=~\"cart|checkout\", status_code=\"STATUS_CODE_ERROR\", span_kind=~\"SPAN_KIND_SERVER\"}[1m])) by (service_name)",
        "histogram_quantile(0.95, sum(rate(traces_span_metrics_duration_milliseconds_bucket{service_name=~\"cart|checkout\", span_kind=~\"SPAN_KIND_SERVER\"}[1m])) by (service_name, le))",
    ];
    for q in spm {
        let mut answer = BTreeMap::new();
        let ok = wait_until(Duration::from_secs(30), || {
            answer = prometheus.query(q);
            answer.len() == 2 && answer.values().all(|v| v.is_finite() && *v > 0.0)
        });
        assert!(ok, "SPM query answered {answer:?}: {q}");
    }
    let status = sp.stop_gracefully();
    assert!(status.success(), "spanpipe exited with {status}");
}
