//! The cumulative state as one OTLP `ExportMetricsServiceRequest`: histograms `gen_ai.client.token.usage`,
//! `gen_ai.client.operation.duration`, `gen_ai.execute_tool.duration`, `gen_ai.invoke_agent.duration` and the
//! monotonic sum `gen_ai.client.cost`, cumulative temporality, scope `spanpipe.genai_metrics`. Built with prost
//! once per flush (not per span).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram as OtlpHistogram, HistogramDataPoint, Metric as OtlpMetric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::config::Settings;
use crate::labels::{METRICS, Metric, SCOPE_NAME, SLOT_NAMES};
use crate::store::{Store, Value};

/// The OTel convention for the series past a cardinality limit.
pub const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn str_kv(k: &str, v: &str) -> KeyValue {
    kv(k, any_value::Value::StringValue(v.to_string()))
}

#[derive(Default)]
struct Points {
    hist: Vec<HistogramDataPoint>,
    sum: Vec<NumberDataPoint>,
}

fn push(
    out: &mut Points,
    m: Metric,
    attributes: Vec<KeyValue>,
    value: &Value,
    start: u64,
    now: u64,
) {
    match value {
        Value::Hist(h) => out.hist.push(HistogramDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now.max(start),
            count: h.count,
            sum: Some(h.sum),
            bucket_counts: h.counts.to_vec(),
            explicit_bounds: m.def().bounds.unwrap_or(&[]).to_vec(),
            min: (h.count > 0).then_some(h.min),
            max: (h.count > 0).then_some(h.max),
            ..Default::default()
        }),
        Value::Sum(v) => out.sum.push(NumberDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now.max(start),
            value: Some(number_data_point::Value::AsDouble(*v)),
            ..Default::default()
        }),
    }
}

/// Every series as of `now_ns` and the number of points; `None` when there is nothing to send.
pub fn export_request(
    s: &Settings,
    store: &Store,
    currency: &str,
    now_ns: u64,
) -> Option<(ExportMetricsServiceRequest, usize)> {
    if store.is_empty() {
        return None;
    }
    let mut per: [Points; METRICS] = Default::default();
    for series in store.series() {
        let mut attrs = Vec::with_capacity(12);
        for &i in series.metric.def().slots {
            if let Some(v) = &series.slots[i] {
                attrs.push(str_kv(SLOT_NAMES[i], v));
            }
        }
        if let Some(t) = series.token.as_str() {
            attrs.push(str_kv("gen_ai.token.type", t));
        }
        for (name, v) in s.labels.label_names.iter().zip(series.trace.iter()) {
            if let Some(v) = v {
                attrs.push(str_kv(name, v));
            }
        }
        let m = series.metric;
        push(
            &mut per[m as usize],
            m,
            attrs,
            &series.value,
            series.start_unix_nano,
            now_ns,
        );
    }
    for m in Metric::ALL {
        if let Some(o) = store.overflow(m) {
            let attrs = vec![kv(OVERFLOW_ATTRIBUTE, any_value::Value::BoolValue(true))];
            push(
                &mut per[m as usize],
                m,
                attrs,
                &o.value,
                o.start_unix_nano,
                now_ns,
            );
        }
    }
    let cumulative = AggregationTemporality::Cumulative as i32;
    let mut metrics = Vec::new();
    let mut points = 0;
    for (m, p) in Metric::ALL.into_iter().zip(per) {
        let d = m.def();
        let (data, n) = if d.bounds.is_some() {
            let n = p.hist.len();
            (
                Data::Histogram(OtlpHistogram {
                    data_points: p.hist,
                    aggregation_temporality: cumulative,
                }),
                n,
            )
        } else {
            let n = p.sum.len();
            (
                Data::Sum(Sum {
                    data_points: p.sum,
                    aggregation_temporality: cumulative,
                    is_monotonic: true,
                }),
                n,
            )
        };
        if n == 0 {
            continue;
        }
        points += n;
        metrics.push(OtlpMetric {
            name: d.name.to_string(),
            description: d.description.to_string(),
            unit: if m == Metric::Cost {
                currency.to_string()
            } else {
                d.unit.to_string()
            },
            data: Some(data),
            ..Default::default()
        });
    }
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource::default()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Some((req, points))
}
