//! `filter` processor end to end: Python OTel SDK spans over gRPC → spanpipe A (three chained filters: OTTL-subset
//! conditions, legacy `spans.exclude`, `drop_whole_trace`) → OTLP/gRPC → spanpipe B (`file`). Exactly the
//! expected spans arrive, and A's `otelcol_processor_filter_spans_filtered_total` counts each filter's drops.
//! Also: a condition outside the subset is a config error with file:line and key.

#[path = "transform_support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use spanpipe_e2e::{run_spanpipe, wait_until};
use support::{metric, received, send, start_pair, wait_received};

const PROCESSORS: &str = r#"  filter/ottl:
    error_mode: ignore
    traces:
      span:
        - 'attributes["http.route"] == "/health"'
        - 'IsMatch(name, "^poll ") and kind == SPAN_KIND_INTERNAL'
        - 'attributes["llm.tokens"] > 1000 and resource.attributes["service.name"] == "agent"'
  filter/legacy:
    spans:
      exclude:
        match_type: strict
        services: [noisy]
  filter/trace:
    drop_whole_trace: true
    traces:
      span: ['status.code == STATUS_CODE_ERROR and attributes["drop.trace"] == true']
  batch:
    timeout: 100ms"#;

const METRIC: &str = "otelcol_processor_filter_spans_filtered_total";

#[test]
fn filters_drop_exactly_the_matching_spans_and_count_them() {
    let pair = start_pair(
        PROCESSORS,
        "filter/ottl, filter/legacy, filter/trace, batch",
    );
    let sent = send(
        pair.work.path(),
        json!({
            "protocol": "grpc",
            "endpoint": format!("127.0.0.1:{}", pair.a_grpc),
            "resources": [
                {"attributes": {"service.name": "agent"}, "traces": [
                    [{"name": "GET /health", "kind": "SERVER", "attributes": {"http.route": "/health"}}],
                    [
                        {"name": "agent run", "kind": "SERVER", "attributes": {"http.route": "/chat"}},
                        {"name": "poll queue", "kind": "INTERNAL"},
                        {"name": "poll client", "kind": "CLIENT"},
                        {"name": "llm big", "kind": "CLIENT", "attributes": {"llm.tokens": 5000}},
                        {"name": "llm small", "kind": "CLIENT", "attributes": {"llm.tokens": 10}},
                        {"name": "llm no tokens", "kind": "CLIENT"}
                    ],
                    [
                        {"name": "doomed root", "kind": "SERVER"},
                        {"name": "doomed fail", "status": "ERROR", "attributes": {"drop.trace": true}},
                        {"name": "doomed sibling"}
                    ],
                    [{"name": "error kept", "status": "ERROR", "attributes": {"drop.trace": false}}]
                ]},
                {"attributes": {"service.name": "noisy"}, "traces": [[{"name": "noisy op"}]]},
                {"attributes": {"service.name": "other"}, "traces": [
                    [{"name": "big other", "attributes": {"llm.tokens": 5000}}]
                ]}
            ]
        }),
    );
    assert_eq!(sent.len(), 13);
    let kept: BTreeSet<&str> = [
        "agent run",
        "poll client",
        "llm small",
        "llm no tokens",
        "error kept",
        "big other",
    ]
    .into();
    let got = wait_received(&pair.out, kept.len());
    let names: BTreeSet<&str> = got.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, kept);
    assert_eq!(got.len(), kept.len(), "no duplicates");
    for s in sent.iter().filter(|s| kept.contains(s.name.as_str())) {
        let r = got.iter().find(|r| r.name == s.name).expect("kept span");
        assert_eq!((&r.trace_id, &r.span_id), (&s.trace_id, &s.span_id));
    }

    for (filter, dropped) in [
        ("filter/ottl", 3.0),
        ("filter/legacy", 1.0),
        ("filter/trace", 3.0),
    ] {
        let label = format!("filter=\"{filter}\"");
        let ok = wait_until(Duration::from_secs(10), || {
            metric(pair.a_metrics, METRIC, &label) == Some(dropped)
        });
        assert!(
            ok,
            "{METRIC}{{{label}}} = {:?}, expected {dropped}",
            metric(pair.a_metrics, METRIC, &label)
        );
    }
    assert_eq!(received(&pair.out).len(), kept.len());
}

#[test]
fn conditions_outside_the_subset_are_config_errors_with_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nprocessors:\n  filter/bad:\n    traces:\n      span:\n        - 'name == \"ok\"'\n        - 'IsRootSpan()'\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces: { receivers: [otlp], processors: [filter/bad], exporters: [debug] }\n",
    )
    .expect("write config");
    let out = run_spanpipe(&["validate", "--config", &path.display().to_string()]);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let want = format!(
        "{}:10:11: processors.filter/bad.traces.span[1]: column 1: function IsRootSpan is not supported",
        path.display()
    );
    assert!(
        out.stderr.contains(&want),
        "want {want:?} in:\n{}",
        out.stderr
    );
}
