//! A real Prometheus (Debian's `prometheus` package) scrapes spanpipe's `prometheus` exporter every second and
//! receives the same metrics through `prometheus_remote_write`: `histogram_quantile(0.99, ...)` over the
//! span-duration histogram answers a number, and the scraped and remote-written series count the same spans per
//! label set — all the spans sent.

#[path = "spanmetrics_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use spanpipe_e2e::prometheus::PrometheusServer;
use spanpipe_e2e::{SendSpans, Spanpipe, free_ports, tail, wait_until};

#[test]
fn prometheus_scrapes_and_receives_remote_write_of_the_same_histograms() {
    let [http, scrape, prom] = free_ports::<3>();
    let prometheus = PrometheusServer::start(prom, &[scrape], true);
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
