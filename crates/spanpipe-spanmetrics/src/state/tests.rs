use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, metric::Data};
use prost::Message;
use spanpipe_core::Metadata;

use super::*;
use crate::emit::export_request;
use crate::extract::extract;
use crate::test_util::{request, settings, span};

const TAGGED: &str = "tags: [team]\ntags_wait: 10s\nmetadata: [mlflow.trace_schema.version]\n";

fn feed(st: &mut State, s: &Settings, bytes: &[u8], now: Instant) {
    let md = Metadata::default();
    let f = extract(s, bytes, &md, 0).unwrap();
    st.record_batch(&f, now, 1_000);
}

/// Every point as (attributes "k=v" sorted, count, sum).
fn points(st: &State, s: &Settings) -> Vec<(Vec<String>, u64, f64)> {
    let Some(enc) = export_request(s, st.series(), 2_000) else {
        return vec![];
    };
    let req = ExportMetricsServiceRequest::decode(&enc.bytes[..]).unwrap();
    assert_eq!(
        spanpipe_core::wire::count_metric_points(&enc.bytes).unwrap(),
        enc.points
    );
    let m = &req.resource_metrics[0].scope_metrics[0].metrics[0];
    assert_eq!(
        (m.name.as_str(), m.unit.as_str()),
        ("mlflow.trace.span.duration", "ms")
    );
    let Some(Data::Histogram(h)) = &m.data else {
        panic!("not a histogram")
    };
    assert_eq!(h.aggregation_temporality, 2);
    let mut out: Vec<_> = h.data_points.iter().map(describe).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn describe(p: &HistogramDataPoint) -> (Vec<String>, u64, f64) {
    let mut attrs: Vec<String> = p
        .attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            format!("{}={v}", kv.key)
        })
        .collect();
    attrs.sort();
    assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
    assert_eq!(p.explicit_bounds.len() + 1, p.bucket_counts.len());
    (attrs, p.count, p.sum.unwrap_or_default())
}

