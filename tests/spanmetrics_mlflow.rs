//! Parity with MLflow's own metric: MLflow's tracing SDK runs tagged agent traces (AGENT, CHAIN, LLM, TOOL spans,
//! some failing) and exports both its spans and its own `mlflow.trace.span.duration` histogram over OTLP/HTTP to
//! spanpipe. The spans go through `mlflow_spanmetrics` to one `file`, the SDK's metric to another; for every
//! (root, span_type, span_status, experiment_id) label set the bucket counts, counts and sums are equal. Spans
//! that end after the trace's tags were set (the root and the TOOL spans) must match with their tags too.
//!
//! Needs MLflow and `opentelemetry-sdk<1.43` in the test venv (`tests/python/requirements-mlflow.txt`).

#[path = "spanmetrics_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use spanpipe_e2e::{Spanpipe, free_ports, run_python, tail, wait_until};
use support::{FilePoints, file_histograms};

const METRIC: &str = "mlflow.trace.span.duration";

/// (count, sum, buckets) per (root, span_type, span_status, experiment_id).
type Grouped = BTreeMap<[String; 4], (u64, f64, Vec<u64>)>;

fn group(points: &FilePoints) -> Grouped {
    let mut out = Grouped::new();
    for (labels, (_, count, sum, buckets)) in points {
        let key = ["root", "span_type", "span_status", "experiment_id"]
            .map(|k| labels.get(k).cloned().unwrap_or_default());
        let e = out
            .entry(key)
            .or_insert_with(|| (0, 0.0, vec![0; buckets.len()]));
        e.0 += count;
        e.1 += sum;
        for (a, b) in e.2.iter_mut().zip(buckets) {
            *a += b;
        }
    }
    out
}

fn spans_in(points: &FilePoints) -> u64 {
    points.values().map(|p| p.1).sum()
}

#[test]
fn connector_matches_the_mlflow_sdk_metric_per_label_set() {
    let [http] = free_ports::<1>();
    let work = tempfile::tempdir().expect("tempdir");
    let ours = work.path().join("connector.jsonl");
    let sdk = work.path().join("sdk.jsonl");
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
connectors:
  mlflow_spanmetrics:
    tags: [team, env]
    metadata: [mlflow.trace_schema.version]
    tags_wait: 5s
    flush_interval: 300ms
exporters:
  file/connector: {{ path: {ours} }}
  file/sdk: {{ path: {sdk} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [mlflow_spanmetrics] }}
    metrics/connector: {{ receivers: [mlflow_spanmetrics], exporters: [file/connector] }}
    metrics/sdk: {{ receivers: [otlp], exporters: [file/sdk] }}
",
            ours = ours.display(),
            sdk = sdk.display()
        ),
        &[http],
    );
    let out = run_python(
        "spanmetrics_mlflow_workload.py",
        &[
            "--endpoint".into(),
            format!("http://127.0.0.1:{http}"),
            "--traces".into(),
            "24".into(),
        ],
        Duration::from_secs(180),
    );
    assert!(
        out.status.success(),
        "MLflow workload failed:\n{}\n{}",
        out.stdout,
        tail(&out.stderr, 6000)
    );
    let report: serde_json::Value =
        serde_json::from_str(out.stdout.trim().lines().last().unwrap_or("{}"))
            .unwrap_or_else(|e| panic!("workload report {:?}: {e}", out.stdout));
    let spans = report["spans"].as_u64().expect("span count");
    assert!(spans >= 24 * 4, "workload made {spans} spans");

    let complete = wait_until(Duration::from_secs(30), || {
        spans_in(&file_histograms(&ours, METRIC)) >= spans
            && spans_in(&file_histograms(&sdk, METRIC)) >= spans
    });
    let (a, b) = (
        file_histograms(&ours, METRIC),
        file_histograms(&sdk, METRIC),
    );
    assert!(
        complete,
        "expected {spans} spans: connector has {}, SDK metric has {}",
        spans_in(&a),
        spans_in(&b)
    );
    assert_eq!((spans_in(&a), spans_in(&b)), (spans, spans));

    let (ga, gb) = (group(&a), group(&b));
    assert_eq!(
        ga.keys().collect::<Vec<_>>(),
        gb.keys().collect::<Vec<_>>(),
        "label sets differ"
    );
    for (key, (count, sum, buckets)) in &ga {
        let (c2, s2, b2) = &gb[key];
        assert_eq!((count, buckets), (c2, b2), "counts/buckets of {key:?}");
        assert!(
            (sum - s2).abs() <= 1e-9 * s2.max(1.0),
            "sum of {key:?}: {sum} != {s2}"
        );
    }
    for ty in ["AGENT", "CHAIN", "LLM", "TOOL"] {
        assert!(ga.keys().any(|k| k[1] == ty), "no {ty} spans");
    }
    assert!(
        ga.keys().any(|k| k[2] == "ERROR" && k[0] == "true"),
        "some traces failed"
    );

    // Spans that end after `update_current_trace(tags=...)` carry the tags in the SDK's metric too: their full
    // label sets (tags and metadata included) must be identical.
    let tagged = |p: &FilePoints| -> FilePoints {
        p.iter()
            .filter(|(l, _)| {
                matches!(
                    l.get("span_type").map(String::as_str),
                    Some("AGENT" | "TOOL")
                )
            })
            .map(|(l, v)| (l.clone(), v.clone()))
            .collect()
    };
    let (ta, tb) = (tagged(&a), tagged(&b));
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "tagged label sets differ"
    );
    assert!(
        ta.keys()
            .all(|l| l.get("tags.team").is_some() && l.get("tags.env").is_some())
    );
    for (labels, p) in &ta {
        assert_eq!((p.1, &p.3), (tb[labels].1, &tb[labels].3), "{labels:?}");
    }

    let status = sp.stop_gracefully();
    assert!(status.success(), "spanpipe exited with {status}");
}
