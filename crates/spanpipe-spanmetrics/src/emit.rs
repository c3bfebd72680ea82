//! The cumulative state as one encoded OTLP `ExportMetricsServiceRequest`, shaped like the metric MLflow's SDK
//! exports: histogram `mlflow.trace.span.duration`, unit `ms`, scope `mlflow.tracing`, cumulative temporality,
//! attributes `root` (a boolean, as the SDK records it), `span_type`, `span_status`, `experiment_id`, `tags.*`,
//! `metadata.*`.
//!
//! Written straight to protobuf bytes rather than through prost's structs: with 10,000 series the structs
//! would be a second, larger copy of the state (every label a heap string) on every flush.

use bytes::Bytes;
use spanpipe_core::wire::{bytes_field_len, put_bytes_field, put_varint};

use crate::config::Settings;
use crate::series::{Histogram, SeriesTable};

pub const METRIC_NAME: &str = "mlflow.trace.span.duration";
pub const METRIC_UNIT: &str = "ms";
pub const METRIC_DESCRIPTION: &str = "Duration of spans in milliseconds";
pub const SCOPE_NAME: &str = "mlflow.tracing";
/// The OTel convention for the series that takes points past a cardinality limit.
pub const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

/// `AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE`.
const CUMULATIVE: u64 = 2;

/// An encoded request and the number of data points in it.
pub struct Encoded {
    pub bytes: Bytes,
    pub points: usize,
}

/// Room left in front of the points for the enclosing messages' headers (about 120 bytes), so the points are
/// written once, in place, and never copied into a second buffer.
const HEADROOM: usize = 256;

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

/// `KeyValue { key, value: AnyValue { string_value | bool_value } }`.
fn attribute(out: &mut Vec<u8>, scratch: &mut Vec<u8>, k: &str, v: AttrValue<'_>) {
    let mut any = [0u8; 16];
    let any_value: &[u8] = match v {
        AttrValue::Bool(b) => {
            any[0] = 2 << 3;
            any[1] = u8::from(b);
            &any[..2]
        }
        AttrValue::Str(s) => {
            scratch.clear();
            put_bytes_field(scratch, 1, s.as_bytes());
            scratch
        }
    };
    let len = bytes_field_len(1, k.len()) + bytes_field_len(2, any_value.len());
    key(out, 9, 2);
    put_varint(out, len as u64);
    put_bytes_field(out, 1, k.as_bytes());
    put_bytes_field(out, 2, any_value);
}

#[derive(Clone, Copy)]
enum AttrValue<'a> {
    Str(&'a str),
    Bool(bool),
}

/// Appends `HistogramDataPoint`s (field 1 of `Histogram`) to `out`, reusing its buffers.
struct Points<'a> {
    out: Vec<u8>,
    body: Vec<u8>,
    scratch: Vec<u8>,
    bounds: &'a [f64],
    now: u64,
    count: usize,
}

