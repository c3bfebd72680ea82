//! What the `spanmetrics` connector counts: per resource (its attributes, keyed by
//! `resource_metrics_key_attributes` when set) and per dimension set, a call count and a duration histogram
//! (the `mlflow_spanmetrics` [`Histogram`]); and the OTLP request it emits.

use hashbrown::HashMap;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint,
    Histogram as OtlpHistogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::config::{Settings, Temporality, Unit};
use super::exponential::ExpHistogram;
use super::key::{KeyRef, SeriesKey, Val, ValRef};
use super::read::ReadBatch;
use crate::series::Histogram;

/// Resource attributes (the key of a resource's series), in their order.
pub type Dims = Vec<(String, Val)>;

/// Names of `span.kind` values, by number.
pub const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
/// Names of `status.code` values, by number.
pub const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

struct Series {
    calls: u64,
    hist: Histogram,
    /// With `histogram.exponential`, instead of `hist`.
    exp: Option<ExpHistogram>,
    start_ns: u64,
    updated: Instant,
}

impl Series {
    fn new(s: &Settings, start_ns: u64, now: Instant) -> Self {
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
    }

    fn record(&mut self, s: &Settings, v: f64, now: Instant) {
        self.calls += 1;
        match &mut self.exp {
            Some(e) => e.record(v),
            None => self.hist.record(&s.bounds, v),
        }
        self.updated = now;
    }
}

struct ResourceEntry {
    attrs: Vec<KeyValue>,
    series: HashMap<SeriesKey, Series, foldhash::fast::RandomState>,
    /// The series labelled `otel.metric.overflow=true` that points go to once `aggregation_cardinality_limit`
    /// is reached.
    overflow: Option<Series>,
}

/// Every series, by resource.
pub struct State {
    resources: std::collections::HashMap<Dims, ResourceEntry>,
    series: usize,
    /// Start of the current delta interval.
    last_flush_ns: u64,
    /// Points recorded in the overflow series because `aggregation_cardinality_limit` was reached.
    pub overflowed: u64,
}

/// Which default dimension a key position holds.
#[derive(Clone, Copy)]
enum DefaultDim {
    Service,
    Name,
    Kind,
    Status,
}

fn default_of(name: &str) -> DefaultDim {
    match name {
        "service.name" => DefaultDim::Service,
        "span.name" => DefaultDim::Name,
        "span.kind" => DefaultDim::Kind,
        _ => DefaultDim::Status,
    }
}

fn overflow_attributes() -> Vec<KeyValue> {
    vec![KeyValue {
        key: "otel.metric.overflow".into(),
        value: Some(Val::Bool(true).to_any()),
        ..Default::default()
    }]
}

/// A series' attributes: its key's values under their dimension names; kind and status by name.
fn attributes(s: &Settings, key: &SeriesKey) -> Vec<KeyValue> {
    let names = s
        .defaults
        .iter()
        .copied()
        .chain(s.dimensions.iter().map(|d| d.name.as_str()));
    names
        .zip(key.0.iter())
        .enumerate()
        .filter_map(|(i, (name, v))| {
            let v = v.as_ref()?;
            let value = match (i < s.defaults.len(), default_of(name), v) {
                (true, DefaultDim::Kind, Val::Int(k)) => {
                    Val::Str((*SPAN_KINDS.get(*k as usize).unwrap_or(&SPAN_KINDS[0])).into())
                }
                (true, DefaultDim::Status, Val::Int(c)) => {
                    Val::Str((*STATUS_CODES.get(*c as usize).unwrap_or(&STATUS_CODES[0])).into())
                }
                _ => v.clone(),
            };
            Some(KeyValue {
                key: name.to_string(),
                value: Some(value.to_any()),
                ..Default::default()
            })
        })
        .collect()
}

impl State {
    pub fn new(now_ns: u64) -> Self {
        State {
            resources: std::collections::HashMap::new(),
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

    /// Records a request's points: one hash of each span's borrowed key, no allocation for a series seen before.
    pub fn record(&mut self, s: &Settings, batch: &ReadBatch<'_>, now: Instant, now_ns: u64) {
        let per_unit = match s.unit {
            Unit::Ms => 1e6,
            Unit::S => 1e9,
        };
        let start_ns = match s.temporality {
            Temporality::Cumulative => now_ns,
            Temporality::Delta => self.last_flush_ns,
        };
        let defaults: Vec<DefaultDim> = s.defaults.iter().map(|d| default_of(d)).collect();
        let dims = s.dimensions.len();
        let mut key: Vec<Option<ValRef<'_>>> = Vec::with_capacity(defaults.len() + dims);
        let mut fallback: Vec<Option<ValRef<'_>>> = Vec::with_capacity(dims);
        let points = &batch.points;
        let mut i = 0;
        while i < points.len() {
            let r = points[i].resource;
            let run = points[i..].iter().take_while(|p| p.resource == r).count();
            let Some(res) = batch.resources.get(r) else {
                i += run;
                continue;
            };
            // Per resource, once: its entry and the dimension values its attributes or defaults give.
            fallback.clear();
            fallback.extend(s.dimensions.iter().map(|d| {
                res.attrs
                    .iter()
                    .find(|kv| kv.key == d.name)
                    .and_then(|kv| ValRef::from_any(kv.value.as_ref()?))
                    .or_else(|| d.default.as_deref().map(ValRef::Str))
            }));
            let entry = self
                .resources
                .entry(Self::key(s, &res.attrs))
                .or_insert_with(|| ResourceEntry {
                    attrs: res.attrs.clone(),
                    series: HashMap::default(),
                    overflow: None,
                });
            for (n, p) in points[i..i + run].iter().enumerate() {
                key.clear();
                key.extend(defaults.iter().map(|d| {
                    Some(match d {
                        DefaultDim::Service => ValRef::Str(&res.service),
                        DefaultDim::Name => ValRef::Str(p.name),
                        DefaultDim::Kind => ValRef::Int(i64::from(p.kind)),
                        DefaultDim::Status => ValRef::Int(i64::from(p.status)),
                    })
                }));
                let at = (i + n) * dims;
                let extras = batch.extras.get(at..at + dims).unwrap_or(&[]);
                key.extend(
                    fallback
                        .iter()
                        .enumerate()
                        .map(|(d, f)| extras.get(d).copied().flatten().or(*f)),
                );
                let v = p.duration_ns as f64 / per_unit;
                let k = KeyRef(&key);
                if let Some(series) = entry.series.get_mut(&k) {
                    series.record(s, v, now);
                    continue;
                }
                if s.cardinality_limit > 0 && self.series >= s.cardinality_limit {
                    self.overflowed += 1;
                    let series = entry.overflow.get_or_insert_with(|| {
                        self.series += 1;
                        Series::new(s, start_ns, now)
                    });
                    series.record(s, v, now);
                    continue;
                }
                let mut series = Series::new(s, start_ns, now);
                series.record(s, v, now);
                entry.series.insert(k.to_owned(), series);
                self.series += 1;
            }
            i += run;
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
            let overflow = r.overflow.as_ref().map(|o| (overflow_attributes(), o));
            let keyed = r
                .series
                .iter()
                .map(|(k, series)| (attributes(s, k), series));
            for (attributes, series) in keyed.chain(overflow) {
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
            if r.overflow
                .as_ref()
                .is_some_and(|o| now.saturating_duration_since(o.updated) >= idle)
            {
                r.overflow = None;
                removed += 1;
            }
        }
        self.resources
            .retain(|_, r| !r.series.is_empty() || r.overflow.is_some());
        self.series -= removed;
    }
}
