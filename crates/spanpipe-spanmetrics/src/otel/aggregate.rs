//! What the `spanmetrics` connector counts: per resource (its attributes, keyed by
//! `resource_metrics_key_attributes` when set) and per dimension set, a call count and a duration histogram
//! (the `mlflow_spanmetrics` [`Histogram`]); and the OTLP request it emits.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint,
    Histogram as OtlpHistogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::config::{Settings, Temporality, Unit};
use super::exponential::ExpHistogram;
use crate::series::Histogram;

/// A dimension value, hashable (doubles by their bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Val {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(u64),
}

impl Val {
    pub fn from_any(v: &AnyValue) -> Option<Val> {
        Some(match v.value.as_ref()? {
            any_value::Value::StringValue(s) => Val::Str(s.clone()),
            any_value::Value::IntValue(i) => Val::Int(*i),
            any_value::Value::BoolValue(b) => Val::Bool(*b),
            any_value::Value::DoubleValue(d) => Val::Double(d.to_bits()),
            _ => return None,
        })
    }

    fn to_any(&self) -> AnyValue {
        let v = match self {
            Val::Str(s) => any_value::Value::StringValue(s.clone()),
            Val::Int(i) => any_value::Value::IntValue(*i),
            Val::Bool(b) => any_value::Value::BoolValue(*b),
            Val::Double(d) => any_value::Value::DoubleValue(f64::from_bits(*d)),
        };
        AnyValue { value: Some(v) }
    }
}

/// Dimension names and values, in configured order.
pub type Dims = Vec<(String, Val)>;

/// One span, read: its resource (index into the batch's resources), dimensions and duration in ns.
pub struct SpanPoint {
    pub resource: usize,
    pub dims: Dims,
    pub duration_ns: u64,
}

struct Series {
    calls: u64,
    hist: Histogram,
    /// With `histogram.exponential`, instead of `hist`.
    exp: Option<ExpHistogram>,
    start_ns: u64,
    updated: Instant,
}

struct ResourceEntry {
    attrs: Vec<KeyValue>,
    series: HashMap<Dims, Series>,
}

/// Every series, by resource.
pub struct State {
    resources: HashMap<Dims, ResourceEntry>,
    series: usize,
    /// Start of the current delta interval.
    last_flush_ns: u64,
    /// Points recorded in the overflow series because `aggregation_cardinality_limit` was reached.
    pub overflowed: u64,
}

fn overflow_dims() -> Dims {
    vec![("otel.metric.overflow".to_string(), Val::Bool(true))]
}

impl State {
    pub fn new(now_ns: u64) -> Self {
        State {
            resources: HashMap::new(),
            series: 0,
            last_flush_ns: now_ns,
            overflowed: 0,
        }
    }

    /// The resource's key: its attributes, or only `key_attributes` when set.
    fn key(s: &Settings, attrs: &[KeyValue]) -> Dims {
        attrs
            .iter()
            .filter(|kv| s.key_attributes.is_empty() || s.key_attributes.contains(&kv.key))
            .filter_map(|kv| Some((kv.key.clone(), Val::from_any(kv.value.as_ref()?)?)))
            .collect()
    }

    /// Records a batch's points; `resources` are the batch's resource attributes.
    pub fn record(
        &mut self,
        s: &Settings,
        resources: &[Vec<KeyValue>],
        points: Vec<SpanPoint>,
        now: Instant,
        now_ns: u64,
    ) {
        let per_unit = match s.unit {
            Unit::Ms => 1e6,
            Unit::S => 1e9,
        };
        let start_ns = match s.temporality {
            Temporality::Cumulative => now_ns,
            Temporality::Delta => self.last_flush_ns,
        };
        for p in points {
            let Some(attrs) = resources.get(p.resource) else {
                continue;
            };
            let entry = self
                .resources
                .entry(Self::key(s, attrs))
                .or_insert_with(|| ResourceEntry {
                    attrs: attrs.clone(),
                    series: HashMap::new(),
                });
            let full = s.cardinality_limit > 0 && self.series >= s.cardinality_limit;
            let dims = if full && !entry.series.contains_key(&p.dims) {
                self.overflowed += 1;
                overflow_dims()
            } else {
                p.dims
            };
            let series = entry.series.entry(dims).or_insert_with(|| {
                self.series += 1;
                Series {
                    calls: 0,
                    hist: Histogram::new(if s.exponential.is_some() {
                        0
                    } else {
                        s.bounds.len()
                    }),
                    exp: s.exponential.map(ExpHistogram::new),
                    start_ns,
                    updated: now,
                }
            });
            series.calls += 1;
            let v = p.duration_ns as f64 / per_unit;
            match &mut series.exp {
                Some(e) => e.record(v),
                None => series.hist.record(&s.bounds, v),
            }
            series.updated = now;
        }
    }

