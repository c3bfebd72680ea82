//! Reading a request for the `spanmetrics` connector: per span only its name, kind, status, duration and the
//! configured dimension attributes, borrowed from the encoded request through the wire layer. Each resource is
//! decoded once (its attributes become the metrics' resource and dimension fallbacks).

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use spanpipe_core::WireParts;
use spanpipe_core::wire::{SpanView, WireError, walk_spans};

use super::config::Settings;
use super::key::ValRef;

/// One resource of the request.
pub struct ReadResource {
    pub attrs: Vec<KeyValue>,
    pub service: String,
}

/// One span, read.
pub struct SpanPoint<'a> {
    /// Index into [`ReadBatch::resources`].
    pub resource: usize,
    pub name: &'a str,
    /// `Span.kind`, 0 (unspecified) when out of range.
    pub kind: u8,
    /// `Status.code`, 0 (unset) when out of range.
    pub status: u8,
    pub duration_ns: u64,
}

/// A request, read: its resources, its spans, and per span the configured dimensions found on the span
/// (`extras[i * dimensions.len() + d]`; resource attributes and defaults fill the gaps when recording).
pub struct ReadBatch<'a> {
    pub resources: Vec<ReadResource>,
    pub points: Vec<SpanPoint<'a>>,
    pub extras: Vec<Option<ValRef<'a>>>,
}

fn service_name(attrs: &[KeyValue]) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// Every span of `payload` whose resource has a `service.name` (the Collector skips the others).
pub fn read<'a>(
    s: &Settings,
    payload: &'a (impl WireParts + ?Sized),
) -> Result<ReadBatch<'a>, WireError> {
    let dims = s.dimensions.len();
    let mut out = ReadBatch {
        resources: Vec::new(),
        points: Vec::new(),
        extras: Vec::new(),
    };
    // The resource being read (by position in the payload) and whether it has a service name.
    let mut last: Option<(usize, usize)> = None;
    let mut current: Option<usize> = None;
    walk_spans(payload, |ctx| {
        let key = (ctx.resource.as_ptr() as usize, ctx.resource.len());
        if last != Some(key) {
            last = Some(key);
            let attrs = Resource::decode(ctx.resource)
                .map(|r| r.attributes)
                .unwrap_or_default();
            current = service_name(&attrs).map(|service| {
                out.resources.push(ReadResource { attrs, service });
                out.resources.len() - 1
            });
        }
        let Some(resource) = current else {
            return Ok(());
        };
        let base = out.extras.len();
        out.extras.resize(base + dims, None);
        let extras = &mut out.extras[base..];
        let span = SpanView::read(ctx.raw, |k, v| {
            if let Some(i) = s.dimensions.iter().position(|d| d.name.as_bytes() == k)
                && extras[i].is_none()
            {
                extras[i] = v.parse().ok().and_then(ValRef::from_wire);
            }
        })?;
        out.points.push(SpanPoint {
            resource,
            name: std::str::from_utf8(span.name).unwrap_or("\u{fffd}"),
            kind: if span.kind < 6 { span.kind as u8 } else { 0 },
            status: if span.status_code < 3 {
                span.status_code as u8
            } else {
                0
            },
            duration_ns: span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano),
        });
        Ok(())
    })?;
    Ok(out)
}
