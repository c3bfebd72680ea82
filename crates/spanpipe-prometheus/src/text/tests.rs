use std::time::{Duration, Instant};

use super::*;
use crate::test_util::*;
use crate::translate::{Options, translate};

fn opts() -> Options {
    Options {
        add_metric_suffixes: true,
        ..Options::default()
    }
}

fn render_text(store: &Store) -> String {
    render(store, Format::default())
}

fn store_of(
    reqs: &[opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest],
) -> Store {
    let mut st = Store::new(Some(Duration::from_secs(300)));
    let now = Instant::now();
    for r in reqs {
        translate(r, &opts(), |p| st.update(p, now));
    }
    st
}

#[test]
fn the_span_duration_histogram_renders_like_the_go_exporter() {
    let req = request(
        vec![],
        vec![metric(
            "mlflow.trace.span.duration",
            "ms",
            "Duration of spans in milliseconds",
            histogram(
                vec![duration_point("LLM", vec![1, 2, 3, 4], 12345.5, 10)],
                2,
            ),
        )],
    );
    let text = render_text(&store_of(&[req]));
    let labels = r#"experiment_id="0",otel_scope_name="mlflow.tracing",root="false",span_status="OK",span_type="LLM",tags_team="rust""#;
    let name = "mlflow_trace_span_duration_milliseconds";
    let want = format!(
        "# HELP {name} Duration of spans in milliseconds\n\
         # TYPE {name} histogram\n\
         {name}_bucket{{{labels},le=\"0\"}} 1\n\
         {name}_bucket{{{labels},le=\"5\"}} 3\n\
         {name}_bucket{{{labels},le=\"10000\"}} 6\n\
         {name}_bucket{{{labels},le=\"+Inf\"}} 10\n\
         {name}_sum{{{labels}}} 12345.5\n\
         {name}_count{{{labels}}} 10\n"
    );
    assert_eq!(text, want);
}

#[test]
fn newer_cumulative_points_replace_older_ones_and_deltas_add_up() {
    let hist = |counts: Vec<u64>, time: u64| {
        request(
            vec![],
            vec![metric(
                "d",
                "ms",
                "",
                histogram(vec![duration_point("LLM", counts, 1.0, time)], 2),
            )],
        )
    };
    let text = render_text(&store_of(&[
        hist(vec![1, 0, 0, 0], 20),
        hist(vec![5, 0, 0, 0], 10),
    ]));
    assert!(
        text.contains("le=\"+Inf\"} 1\n"),
        "the older point was ignored:\n{text}"
    );
    let counter = |v: f64| {
        request(
            vec![
                s("service.name", "agent"),
                s("service.namespace", "ml"),
                s("service.instance.id", "i-1"),
            ],
            vec![metric(
                "calls",
                "1",
                "Calls",
                sum(vec![number(v, vec![], 5)], true, 1),
            )],
        )
    };
    let text = render_text(&store_of(&[counter(2.0), counter(3.0)]));
    assert_eq!(
        text,
        "# HELP calls_total Calls\n# TYPE calls_total counter\n\
         calls_total{instance=\"i-1\",job=\"ml/agent\",otel_scope_name=\"mlflow.tracing\"} 5\n"
    );
}

#[test]
fn gauges_escape_values_and_help() {
    let req = request(
        vec![],
        vec![metric(
            "queue.size",
            "{item}",
            "Items\nwaiting \\ now",
            gauge(vec![number(
                1e6,
                vec![s("path", "a\"b\\c\nd"), s("1x", "v")],
                5,
            )]),
        )],
    );
    let text = render_text(&store_of(&[req]));
    assert_eq!(
        text,
        "# HELP queue_size Items\\nwaiting \\\\ now\n# TYPE queue_size gauge\n\
         queue_size{key_1x=\"v\",otel_scope_name=\"mlflow.tracing\",path=\"a\\\"b\\\\c\\nd\"} 1e+06\n"
    );
}

#[test]
fn series_expire_and_type_conflicts_are_refused() {
    let mut st = Store::new(Some(Duration::from_secs(60)));
    let t0 = Instant::now();
    let g = request(
        vec![],
        vec![metric("x", "", "", gauge(vec![number(1.0, vec![], 1)]))],
    );
    let c = request(
        vec![],
        vec![metric(
            "x",
            "",
            "",
            sum(vec![number(1.0, vec![], 1)], false, 2),
        )],
    );
    translate(&g, &opts(), |p| st.update(p, t0));
    translate(&c, &opts(), |p| st.update(p, t0));
    assert_eq!(
        (st.len(), st.type_conflicts),
        (1, 0),
        "a non-monotonic cumulative sum is a gauge too"
    );
    let h = request(
        vec![],
        vec![metric(
            "x",
            "",
            "",
            histogram(vec![duration_point("A", vec![1, 0, 0, 0], 0.0, 1)], 2),
        )],
    );
    translate(&h, &opts(), |p| st.update(p, t0));
    assert_eq!(st.type_conflicts, 1);
    st.expire(t0 + Duration::from_secs(59));
    assert_eq!(st.len(), 1);
    st.expire(t0 + Duration::from_secs(60));
    assert!(st.is_empty());
    assert_eq!(render(&st, Format::default()), "");
}

#[test]
fn timestamps_and_open_metrics() {
    let at = 1_700_000_000_123_000_000u64;
    let req = request(
        vec![],
        vec![
            metric(
                "calls",
                "1",
                "Calls \"all\"",
                sum(vec![number(5.0, vec![], at)], true, 2),
            ),
            metric(
                "mlflow.trace.span.duration",
                "ms",
                "d",
                histogram(vec![duration_point("LLM", vec![1, 2, 3, 4], 3.5, at)], 2),
            ),
        ],
    );
    let store = store_of(&[req]);
    let text = render(
        &store,
        Format {
            timestamps: true,
            open_metrics: false,
        },
    );
    assert!(
        text.contains("\ncalls_total{otel_scope_name=\"mlflow.tracing\"} 5 1700000000123\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE calls_total counter\n"), "{text}");
    let om = Format {
        timestamps: true,
        open_metrics: true,
    };
    let text = render(&store, om);
    assert!(
        text.contains("# HELP calls Calls \\\"all\\\"\n# TYPE calls counter\n"),
        "{text}"
    );
    assert!(
        text.contains("\ncalls_total{otel_scope_name=\"mlflow.tracing\"} 5 1700000000.123\n"),
        "{text}"
    );
    assert!(text.contains("_bucket{"), "{text}");
    assert!(text.contains("le=\"+Inf\"} 10 1700000000.123\n"), "{text}");
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    assert_eq!(om.content_type(), OPEN_METRICS_CONTENT_TYPE);
    assert_eq!(Format::default().content_type(), CONTENT_TYPE);
}
