//! OTLP metric points to Prometheus points (family name, type, sorted labels, value): the mapping both
//! exporters share, so a scrape and a remote write of the same data give the same series.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, metric::Data, number_data_point,
};

use crate::names::{Kind, label_name, metric_name};

/// Sorted by name, names unique. Names are shared: the same few occur in every point.
pub type Labels = Vec<(Arc<str>, String)>;

/// How names and labels are built (the options of the Go exporters, same defaults).
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub namespace: String,
    /// Unit and type suffixes (`_milliseconds`, `_total`, `_ratio`); on by default.
    pub add_metric_suffixes: bool,
    /// Copy every resource attribute to a label (off by default; `job`/`instance` are always derived).
    pub resource_to_telemetry: bool,
    /// No `otel_scope_name` / `otel_scope_version` labels.
    pub without_scope_info: bool,
    /// Added to every series (`const_labels` / `external_labels`); a point's own labels win.
    pub const_labels: Labels,
}

/// One point's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Number(f64),
    /// Per-bucket (not cumulative) counts as in OTLP, `bounds.len() + 1` of them.
    Histogram {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum: f64,
        count: u64,
    },
}

/// One OTLP data point, translated.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub family: Arc<str>,
    pub help: Arc<str>,
    pub kind: Kind,
    pub labels: Labels,
    pub value: Value,
    pub time_ns: u64,
    /// Delta temporality: to be added to what is known, not to replace it.
    pub delta: bool,
    /// The point says "no recorded value" (a stale marker).
    pub stale: bool,
}

/// Points a translation could not map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Exponential histograms, non-monotonic delta sums, unusable names, malformed histograms.
    pub points: usize,
}

/// An attribute value as label text: strings as they are, other scalars as text, arrays and maps as JSON.
pub fn value_text(v: Option<&AnyValue>) -> String {
    use any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(s)) => s.clone(),
        Some(V::BoolValue(b)) => b.to_string(),
        Some(V::IntValue(i)) => i.to_string(),
        Some(V::DoubleValue(d)) => d.to_string(),
        Some(other) => json(other).to_string(),
        None => String::new(),
    }
}

