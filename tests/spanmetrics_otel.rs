//! The OTel Collector's `spanmetrics` connector behind a real Prometheus (Debian's `prometheus` package): spans
//! from the Python OpenTelemetry SDK (two services, server and client spans, some failing) → spanpipe (traces →
//! `spanmetrics` → metrics → `prometheus` exporter) ← Prometheus scraping every second.
//! `traces_span_metrics_calls_total` and `traces_span_metrics_duration_milliseconds_count` per service, span
//! name, kind and status equal what was sent, and the PromQL Jaeger's Monitor tab issues answers.

#[path = "spanmetrics_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use spanpipe_e2e::prometheus::PrometheusServer;
use spanpipe_e2e::{Spanpipe, free_ports, run_python, tail, wait_until};

#[test]
fn spanmetrics_calls_and_durations_in_prometheus_equal_the_spans_sent() {
    let [http, scrape, prom] = free_ports::<3>();
    let prometheus = PrometheusServer::start(prom, &[scrape], false);
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
            calls = prometheus.sums(&format!("sum by ({by}) (traces_span_metrics_calls_total)"));
            counts = prometheus.sums(&format!(
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
            answer = prometheus.sums(q);
            answer.len() == 2 && answer.values().all(|v| v.is_finite() && *v > 0.0)
        });
        assert!(ok, "SPM query answered {answer:?}: {q}");
    }
    let status = sp.stop_gracefully();
    assert!(status.success(), "spanpipe exited with {status}");
}
