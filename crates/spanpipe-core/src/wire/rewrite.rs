//! The one copy-on-write rewriter of encoded messages.
//!
//! [`rewrite_fields`] edits one message field by field: unchanged fields are copied as bytes and nothing is
//! copied at all until the first change, so a message nobody touches costs one scan and no allocation.
//! [`rewrite_spans`] applies it down resource → scope → span for editors that keep, replace or drop spans and
//! resources: only messages on the path to a change are re-framed.

use super::fields::{request as rq, resource_spans as rsf, scope_spans as ssf};
use super::traces::first_bytes;
use super::{Field, Reader, SpanCtx, WireError, bytes_field, put_bytes_field};
use crate::Payload;

/// What to do with one field.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    Keep,
    Drop,
    /// The complete replacement field (tag, length, payload).
    Replace(Vec<u8>),
}

impl Edit {
    /// A replacement length-delimited field `number` holding `payload`.
    pub fn field(number: u32, payload: &[u8]) -> Edit {
        Edit::Replace(bytes_field(number, payload))
    }

    /// `Keep` when `changed` is `None`, else the new payload as field `number`.
    pub fn keep_or(changed: Option<Vec<u8>>, number: u32) -> Edit {
        changed.map_or(Edit::Keep, |b| Edit::field(number, &b))
    }
}

/// Applies `edit` to every field of `buf`; `None` when every field was kept.
pub fn rewrite_fields<'a>(
    buf: &'a [u8],
    mut edit: impl FnMut(u32, Field<'a>) -> Result<Edit, WireError>,
) -> Result<Option<Vec<u8>>, WireError> {
    let mut r = Reader::new(buf);
    let mut out: Option<Vec<u8>> = None;
    loop {
        let start = r.position();
        let Some((number, f)) = r.next_field()? else {
            return Ok(out);
        };
        let end = r.position();
        match edit(number, f)? {
            Edit::Keep => {
                if let Some(o) = out.as_mut() {
                    o.extend_from_slice(&buf[start..end]);
                }
            }
            Edit::Drop => {
                out.get_or_insert_with(|| prefix(buf, start));
            }
            Edit::Replace(bytes) => {
                out.get_or_insert_with(|| prefix(buf, start))
                    .extend_from_slice(&bytes);
            }
        }
    }
}

fn prefix(buf: &[u8], upto: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(buf.len() + 64);
    v.extend_from_slice(&buf[..upto]);
    v
}

/// What becomes of one span.
#[derive(Debug, PartialEq, Eq)]
pub enum SpanEdit {
    Keep,
    Drop,
    /// The new encoded span.
    Replace(Vec<u8>),
}

/// A component's view of [`rewrite_spans`].
pub trait SpanEditor {
    /// The new encoded `Resource`, or `None` to keep it. Called with `&[]` for a `ResourceSpans` without one.
    fn resource(&mut self, _resource: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
        Ok(None)
    }

    /// False for editors that only touch resources: spans are then copied without being read.
    fn visits_spans(&self) -> bool {
        true
    }

    fn span(&mut self, _span: &SpanCtx<'_>) -> Result<SpanEdit, WireError> {
        Ok(SpanEdit::Keep)
    }
}

/// The result of [`rewrite_spans`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The new request; `None` when nothing changed (the original bytes stand).
    pub payload: Option<Vec<u8>>,
    /// Spans dropped.
    pub dropped: usize,
}

/// Walks an `ExportTraceServiceRequest`, applying `editor` to every resource and span. Scopes and resources left
/// without spans are removed, as the OTel Collector's filter processor does.
pub fn rewrite_spans(buf: &[u8], editor: &mut impl SpanEditor) -> Result<Outcome, WireError> {
    let mut dropped = 0;
    let payload = rewrite_fields(buf, |n, f| match (n, f) {
        (rq::RESOURCE_SPANS, Field::Bytes(rs)) => resource_spans(rs, editor, &mut dropped),
        (rq::RESOURCE_SPANS, _) => Err(WireError::new("resource_spans: wrong wire type")),
        _ => Ok(Edit::Keep),
    })?;
    Ok(Outcome { payload, dropped })
}

