//! Spans from the Python OpenTelemetry SDK → spanpipe (traces → `mlflow_spanmetrics` → metrics pipeline →
//! `prometheus` exporter) → `GET /metrics`: every label set the spans imply is there with exactly the expected
//! count, cumulative bucket counts and sum — span types read from `mlflow.spanType` and inferred from GenAI,
//! OpenInference and Traceloop attributes, tags from the root span and the resource (the root usually arriving in
//! a later request than its children), untagged points for traces whose root never came — and the page passes
//! `promtool check metrics`.

#[path = "spanmetrics_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use spanpipe_e2e::{Spanpipe, free_ports, run_python, tail, wait_until};
use support::{FAMILY, histograms, http_get, parse_exposition, promtool_check};

#[test]
fn spans_become_the_expected_histograms_on_the_scrape_endpoint() {
    let [http, scrape] = free_ports::<2>();
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ timeout: 50ms }}
connectors:
  mlflow_spanmetrics:
    tags: [team, env]
    metadata: [mlflow.trace_schema.version]
    tags_wait: 2s
    flush_interval: 300ms
exporters:
  prometheus:
    endpoint: 127.0.0.1:{scrape}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [mlflow_spanmetrics] }}
    metrics: {{ receivers: [mlflow_spanmetrics], exporters: [prometheus] }}
"
        ),
        &[http, scrape],
    );
    let work = tempfile::tempdir().expect("tempdir");
    let expected_path = work.path().join("expected.json");
    let out = run_python(
        "spanmetrics_send.py",
        &[
            "--endpoint".into(),
            format!("http://127.0.0.1:{http}"),
            "--traces".into(),
            "40".into(),
            "--orphans".into(),
            "6".into(),
            "--expected".into(),
            expected_path.display().to_string(),
        ],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "spanmetrics_send.py failed:\n{}",
        tail(&out.stderr, 4000)
    );
    let expected: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&expected_path).expect("expected.json"))
            .expect("json");
    let total: f64 = expected
        .iter()
        .map(|e| e["count"].as_f64().unwrap_or(0.0))
        .sum();
    assert_eq!(total, 40.0 * 7.0 + 6.0);

    // Orphans are recorded after tags_wait (2 s), then the next flush publishes them.
    let url = format!("http://127.0.0.1:{scrape}/metrics");
    let mut text = String::new();
    let complete = wait_until(Duration::from_secs(30), || {
        text = http_get(&url).1;
        let got: f64 = histograms(&parse_exposition(&text), FAMILY)
            .values()
            .map(|h| h.count)
            .sum();
        got >= total
    });
    assert!(
        complete,
        "the scrape never showed {total} spans:\n{}",
        tail(&text, 4000)
    );

    let got = histograms(&parse_exposition(&text), FAMILY);
    let mut want_keys = Vec::new();
    for e in &expected {
        let labels: BTreeMap<String, String> = e["labels"]
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let h = got
            .get(&labels)
            .unwrap_or_else(|| panic!("no series {labels:?}; scraped:\n{}", tail(&text, 6000)));
        assert_eq!(
            h.count,
            e["count"].as_f64().unwrap_or(-1.0),
            "count of {labels:?}"
        );
        let want_sum = e["sum"].as_f64().unwrap_or(-1.0);
        assert!(
            (h.sum - want_sum).abs() <= 1e-6 * want_sum.max(1.0),
            "sum of {labels:?}: {} != {want_sum}",
            h.sum
        );
        let want_buckets: BTreeMap<String, f64> = e["buckets"]
            .as_object()
            .expect("buckets")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(-1.0)))
            .collect();
        assert_eq!(h.buckets, want_buckets, "buckets of {labels:?}");
        want_keys.push(labels);
    }
    let extra: Vec<_> = got.keys().filter(|k| !want_keys.contains(k)).collect();
    assert!(extra.is_empty(), "unexpected series: {extra:?}");
    // Every inferred type showed up.
    for t in [
        "AGENT",
        "LLM",
        "CHAT_MODEL",
        "RETRIEVER",
        "TOOL",
        "EMBEDDING",
        "UNKNOWN",
    ] {
        assert!(got.keys().any(|k| k["span_type"] == t), "no {t} series");
    }
    assert!(
        got.keys().any(|k| !k.contains_key("tags_team")),
        "orphans are untagged"
    );

    if let Err(e) = promtool_check(&text) {
        panic!("{e}\n{}", tail(&text, 3000));
    }
    let status = sp.stop_gracefully();
    assert!(status.success(), "spanpipe exited with {status}");
}
