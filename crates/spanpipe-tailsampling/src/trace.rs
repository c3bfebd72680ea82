//! One buffered trace as the policies see it: the encoded pieces of it that arrived (each a request holding only
//! this trace's spans, cut by [`spanpipe_core::wire::split_by_trace`]) and walks over their spans.

use std::cell::OnceCell;

use crate::facts::Facts;
use spanpipe_core::budget::Held;
use spanpipe_core::wire::{
    Field, RawValue, Reader, SpanCtx, SpanView, WireError, fields, for_each_attr, walk_spans,
};
use spanpipe_core::{Metadata, Payload};

/// One request's worth of a trace's spans, with what travels with it downstream.
#[derive(Clone, Debug)]
pub struct Piece {
    /// An encoded `ExportTraceServiceRequest` of this trace's spans only.
    pub bytes: Payload,
    pub spans: usize,
    /// The request metadata the receiver kept (pieces with different metadata are never merged).
    pub metadata: Metadata,
    /// This piece's share of the process memory budget, released when the last copy is gone.
    pub held: Held,
}

/// What a policy evaluates: every piece of one trace received so far.
#[derive(Debug)]
pub struct TraceData<'a> {
    pub trace_id: &'a [u8],
    pub pieces: &'a [Piece],
    pub span_count: usize,
    /// Gathered by the first policy that asks, shared by the others of the same decision.
    facts: OnceCell<Result<Facts, WireError>>,
}

/// One span with its resource, for policies that look at both.
pub struct SpanRef<'a> {
    pub ctx: SpanCtx<'a>,
    pub view: SpanView<'a>,
}

impl<'a> TraceData<'a> {
    pub fn new(trace_id: &'a [u8], pieces: &'a [Piece], span_count: usize) -> Self {
        TraceData {
            trace_id,
            pieces,
            span_count,
            facts: OnceCell::new(),
        }
    }

    /// The trace's [`Facts`], from one walk over its spans on first use.
    pub fn facts(&self) -> Result<&Facts, WireError> {
        self.facts
            .get_or_init(|| Facts::gather(self))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Calls `visit(state, span)` for every span, after `attr(&mut state, key, value)` saw each of its attributes
    /// during the one pass that reads the span's fields (`SpanView::read`); `state` starts as `S::default()` for
    /// every span.
    pub fn for_each_span_with<S: Default>(
        &self,
        mut attr: impl FnMut(&mut S, &'a [u8], RawValue<'a>),
        mut visit: impl FnMut(S, &SpanRef<'a>),
    ) -> Result<(), WireError> {
        for piece in self.pieces {
            walk_spans(&piece.bytes, |ctx| {
                let mut state = S::default();
                let view = SpanView::read(ctx.raw, |k, v| attr(&mut state, k, v))?;
                visit(state, &SpanRef { ctx, view });
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Calls `visit(span)` for every span.
    pub fn for_each_span(&self, mut visit: impl FnMut(&SpanRef<'a>)) -> Result<(), WireError> {
        self.for_each_span_with::<()>(|_, _, _| {}, |_, s| visit(s))
    }

    /// Whether any resource or span attribute `key` satisfies `matches` (each resource is looked at once per
    /// piece). `Ok((found, matched))`: whether the key was present anywhere, and whether a value matched.
    pub fn any_attr(
        &self,
        key: &str,
        mut matches: impl FnMut(RawValue<'a>) -> bool,
    ) -> Result<(bool, bool), WireError> {
        let key = key.as_bytes();
        let (mut found, mut matched) = (false, false);
        for piece in self.pieces {
            let mut last_resource: Option<&[u8]> = None;
            walk_spans(&piece.bytes, |ctx| {
                if matched {
                    return Ok(());
                }
                if last_resource != Some(ctx.resource) {
                    last_resource = Some(ctx.resource);
                    for_each_attr(ctx.resource, fields::resource::ATTRIBUTES, |k, v| {
                        if k == key {
                            found = true;
                            matched |= matches(v);
                        }
                    })?;
                }
                for_each_attr(ctx.raw, fields::span::ATTRIBUTES, |k, v| {
                    if k == key && !matched {
                        found = true;
                        matched |= matches(v);
                    }
                })?;
                Ok(())
            })?;
            if matched {
                break;
            }
        }
        Ok((found, matched))
    }
}

/// A span's W3C `tracestate` (empty when absent), read with the wire layer's reader.
pub fn trace_state(raw_span: &[u8]) -> Result<&[u8], WireError> {
    let mut r = Reader::new(raw_span);
    while let Some((n, f)) = r.next_field()? {
        if n == fields::span::TRACE_STATE {
            return match f {
                Field::Bytes(b) => Ok(b),
                _ => Err(WireError::new("span.trace_state: wrong wire type")),
            };
        }
    }
    Ok(&[])
}