    /// Series currently held.
    pub fn len(&self) -> usize {
        self.series
    }

    pub fn is_empty(&self) -> bool {
        self.series == 0
    }

    /// Forgets series idle longer than `metrics_expiration`, then returns the request to send (`None` when
    /// there is nothing); with delta temporality the counts start again.
    pub fn flush(
        &mut self,
        s: &Settings,
        now: Instant,
        now_ns: u64,
    ) -> Option<ExportMetricsServiceRequest> {
        if let Some(idle) = s.expiration {
            self.expire(now, idle);
        }
        let temporality = match s.temporality {
            Temporality::Cumulative => AggregationTemporality::Cumulative,
            Temporality::Delta => AggregationTemporality::Delta,
        } as i32;
        let mut out = Vec::new();
        for r in self.resources.values() {
            let mut calls = Vec::new();
            let mut durations = Vec::new();
            let mut exp_points = Vec::new();
            for (dims, series) in &r.series {
                let attributes: Vec<KeyValue> = dims
                    .iter()
                    .map(|(k, v)| KeyValue {
                        key: k.clone(),
                        value: Some(v.to_any()),
                        ..Default::default()
                    })
                    .collect();
                calls.push(NumberDataPoint {
                    attributes: attributes.clone(),
                    start_time_unix_nano: series.start_ns,
                    time_unix_nano: now_ns,
                    value: Some(number_data_point::Value::AsInt(
                        i64::try_from(series.calls).unwrap_or(i64::MAX),
                    )),
                    ..Default::default()
                });
                if let (true, Some(e)) = (s.histogram, &series.exp) {
                    exp_points.push(ExponentialHistogramDataPoint {
                        attributes: attributes.clone(),
                        start_time_unix_nano: series.start_ns,
                        time_unix_nano: now_ns,
                        count: e.count,
                        sum: Some(e.sum),
                        scale: e.scale,
                        zero_count: e.zero_count,
                        positive: Some(Buckets {
                            offset: i32::try_from(e.offset).unwrap_or(0),
                            bucket_counts: e.counts.clone(),
                        }),
                        min: (e.count > 0).then_some(e.min),
                        max: (e.count > 0).then_some(e.max),
                        ..Default::default()
                    });
                } else if s.histogram {
                    let h = &series.hist;
                    durations.push(HistogramDataPoint {
                        attributes,
                        start_time_unix_nano: series.start_ns,
                        time_unix_nano: now_ns,
                        count: h.count,
                        sum: Some(h.sum),
                        bucket_counts: h.counts.to_vec(),
                        explicit_bounds: s.bounds.clone(),
                        min: (h.count > 0).then_some(h.min),
                        max: (h.count > 0).then_some(h.max),
                        ..Default::default()
                    });
                }
            }
            if calls.is_empty() {
                continue;
            }
            let mut metrics = vec![Metric {
                name: format!("{}calls", s.prefix),
                data: Some(Data::Sum(Sum {
                    data_points: calls,
                    aggregation_temporality: temporality,
                    is_monotonic: true,
                })),
                ..Default::default()
            }];
            if s.histogram {
                let data = if s.exponential.is_some() {
                    Data::ExponentialHistogram(ExponentialHistogram {
                        data_points: exp_points,
                        aggregation_temporality: temporality,
                    })
                } else {
                    Data::Histogram(OtlpHistogram {
                        data_points: durations,
                        aggregation_temporality: temporality,
                    })
                };
                metrics.push(Metric {
                    name: format!("{}duration", s.prefix),
                    unit: match s.unit {
                        Unit::Ms => "ms",
                        Unit::S => "s",
                    }
                    .into(),
                    data: Some(data),
                    ..Default::default()
                });
            }
            out.push(ResourceMetrics {
                resource: Some(Resource {
                    attributes: r.attrs.clone(),
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "spanmetricsconnector".into(),
                        ..Default::default()
                    }),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        if s.temporality == Temporality::Delta {
            self.resources.clear();
            self.series = 0;
            self.last_flush_ns = now_ns;
        }
        (!out.is_empty()).then_some(ExportMetricsServiceRequest {
            resource_metrics: out,
        })
    }

    fn expire(&mut self, now: Instant, idle: Duration) {
        let mut removed = 0;
        for r in self.resources.values_mut() {
            let before = r.series.len();
            r.series
                .retain(|_, series| now.saturating_duration_since(series.updated) < idle);
            removed += before - r.series.len();
        }
        self.resources.retain(|_, r| !r.series.is_empty());
        self.series -= removed;
    }
}