impl Points<'_> {
    fn push(&mut self, attrs: &[(&str, AttrValue<'_>)], h: &Histogram, start: u64) {
        let body = &mut self.body;
        body.clear();
        for (k, v) in attrs {
            attribute(body, &mut self.scratch, k, *v);
        }
        fixed64(body, 2, start);
        fixed64(body, 3, self.now.max(start));
        fixed64(body, 4, h.count);
        fixed64(body, 5, h.sum.to_bits());
        key(body, 6, 2);
        put_varint(body, (h.counts.len() * 8) as u64);
        for c in h.counts.iter() {
            body.extend_from_slice(&c.to_le_bytes());
        }
        if !self.bounds.is_empty() {
            key(body, 7, 2);
            put_varint(body, (self.bounds.len() * 8) as u64);
            for b in self.bounds {
                body.extend_from_slice(&b.to_le_bytes());
            }
        }
        if h.count > 0 {
            fixed64(body, 11, h.min.to_bits());
            fixed64(body, 12, h.max.to_bits());
        }
        put_bytes_field(&mut self.out, 1, body);
        self.count += 1;
    }
}

/// Every series (and the overflow series) as of `now_ns`; `None` when there is nothing to send.
pub fn export_request(s: &Settings, table: &SeriesTable, now_ns: u64) -> Option<Encoded> {
    if table.is_empty() {
        return None;
    }
    let bounds = table.bounds();
    // The histogram's fields: temporality first (field order is free in protobuf), then the points.
    let mut out = Vec::with_capacity(HEADROOM + (table.len() + 1) * (200 + 16 * bounds.len()));
    out.resize(HEADROOM, 0);
    let mut p = Points {
        out,
        body: Vec::with_capacity(512),
        scratch: Vec::with_capacity(64),
        bounds,
        now: now_ns,
        count: 0,
    };
    key(&mut p.out, 2, 0);
    put_varint(&mut p.out, CUMULATIVE);
    let mut attrs: Vec<(&str, AttrValue<'_>)> = Vec::with_capacity(4 + s.label_names.len());
    for series in table.series() {
        attrs.clear();
        attrs.push(("root", AttrValue::Bool(series.root)));
        attrs.push(("span_type", AttrValue::Str(&series.span_type)));
        attrs.push(("span_status", AttrValue::Str(series.status.as_str())));
        attrs.push(("experiment_id", AttrValue::Str(&series.experiment)));
        for (name, value) in s.label_names.iter().zip(series.trace.iter()) {
            if let Some(v) = value {
                attrs.push((name, AttrValue::Str(v)));
            }
        }
        p.push(&attrs, &series.hist, series.start_unix_nano);
    }
    if let Some(o) = table.overflow() {
        p.push(
            &[(OVERFLOW_ATTRIBUTE, AttrValue::Bool(true))],
            &o.hist,
            o.start_unix_nano,
        );
    }
    let (hist, points) = (p.out, p.count);
    // Metric { name 1, description 2, unit 3, histogram 9 }.
    let mut metric_head = Vec::with_capacity(128);
    put_bytes_field(&mut metric_head, 1, METRIC_NAME.as_bytes());
    put_bytes_field(&mut metric_head, 2, METRIC_DESCRIPTION.as_bytes());
    put_bytes_field(&mut metric_head, 3, METRIC_UNIT.as_bytes());
    key(&mut metric_head, 9, 2);
    let hist_len = hist.len() - HEADROOM;
    put_varint(&mut metric_head, hist_len as u64);
    let metric_len = metric_head.len() + hist_len;
    // ScopeMetrics { scope 1: InstrumentationScope { name 1 }, metrics 2 }.
    let mut scope = Vec::new();
    put_bytes_field(&mut scope, 1, SCOPE_NAME.as_bytes());
    let mut scope_head = Vec::with_capacity(64);
    put_bytes_field(&mut scope_head, 1, &scope);
    key(&mut scope_head, 2, 2);
    put_varint(&mut scope_head, metric_len as u64);
    let scope_len = scope_head.len() + metric_len;
    // ResourceMetrics { resource 1 (empty), scope_metrics 2 }, inside the request's field 1.
    let mut rm_head = Vec::with_capacity(16);
    put_bytes_field(&mut rm_head, 1, &[]);
    key(&mut rm_head, 2, 2);
    put_varint(&mut rm_head, scope_len as u64);
    let rm_len = rm_head.len() + scope_len;
    let mut head = Vec::with_capacity(HEADROOM);
    key(&mut head, 1, 2);
    put_varint(&mut head, rm_len as u64);
    for part in [&rm_head, &scope_head, &metric_head] {
        head.extend_from_slice(part);
    }
    let bytes = if head.len() <= HEADROOM {
        let mut hist = hist;
        let start = HEADROOM - head.len();
        hist[start..HEADROOM].copy_from_slice(&head);
        Bytes::from(hist).slice(start..)
    } else {
        head.extend_from_slice(&hist[HEADROOM..]);
        Bytes::from(head)
    };
    Some(Encoded { bytes, points })
}