/// The result of [`rewrite_payload`].
#[derive(Debug, Default)]
pub struct PayloadOutcome {
    /// The new payload; `None` when nothing changed (the original parts stand).
    pub payload: Option<Payload>,
    /// Spans dropped.
    pub dropped: usize,
}

/// [`rewrite_spans`] over every part of a batch: the parts an edit left alone are kept as they are (shared, not
/// copied), so a batch of many requests costs a copy only of what changed.
pub fn rewrite_payload(
    payload: &Payload,
    editor: &mut impl SpanEditor,
) -> Result<PayloadOutcome, WireError> {
    let mut dropped = 0;
    let payload = payload.try_map_parts(|part| {
        let out = rewrite_spans(part, editor)?;
        dropped += out.dropped;
        Ok(out.payload)
    })?;
    Ok(PayloadOutcome { payload, dropped })
}

fn resource_spans(
    rs: &[u8],
    editor: &mut impl SpanEditor,
    dropped: &mut usize,
) -> Result<Edit, WireError> {
    let resource = first_bytes(rs, rsf::RESOURCE, "resource")?;
    let mut has_resource = false;
    let (mut left, mut removed) = (0usize, 0usize);
    let body = rewrite_fields(rs, |n, f| match (n, f) {
        (rsf::RESOURCE, Field::Bytes(res)) => {
            has_resource = true;
            Ok(editor
                .resource(res)?
                .map_or(Edit::Keep, |new| Edit::field(rsf::RESOURCE, &new)))
        }
        (rsf::SCOPE_SPANS, Field::Bytes(ss)) if editor.visits_spans() => {
            let e = scope_spans(ss, resource, editor, dropped)?;
            if e == Edit::Drop {
                removed += 1;
            } else {
                left += 1;
            }
            Ok(e)
        }
        _ => Ok(Edit::Keep),
    })?;
    if removed > 0 && left == 0 {
        return Ok(Edit::Drop);
    }
    let mut body = body;
    if !has_resource && let Some(new) = editor.resource(&[])? {
        // No resource on the wire is an empty one, which a resource editor may still fill.
        let rest = body.as_deref().unwrap_or(rs);
        let mut out = Vec::with_capacity(rest.len() + new.len() + 8);
        put_bytes_field(&mut out, rsf::RESOURCE, &new);
        out.extend_from_slice(rest);
        body = Some(out);
    }
    Ok(Edit::keep_or(body, rq::RESOURCE_SPANS))
}

fn scope_spans(
    ss: &[u8],
    resource: &[u8],
    editor: &mut impl SpanEditor,
    dropped: &mut usize,
) -> Result<Edit, WireError> {
    let scope = first_bytes(ss, ssf::SCOPE, "scope")?;
    let (mut left, mut removed) = (0usize, 0usize);
    let body = rewrite_fields(ss, |n, f| match (n, f) {
        (ssf::SPANS, Field::Bytes(raw)) => {
            let ctx = SpanCtx {
                resource,
                scope,
                raw,
            };
            Ok(match editor.span(&ctx)? {
                SpanEdit::Keep => {
                    left += 1;
                    Edit::Keep
                }
                SpanEdit::Drop => {
                    removed += 1;
                    Edit::Drop
                }
                SpanEdit::Replace(new) => {
                    left += 1;
                    Edit::field(ssf::SPANS, &new)
                }
            })
        }
        (ssf::SPANS, _) => Err(WireError::new("span: wrong wire type")),
        _ => Ok(Edit::Keep),
    })?;
    *dropped += removed;
    if removed > 0 && left == 0 {
        return Ok(Edit::Drop);
    }
    Ok(Edit::keep_or(body, rsf::SCOPE_SPANS))
}

#[cfg(test)]
mod tests;
