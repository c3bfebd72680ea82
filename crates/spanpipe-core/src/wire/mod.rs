//! spanpipe's one wire layer: views over encoded OTLP to scan, validate, count, read, rewrite and cut requests
//! without decoding them.
//!
//! An OTLP `Export*ServiceRequest` is a sequence of `resource_*` fields, so two encoded requests concatenated are one
//! valid request. Everything here works on those bytes directly: the receiver validates and counts with a scan
//! (~4x faster than a prost decode), batching appends, and splitting cuts at resource, scope or span boundaries.
//!
//! - [`fields`]: field numbers; [`Reader`]: the bounds-checked field reader everything is built on.
//! - [`AnyValueRef`], [`RawValue`], [`for_each_attr`], [`find_attr`]: the one attribute decoder (borrowed).
//! - [`walk_spans`] / [`SpanView::read`]: resource → scope → span with borrowed views, attributes in one pass.
//! - [`rewrite_fields`] / [`rewrite_spans`]: the one copy-on-write rewriter.
//! - [`resource_parts`] / [`full_decode`]: a batch cut back into its requests' resources, for the delivery layer's
//!   salvage of a batch an exporter cannot decode.
//! - [`split_by_trace`]: a request cut into one request per trace (the `tail_sampling` buffer).
//! - [`split_traces_by`]: a request cut into one request per group a classifier names; [`split_payload_by`]
//!   does it part by part for a batch (the `loadbalancing` exporter: one per backend).
//! - [`check_traces`]: the receiver's door. After it every string is UTF-8, every value at most
//!   `max_attribute_depth` (≤ [`MAX_DEPTH`]) deep and every id the right length, so a full prost decode of a
//!   request that passed it cannot fail. Nothing in this module recurses on input.

mod door;
pub mod fields;
mod group;
mod logs;
mod metrics;
mod parts;
mod reader;
mod rewrite;
mod split;
#[cfg(test)]
pub(crate) mod test_data;
mod traces;
mod value;

pub use door::{DoorReport, check_traces, drop_invalid_spans};
pub use group::{GroupPayload, GroupPiece, split_payload_by, split_traces_by};
pub use logs::count_log_records;
pub use metrics::count_metric_points;
pub use parts::{full_decode, resource_parts};
pub use reader::{
    Field, Reader, bytes_field, bytes_field_len, each_raw_field, put_bytes_field, put_varint,
};
pub use rewrite::{
    Edit, Outcome, PayloadOutcome, SpanEdit, SpanEditor, rewrite_fields, rewrite_payload,
    rewrite_spans,
};
pub use split::{TracePiece, split_by_trace, split_traces, split_traces_after};
pub use traces::{SpanCtx, SpanView, TracesSummary, scan_traces, walk_spans};
pub use value::{
    AnyValueRef, MAX_DEPTH, RawValue, check_value, find_attr, for_each_attr, for_each_entry,
    for_each_item, key_value, utf8,
};

use crate::Signal;

/// Why bytes are not a valid OTLP request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

impl WireError {
    pub fn new(msg: impl Into<String>) -> Self {
        WireError(msg.into())
    }
}

/// Validates an encoded request of `signal` and returns its item count (spans, metric data points, log records).
pub fn count_items(signal: Signal, buf: &[u8]) -> Result<usize, WireError> {
    match signal {
        Signal::Traces => scan_traces(buf, |_, _| {}).map(|s| s.spans),
        Signal::Metrics => count_metric_points(buf),
        Signal::Logs => count_log_records(buf),
    }
}

/// Iterates the payloads of every occurrence of `number` in a message, checking wire types.
pub(crate) fn for_each_message<'a>(
    buf: &'a [u8],
    number: u32,
    what: &'static str,
    mut f: impl FnMut(&'a [u8]) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while let Some((n, field)) = r.next_field()? {
        if n == number {
            f(field.bytes(what)?)?;
        }
    }
    Ok(())
}