fn attrs(list: &str) -> Vec<String> {
    let mut v: Vec<String> = list.split(' ').map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn children_wait_for_the_root_and_get_its_tags() {
    let s = Arc::new(settings(TAGGED));
    let mut st = State::new(s.clone());
    let t0 = Instant::now();
    feed(
        &mut st,
        &s,
        &request(
            &[],
            vec![span(1, 2, 1, 10.0, 0, &[("mlflow.spanType", "\"LLM\"")])],
        ),
        t0,
    );
    assert_eq!(st.pending_points(), 1);
    assert!(points(&st, &s).is_empty(), "nothing recorded while waiting");
    let root = span(
        1,
        1,
        0,
        30.0,
        1,
        &[
            ("mlflow.spanType", "\"AGENT\""),
            ("mlflow.traceTag.team", "rust"),
        ],
    );
    feed(
        &mut st,
        &s,
        &request(&[], vec![root]),
        t0 + Duration::from_secs(1),
    );
    assert_eq!(st.pending_points(), 0);
    // A straggler after the root still gets the tags.
    feed(
        &mut st,
        &s,
        &request(
            &[],
            vec![span(1, 3, 1, 20.0, 0, &[("mlflow.spanType", "\"LLM\"")])],
        ),
        t0 + Duration::from_secs(2),
    );
    let schema = "metadata.mlflow.trace_schema.version=3";
    assert_eq!(
        points(&st, &s),
        [
            (
                attrs(&format!(
                    "experiment_id=0 {schema} root=false span_status=UNSET span_type=LLM tags.team=rust"
                )),
                2,
                30.0
            ),
            (
                attrs(&format!(
                    "experiment_id=0 {schema} root=true span_status=OK span_type=AGENT tags.team=rust"
                )),
                1,
                30.0
            ),
        ]
    );
}

#[test]
fn root_in_the_same_request_tags_children_before_and_after_it() {
    let s = Arc::new(settings(TAGGED));
    let mut st = State::new(s.clone());
    let root = span(1, 1, 0, 5.0, 1, &[("mlflow.traceTag.team", "go")]);
    let bytes = request(
        &[],
        vec![span(1, 2, 1, 1.0, 1, &[]), root, span(1, 3, 1, 1.0, 1, &[])],
    );
    feed(&mut st, &s, &bytes, Instant::now());
    let p = points(&st, &s);
    assert_eq!(p.len(), 2);
    assert!(
        p.iter()
            .all(|(a, _, _)| a.contains(&"tags.team=go".to_string()))
    );
    assert_eq!(st.pending_points(), 0);
}

#[test]
fn without_a_root_points_are_recorded_untagged_when_the_wait_ends() {
    let s = Arc::new(settings(TAGGED));
    let mut st = State::new(s.clone());
    let t0 = Instant::now();
    feed(
        &mut st,
        &s,
        &request(&[], vec![span(1, 2, 1, 10.0, 2, &[])]),
        t0,
    );
    st.sweep(t0 + Duration::from_secs(9), 0);
    assert_eq!(st.pending_points(), 1);
    st.sweep(t0 + Duration::from_secs(10), 0);
    assert_eq!(st.pending_points(), 0);
    assert_eq!(st.counts.untagged_no_root, 1);
    let p = points(&st, &s);
    assert_eq!(
        p[0].0,
        attrs(
            "experiment_id=0 metadata.mlflow.trace_schema.version=3 root=false span_status=ERROR span_type=UNKNOWN"
        )
    );
}

#[test]
fn zero_wait_or_no_tags_records_at_once() {
    for yaml in ["tags: [team]\ntags_wait: 0s\n", "tags_wait: 30s\n"] {
        let s = Arc::new(settings(yaml));
        let mut st = State::new(s.clone());
        feed(
            &mut st,
            &s,
            &request(&[], vec![span(1, 2, 1, 10.0, 0, &[])]),
            Instant::now(),
        );
        assert_eq!(
            (st.pending_points(), points(&st, &s).len()),
            (0, 1),
            "{yaml}"
        );
    }
}

#[test]
fn a_full_waiting_room_records_untagged_and_counts() {
    let s = Arc::new(settings("tags: [team]\nmax_pending_spans: 2\n"));
    let mut st = State::new(s.clone());
    let spans = (2..6).map(|i| span(1, i, 1, 1.0, 0, &[])).collect();
    feed(&mut st, &s, &request(&[], spans), Instant::now());
    assert_eq!(st.pending_points(), 2);
    assert_eq!(st.counts.untagged_pending_full, 2);
    assert_eq!(points(&st, &s)[0].1, 2);
    st.drain_pending(Instant::now(), 0);
    assert_eq!(points(&st, &s)[0].1, 4);
}

#[test]
fn distinct_tag_values_overflow_past_max_series() {
    let s = Arc::new(settings("tags: [team]\nmax_series: 3\n"));
    let mut st = State::new(s.clone());
    let spans: Vec<_> = (0..10u8)
        .map(|t| {
            let team = format!("team-{t}");
            let mut sp = span(t, 1, 0, 1.0, 1, &[("mlflow.traceTag.team", team.as_str())]);
            sp.trace_id = vec![t; 16];
            sp
        })
        .collect();
    feed(&mut st, &s, &request(&[], spans), Instant::now());
    assert_eq!(st.series().len(), 3);
    assert_eq!(st.counts.overflow_points, 7);
    let p = points(&st, &s);
    let overflow: Vec<_> = p
        .iter()
        .filter(|(a, _, _)| a == &vec!["otel.metric.overflow=true".to_string()])
        .collect();
    assert_eq!(overflow.len(), 1);
    assert_eq!(overflow[0].1, 7);
}

#[test]
fn the_encoded_request_has_every_field_of_the_sdk_metric() {
    let s = Arc::new(settings("tags: [team]\ntags_wait: 0s\nmax_series: 1\n"));
    let mut st = State::new(s.clone());
    let root = span(
        1,
        1,
        0,
        7.5,
        2,
        &[
            ("mlflow.spanType", "\"AGENT\""),
            ("mlflow.traceTag.team", "rust"),
        ],
    );
    feed(
        &mut st,
        &s,
        &request(&[], vec![root, span(2, 1, 0, 1.0, 0, &[])]),
        Instant::now(),
    );
    let enc = export_request(&s, st.series(), 5_000).unwrap();
    let req = ExportMetricsServiceRequest::decode(&enc.bytes[..]).unwrap();
    let rm = &req.resource_metrics[0];
    assert!(rm.resource.as_ref().unwrap().attributes.is_empty());
    let sm = &rm.scope_metrics[0];
    assert_eq!(sm.scope.as_ref().unwrap().name, "mlflow.tracing");
    let m = &sm.metrics[0];
    assert_eq!(m.description, "Duration of spans in milliseconds");
    let Some(Data::Histogram(h)) = &m.data else {
        panic!("histogram")
    };
    assert_eq!(h.data_points.len(), 2);
    let p = &h.data_points[0];
    assert_eq!(
        (p.start_time_unix_nano, p.time_unix_nano, p.count),
        (1_000, 5_000, 1)
    );
    assert_eq!((p.sum, p.min, p.max), (Some(7.5), Some(7.5), Some(7.5)));
    assert_eq!(p.explicit_bounds, crate::config::DEFAULT_BUCKETS.to_vec());
    assert_eq!(p.bucket_counts.iter().position(|c| *c == 1), Some(2));
    assert_eq!(
        p.attributes[0].value.as_ref().unwrap().value,
        Some(Value::BoolValue(true))
    );
    assert_eq!(
        describe(p).0,
        attrs("experiment_id=0 root=true span_status=ERROR span_type=AGENT tags.team=rust")
    );
    assert_eq!(describe(&h.data_points[1]).0, ["otel.metric.overflow=true"]);
}