fn json(v: &any_value::Value) -> serde_json::Value {
    use any_value::Value as V;
    let inner = |a: &AnyValue| a.value.as_ref().map_or(serde_json::Value::Null, json);
    match v {
        V::StringValue(s) => s.clone().into(),
        V::BoolValue(b) => (*b).into(),
        V::IntValue(i) => (*i).into(),
        V::DoubleValue(d) => (*d).into(),
        V::ArrayValue(a) => a.values.iter().map(inner).collect(),
        V::KvlistValue(kv) => kv
            .values
            .iter()
            .map(|e| {
                (
                    e.key.clone(),
                    e.value.as_ref().map_or(serde_json::Value::Null, inner),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        V::BytesValue(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
        _ => serde_json::Value::Null,
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| value_text(kv.value.as_ref()))
        .filter(|v| !v.is_empty())
}

/// Sanitized label names by attribute key (`None`: unusable), so each distinct key is converted once.
#[derive(Default)]
struct NameCache(HashMap<String, Option<Arc<str>>>);

impl NameCache {
    fn get(&mut self, key: &str) -> Option<Arc<str>> {
        if let Some(n) = self.0.get(key) {
            return n.clone();
        }
        let name = label_name(key)
            .filter(|n| !n.starts_with("__"))
            .map(Arc::from);
        self.0.insert(key.to_string(), name.clone());
        name
    }
}

/// Labels from attributes: names sanitized; values of keys that collide joined with `;` in key order; reserved
/// (`__*`) names dropped. Constant labels only where no attribute has the name; `fixed` (job, instance, scope)
/// always win. Empty values are no label at all, as in Prometheus.
fn build_labels(
    names: &mut NameCache,
    consts: &[(Arc<str>, String)],
    attrs: &[&KeyValue],
    fixed: &[(Arc<str>, String)],
) -> Labels {
    let mut raw: Vec<(Arc<str>, &str, String)> = attrs
        .iter()
        .filter_map(|kv| {
            Some((
                names.get(&kv.key)?,
                kv.key.as_str(),
                value_text(kv.value.as_ref()),
            ))
        })
        .collect();
    raw.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    let mut out: Labels = Vec::with_capacity(raw.len() + fixed.len() + consts.len());
    for (name, _, value) in raw {
        match out.last_mut() {
            Some((last, v)) if *last == name => {
                v.push(';');
                v.push_str(&value);
            }
            _ => out.push((name, value)),
        }
    }
    for (k, v) in fixed {
        out.retain(|(n, _)| n != k);
        out.push((k.clone(), v.clone()));
    }
    for (k, v) in consts {
        if !out.iter().any(|(n, _)| n == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out.retain(|(_, v)| !v.is_empty());
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Translates every point of `req`, handing each to `emit`.
pub fn translate(
    req: &ExportMetricsServiceRequest,
    o: &Options,
    mut emit: impl FnMut(Point),
) -> Dropped {
    let mut dropped = Dropped::default();
    let mut names = NameCache::default();
    for rm in &req.resource_metrics {
        let res_attrs: &[KeyValue] = rm.resource.as_ref().map_or(&[], |r| &r.attributes);
        let mut resource_fixed: Vec<(Arc<str>, String)> = Vec::new();
        if let Some(name) = attr(res_attrs, "service.name") {
            let job = match attr(res_attrs, "service.namespace") {
                Some(ns) => format!("{ns}/{name}"),
                None => name,
            };
            resource_fixed.push((Arc::from("job"), job));
        }
        if let Some(instance) = attr(res_attrs, "service.instance.id") {
            resource_fixed.push((Arc::from("instance"), instance));
        }
        for sm in &rm.scope_metrics {
            let mut fixed = resource_fixed.clone();
            if !o.without_scope_info
                && let Some(scope) = &sm.scope
            {
                for (k, v) in [
                    ("otel_scope_name", &scope.name),
                    ("otel_scope_version", &scope.version),
                ] {
                    if !v.is_empty() {
                        fixed.push((Arc::from(k), v.clone()));
                    }
                }
            }
            for m in &sm.metrics {
                dropped.points += translate_metric(m, res_attrs, &fixed, o, &mut names, &mut emit);
            }
        }
    }
    dropped
}

/// Translates one metric; returns how many of its points were dropped.
fn translate_metric(
    m: &Metric,
    res_attrs: &[KeyValue],
    fixed: &[(Arc<str>, String)],
    o: &Options,
    names: &mut NameCache,
    emit: &mut impl FnMut(Point),
) -> usize {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let (kind, delta) = match &m.data {
        Some(Data::Gauge(_)) => (Kind::Gauge, false),
        Some(Data::Sum(s)) if s.is_monotonic => {
            (Kind::Counter, s.aggregation_temporality != cumulative)
        }
        Some(Data::Sum(s)) if s.aggregation_temporality == cumulative => (Kind::Gauge, false),
        Some(Data::Histogram(h)) => (Kind::Histogram, h.aggregation_temporality != cumulative),
        Some(Data::Summary(_)) => (Kind::Summary, false),
        Some(Data::Sum(s)) => return s.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => return h.data_points.len(),
        None => return 0,
    };
    let Some(family) = metric_name(&m.name, &m.unit, kind, &o.namespace, o.add_metric_suffixes)
    else {
        return count_points(m);
    };
    let base = Point {
        family: Arc::from(family),
        help: Arc::from(m.description.as_str()),
        kind,
        labels: Labels::new(),
        value: Value::Number(0.0),
        time_ns: 0,
        delta,
        stale: false,
    };
    let mut labels = |point_attrs: &[KeyValue]| {
        let mut attrs: Vec<&KeyValue> = point_attrs.iter().collect();
        if o.resource_to_telemetry {
            attrs.extend(
                res_attrs
                    .iter()
                    .filter(|r| !point_attrs.iter().any(|p| p.key == r.key)),
            );
        }
        build_labels(names, &o.const_labels, &attrs, fixed)
    };
    let mut dropped = 0;
    match &m.data {
        Some(Data::Gauge(g)) => number_points(&g.data_points, &base, &mut labels, emit),
        Some(Data::Sum(s)) => number_points(&s.data_points, &base, &mut labels, emit),
        Some(Data::Histogram(h)) => {
            for p in &h.data_points {
                let mut counts = p.bucket_counts.clone();
                if counts.is_empty() {
                    counts.push(p.count);
                }
                if counts.len() != p.explicit_bounds.len() + 1 {
                    dropped += 1;
                    continue;
                }
                emit(Point {
                    labels: labels(&p.attributes),
                    value: Value::Histogram {
                        bounds: if p.bucket_counts.is_empty() {
                            vec![]
                        } else {
                            p.explicit_bounds.clone()
                        },
                        counts,
                        sum: p.sum.unwrap_or(0.0),
                        count: p.count,
                    },
                    time_ns: p.time_unix_nano,
                    stale: p.flags & 1 == 1,
                    ..base.clone()
                });
            }
        }
        Some(Data::Summary(s)) => {
            for p in &s.data_points {
                emit(Point {
                    labels: labels(&p.attributes),
                    value: Value::Summary {
                        quantiles: p
                            .quantile_values
                            .iter()
                            .map(|q| (q.quantile, q.value))
                            .collect(),
                        sum: p.sum,
                        count: p.count,
                    },
                    time_ns: p.time_unix_nano,
                    stale: p.flags & 1 == 1,
                    ..base.clone()
                });
            }
        }
        Some(Data::ExponentialHistogram(_)) | None => {}
    }
    dropped
}

fn number_points(
    points: &[opentelemetry_proto::tonic::metrics::v1::NumberDataPoint],
    base: &Point,
    labels: &mut impl FnMut(&[KeyValue]) -> Labels,
    emit: &mut impl FnMut(Point),
) {
    for p in points {
        let v = match p.value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => 0.0,
        };
        emit(Point {
            labels: labels(&p.attributes),
            value: Value::Number(v),
            time_ns: p.time_unix_nano,
            stale: p.flags & 1 == 1,
            ..base.clone()
        });
    }
}

fn count_points(m: &Metric) -> usize {
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        None => 0,
    }
}

#[cfg(test)]
mod tests;
