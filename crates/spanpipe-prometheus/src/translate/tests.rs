use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, HistogramDataPoint,
};

use super::*;
use crate::test_util::*;

fn labels_of(req: &ExportMetricsServiceRequest, o: &Options) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    translate(req, o, |p| {
        out.push(
            p.labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    });
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn opts() -> Options {
    Options {
        add_metric_suffixes: true,
        ..Options::default()
    }
}

#[test]
fn colliding_names_join_values_in_key_order_and_fixed_labels_win() {
    let req = request(
        vec![s("service.name", "svc"), s("host.name", "h1")],
        vec![metric(
            "m",
            "",
            "",
            gauge(vec![number(
                1.0,
                vec![
                    s("tags_team", "b"),
                    s("tags.team", "a"),
                    s("job", "mine"),
                    s("cluster", "from-point"),
                    s("empty", ""),
                    kv("n", V::IntValue(3)),
                    kv("ok", V::BoolValue(true)),
                    kv("ratio", V::DoubleValue(0.5)),
                    kv(
                        "list",
                        V::ArrayValue(ArrayValue {
                            values: vec![AnyValue {
                                value: Some(V::IntValue(1)),
                            }],
                        }),
                    ),
                    kv(
                        "map",
                        V::KvlistValue(KeyValueList {
                            values: vec![s("k", "v")],
                        }),
                    ),
                    s("__name__", "evil"),
                ],
                1,
            )]),
        )],
    );
    let mut o = opts();
    o.const_labels = vec![
        (Arc::from("cluster"), "c1".into()),
        (Arc::from("region"), "eu".into()),
    ];
    let got = labels_of(&req, &o);
    assert_eq!(
        got[0],
        pairs(&[
            ("cluster", "from-point"),
            ("job", "svc"),
            ("list", "[1]"),
            ("map", "{\"k\":\"v\"}"),
            ("n", "3"),
            ("ok", "true"),
            ("otel_scope_name", "mlflow.tracing"),
            ("ratio", "0.5"),
            ("region", "eu"),
            ("tags_team", "a;b"),
        ])
    );
    o.resource_to_telemetry = true;
    o.without_scope_info = true;
    o.const_labels.clear();
    let got = labels_of(&req, &o);
    assert!(got[0].contains(&("host_name".to_string(), "h1".to_string())));
    assert!(got[0].contains(&("service_name".to_string(), "svc".to_string())));
    assert!(!got[0].iter().any(|(k, _)| k == "otel_scope_name"));
}

#[test]
fn unrepresentable_points_are_dropped_and_counted() {
    let req = request(
        vec![],
        vec![
            metric(
                "delta.gauge.like",
                "",
                "",
                sum(vec![number(1.0, vec![], 1)], false, 1),
            ),
            metric(
                "exp",
                "",
                "",
                Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint::default(); 2],
                    aggregation_temporality: 2,
                }),
            ),
            metric("...", "", "", gauge(vec![number(1.0, vec![], 1)])),
            metric("ok", "", "", gauge(vec![number(1.0, vec![], 1)])),
        ],
    );
    let mut n = 0;
    let dropped = translate(&req, &opts(), |_| n += 1);
    assert_eq!((n, dropped.points), (1, 4));
}

#[test]
fn kinds_names_and_flags() {
    let mut stale = number(1.0, vec![], 9);
    stale.flags = 1;
    let req = request(
        vec![],
        vec![
            metric("calls", "1", "", sum(vec![number(2.0, vec![], 1)], true, 2)),
            metric("used", "1", "", gauge(vec![stale])),
            metric(
                "lat",
                "s",
                "",
                histogram(
                    vec![HistogramDataPoint {
                        count: 3,
                        ..Default::default()
                    }],
                    1,
                ),
            ),
        ],
    );
    let mut got = Vec::new();
    translate(&req, &opts(), |p| {
        got.push((p.family.to_string(), p.kind, p.delta, p.stale, p.value))
    });
    assert_eq!(got[0].0, "calls_total");
    assert_eq!((got[0].1, got[0].2), (Kind::Counter, false));
    assert_eq!((got[1].0.as_str(), got[1].3), ("used_ratio", true));
    assert_eq!(
        (got[2].0.as_str(), got[2].1, got[2].2),
        ("lat_seconds", Kind::Histogram, true)
    );
    assert_eq!(
        got[2].4,
        Value::Histogram {
            bounds: vec![],
            counts: vec![3],
            sum: 0.0,
            count: 3
        },
        "a histogram without buckets has only +Inf"
    );
}
