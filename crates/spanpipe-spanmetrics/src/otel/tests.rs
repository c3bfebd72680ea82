use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use super::config::OtelSpanMetricsConfig;
use super::*;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn span(name: &str, kind: i32, status: i32, ms: u64, attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: name.into(),
        kind,
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 1_000_000_000 + ms * 1_000_000,
        attributes: attrs,
        status: Some(Status {
            code: status,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn request(resources: Vec<(Vec<KeyValue>, Vec<Span>)>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: resources
            .into_iter()
            .map(|(attrs, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: attrs,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

fn settings(yaml: &str) -> Settings {
    let node = spanpipe_config::load_str("t.yaml", yaml).unwrap();
    let cfg: OtelSpanMetricsConfig = node.deserialize("connectors.spanmetrics").unwrap();
    cfg.validate().unwrap()
}

fn run(s: &Settings, payload: &[u8]) -> ExportMetricsServiceRequest {
    let batch = read(s, payload).unwrap();
    let mut st = State::new(1);
    st.record(s, &batch, Instant::now(), 5);
    st.flush(s, Instant::now(), 10).unwrap()
}

fn dims(attrs: &[KeyValue]) -> Vec<(String, String)> {
    attrs
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

#[test]
fn calls_and_durations_by_the_default_dimensions() {
    let s = settings("{}");
    let payload = request(vec![
        (
            vec![kv("service.name", "shop"), kv("host.name", "h")],
            vec![
                span("GET /a", 2, 0, 5, vec![]),
                span("GET /a", 2, 0, 300, vec![]),
                span("db", 3, 2, 1, vec![]),
            ],
        ),
        (
            vec![kv("host.name", "no-service")],
            vec![span("x", 1, 0, 1, vec![])],
        ),
    ]);
    let req = run(&s, &payload);
    assert_eq!(
        req.resource_metrics.len(),
        1,
        "spans without service.name are skipped"
    );
    let rm = &req.resource_metrics[0];
    assert_eq!(
        dims(&rm.resource.as_ref().unwrap().attributes)[1].0,
        "host.name"
    );
    let metrics = &rm.scope_metrics[0].metrics;
    assert_eq!(metrics[0].name, "traces.span.metrics.calls");
    assert_eq!(metrics[1].name, "traces.span.metrics.duration");
    assert_eq!(metrics[1].unit, "ms");
    let Some(Data::Sum(calls)) = &metrics[0].data else {
        panic!()
    };
    assert!(calls.is_monotonic);
    let mut got: Vec<(Vec<(String, String)>, i64)> = calls
        .data_points
        .iter()
        .map(|p| {
            let n = match p.value {
                Some(number_data_point::Value::AsInt(n)) => n,
                _ => -1,
            };
            (dims(&p.attributes), n)
        })
        .collect();
    got.sort();
    let d = |name: &str, kind: &str, status: &str| {
        vec![
            ("service.name".to_string(), "shop".to_string()),
            ("span.name".into(), name.into()),
            ("span.kind".into(), kind.into()),
            ("status.code".into(), status.into()),
        ]
    };
    assert_eq!(
        got,
        vec![
            (d("GET /a", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET"), 2),
            (d("db", "SPAN_KIND_CLIENT", "STATUS_CODE_ERROR"), 1),
        ]
    );
    let Some(Data::Histogram(h)) = &metrics[1].data else {
        panic!()
    };
    let p = h
        .data_points
        .iter()
        .find(|p| dims(&p.attributes)[1].1 == "GET /a")
        .unwrap();
    assert_eq!(p.count, 2);
    assert_eq!(p.sum, Some(305.0));
    assert_eq!(p.explicit_bounds.len(), 16);
    // 5 ms lands in (4, 6], 300 ms in (200, 400].
    assert_eq!(p.bucket_counts[2], 1);
    assert_eq!(p.bucket_counts[8], 1);
}

#[test]
fn dimensions_defaults_exclusions_namespace_and_units() {
    let s = settings(
        "namespace: span.metrics\nexclude_dimensions: [status.code]\nhistogram: { unit: s, explicit: { buckets: [100ms, 1s] } }\ndimensions:\n  - name: http.method\n    default: GET\n  - name: region\n  - name: missing\n",
    );
    let payload = request(vec![(
        vec![kv("service.name", "api"), kv("region", "eu")],
        vec![
            span("op", 2, 1, 500, vec![kv("http.method", "POST")]),
            span("op", 2, 1, 50, vec![]),
        ],
    )]);
    let req = run(&s, &payload);
    let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(metrics[0].name, "span.metrics.calls");
    assert_eq!(metrics[1].unit, "s");
    let Some(Data::Histogram(h)) = &metrics[1].data else {
        panic!()
    };
    assert_eq!(h.data_points[0].explicit_bounds, vec![0.1, 1.0]);
    let mut all: Vec<Vec<(String, String)>> =
        h.data_points.iter().map(|p| dims(&p.attributes)).collect();
    all.sort();
    let keys: Vec<&str> = all[0].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "service.name",
            "span.name",
            "span.kind",
            "http.method",
            "region"
        ]
    );
    assert_eq!(all[0][3].1, "GET");
    assert_eq!(all[1][3].1, "POST");
    assert_eq!(all[0][4].1, "eu", "from the resource");
}

#[test]
fn cardinality_limit_overflow_expiration_and_delta() {
    let s = settings(
        "aggregation_cardinality_limit: 1\nmetrics_expiration: 1s\naggregation_temporality: AGGREGATION_TEMPORALITY_DELTA",
    );
    let payload = request(vec![(
        vec![kv("service.name", "a")],
        vec![
            span("one", 1, 0, 1, vec![]),
            span("two", 1, 0, 1, vec![]),
            span("three", 1, 0, 1, vec![]),
        ],
    )]);
    let batch = read(&s, &payload).unwrap();
    let mut st = State::new(1);
    let t0 = Instant::now();
    st.record(&s, &batch, t0, 5);
    assert_eq!(st.overflowed, 2);
    let req = st.flush(&s, t0, 10).unwrap();
    let Some(Data::Sum(calls)) = &req.resource_metrics[0].scope_metrics[0].metrics[0].data else {
        panic!()
    };
    assert_eq!(calls.data_points.len(), 2);
    assert!(calls.data_points.iter().any(|p| dims(&p.attributes)
        == [(
            "otel.metric.overflow".to_string(),
            "Some(BoolValue(true))".to_string()
        )]));
    assert!(st.is_empty(), "delta starts again");
    let s = settings("metrics_expiration: 1s");
    let batch = read(&s, &payload).unwrap();
    let mut st = State::new(1);
    st.record(&s, &batch, t0, 5);
    assert_eq!(st.len(), 3);
    assert!(
        st.flush(&s, t0 + Duration::from_secs(2), 10).is_none(),
        "expired"
    );
}

#[test]
fn refused_options_are_named() {
    let err = |yaml: &str| {
        let node = spanpipe_config::load_str("t.yaml", yaml).unwrap();
        let cfg: OtelSpanMetricsConfig = node.deserialize("c").unwrap();
        cfg.validate().unwrap_err().0
    };
    assert_eq!(
        err("histogram: { exponential: { max_size: 1 } }"),
        ["histogram", "exponential", "max_size"]
    );
    assert_eq!(
        err("histogram: { explicit: {}, exponential: { max_size: 10 } }"),
        ["histogram", "exponential"]
    );
    assert_eq!(err("events: { enabled: true }"), ["events", "enabled"]);
    assert_eq!(err("exclude_dimensions: [foo]"), ["exclude_dimensions"]);
    assert_eq!(
        err("histogram: { explicit: { buckets: [2s, 1s] } }"),
        ["histogram", "explicit", "buckets"]
    );
    settings(
        "exemplars: { enabled: true }\ndimensions_cache_size: 10\nresource_metrics_key_attributes: [service.name]",
    );
}

#[test]
fn exponential_histograms() {
    let s = settings("histogram: { exponential: { max_size: 20 } }");
    let payload = request(vec![(
        vec![kv("service.name", "a")],
        (1..=50)
            .map(|ms| span("op", 2, 0, ms * 7, vec![]))
            .collect(),
    )]);
    let req = run(&s, &payload);
    let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
    let Some(Data::ExponentialHistogram(h)) = &metrics[1].data else {
        panic!("{:?}", metrics[1])
    };
    let p = &h.data_points[0];
    assert_eq!(p.count, 50);
    let buckets = p.positive.as_ref().unwrap();
    assert!(buckets.bucket_counts.len() <= 20);
    assert_eq!(buckets.bucket_counts.iter().sum::<u64>(), 50);
    assert!(p.scale < 20);
}
