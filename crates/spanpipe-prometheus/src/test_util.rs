//! OTLP metric requests for the unit tests.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

pub fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

pub fn s(k: &str, v: &str) -> KeyValue {
    kv(k, Value::StringValue(v.into()))
}

/// The span-duration histogram point of the `mlflow_spanmetrics` connector.
pub fn duration_point(
    span_type: &str,
    counts: Vec<u64>,
    sum: f64,
    time: u64,
) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: vec![
            kv("root", Value::BoolValue(false)),
            s("span_type", span_type),
            s("span_status", "OK"),
            s("experiment_id", "0"),
            s("tags.team", "rust"),
        ],
        start_time_unix_nano: 1,
        time_unix_nano: time,
        count: counts.iter().sum(),
        sum: Some(sum),
        bucket_counts: counts,
        explicit_bounds: vec![0.0, 5.0, 10000.0],
        ..Default::default()
    }
}

pub fn metric(name: &str, unit: &str, desc: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: desc.into(),
        data: Some(data),
        ..Default::default()
    }
}

pub fn number(v: f64, attrs: Vec<KeyValue>, time: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: time,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

pub fn histogram(points: Vec<HistogramDataPoint>, temporality: i32) -> Data {
    Data::Histogram(Histogram {
        data_points: points,
        aggregation_temporality: temporality,
    })
}

pub fn sum(points: Vec<NumberDataPoint>, monotonic: bool, temporality: i32) -> Data {
    Data::Sum(Sum {
        data_points: points,
        aggregation_temporality: temporality,
        is_monotonic: monotonic,
    })
}

pub fn gauge(points: Vec<NumberDataPoint>) -> Data {
    Data::Gauge(Gauge {
        data_points: points,
    })
}

/// One resource (with `resource` attributes) and one scope `mlflow.tracing` holding `metrics`.
pub fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "mlflow.tracing".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
