//! Cutting an encoded `ExportTraceServiceRequest` into one request per group, where a caller's classifier names
//! each span's group (the `loadbalancing` exporter: one group per backend, by routing key). Span, scope and
//! resource bytes are copied verbatim under their resource and scope headers; nothing is decoded or re-encoded.

use std::borrow::Cow;

use super::fields::{request as rq, resource_spans as rsf, scope_spans as ssf};
use super::{Reader, SpanCtx, WireError, each_raw_field, put_bytes_field, walk_spans};

/// One group's spans as a request of their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPiece<'a> {
    /// What the classifier returned for these spans.
    pub group: u64,
    /// An encoded `ExportTraceServiceRequest`: the input itself when every span is in this group, else a copy of
    /// this group's spans under their resource and scope headers.
    pub request: Cow<'a, [u8]>,
    pub spans: usize,
}

/// The pieces of one group while a resource and a scope are open.
struct Open {
    group: u64,
    request: Vec<u8>,
    /// Spans of the open scope (raw fields, tags included).
    ss: Vec<u8>,
    /// Scopes of the open resource (framed).
    rs: Vec<u8>,
    spans: usize,
}

/// Cuts `buf` into one request per group, groups in order of first appearance; `classify` is called once per
/// span, in wire order, with the span in its resource and scope. Spans keep their order within a group;
/// resources and scopes left without spans are dropped. When every span falls in one group the input comes back
/// unchanged (borrowed, no copy); a request without spans gives no piece. Errors on broken framing (never a
/// panic); a classifier error stops the cut.
pub fn split_traces_by<'a>(
    buf: &'a [u8],
    mut classify: impl FnMut(SpanCtx<'a>) -> Result<u64, WireError>,
) -> Result<Vec<GroupPiece<'a>>, WireError> {
    let mut keys = Vec::new();
    let summary = walk_spans(buf, |ctx| {
        keys.push(classify(ctx)?);
        Ok(())
    })?;
    let Some(&first) = keys.first() else {
        return Ok(Vec::new());
    };
    if keys.iter().all(|k| *k == first) {
        return Ok(vec![GroupPiece {
            group: first,
            request: Cow::Borrowed(buf),
            spans: summary.spans,
        }]);
    }
    let mut open: Vec<Open> = Vec::new();
    let mut next_key = keys.into_iter();
    let mut r = Reader::new(buf);
    while let Some((n, f)) = r.next_field()? {
        if n != rq::RESOURCE_SPANS {
            continue;
        }
        let rs = f.bytes("resource_spans")?;
        let mut rs_header: Vec<u8> = Vec::new();
        each_raw_field(rs, |n, raw, payload| {
            if n != rsf::SCOPE_SPANS {
                rs_header.extend_from_slice(raw);
                return Ok(());
            }
            let mut ss_header: Vec<u8> = Vec::new();
            each_raw_field(payload, |n, raw, _| {
                if n != ssf::SPANS {
                    ss_header.extend_from_slice(raw);
                    return Ok(());
                }
                let group = next_key
                    .next()
                    .ok_or_else(|| WireError::new("span count changed between passes"))?;
                let at = match open.iter().position(|o| o.group == group) {
                    Some(i) => i,
                    None => {
                        open.push(Open {
                            group,
                            request: Vec::new(),
                            ss: Vec::new(),
                            rs: Vec::new(),
                            spans: 0,
                        });
                        open.len() - 1
                    }
                };
                open[at].ss.extend_from_slice(raw);
                open[at].spans += 1;
                Ok(())
            })?;
            for o in open.iter_mut().filter(|o| !o.ss.is_empty()) {
                let mut body = Vec::with_capacity(ss_header.len() + o.ss.len());
                body.extend_from_slice(&ss_header);
                body.append(&mut o.ss);
                put_bytes_field(&mut o.rs, rsf::SCOPE_SPANS, &body);
            }
            Ok(())
        })?;
        for o in open.iter_mut().filter(|o| !o.rs.is_empty()) {
            let mut body = Vec::with_capacity(rs_header.len() + o.rs.len());
            body.extend_from_slice(&rs_header);
            body.append(&mut o.rs);
            put_bytes_field(&mut o.request, rq::RESOURCE_SPANS, &body);
        }
    }
    Ok(open
        .into_iter()
        .map(|o| GroupPiece {
            group: o.group,
            request: Cow::Owned(o.request),
            spans: o.spans,
        })
        .collect())
}

/// One group's spans out of a payload of several parts: its pieces of each part, in order.
#[derive(Clone, Debug)]
pub struct GroupPayload {
    pub group: u64,
    pub payload: crate::Payload,
    pub spans: usize,
}

/// [`split_traces_by`] over every part of `payload`, without joining the parts first: a part whose spans all fall
/// in one group is shared, not copied, and only the parts that mix groups are cut. Groups come in order of first
/// appearance; `classify` is called once per span in wire order, as there.
pub fn split_payload_by(
    payload: &crate::Payload,
    mut classify: impl for<'b> FnMut(SpanCtx<'b>) -> Result<u64, WireError>,
) -> Result<Vec<GroupPayload>, WireError> {
    let mut groups: Vec<(u64, Vec<bytes::Bytes>, usize)> = Vec::new();
    for part in payload.parts() {
        for piece in split_traces_by(part, &mut classify)? {
            let bytes = match piece.request {
                Cow::Borrowed(_) => part.clone(),
                Cow::Owned(v) => bytes::Bytes::from(v),
            };
            match groups.iter_mut().find(|(g, _, _)| *g == piece.group) {
                Some((_, parts, spans)) => {
                    parts.push(bytes);
                    *spans += piece.spans;
                }
                None => groups.push((piece.group, vec![bytes], piece.spans)),
            }
        }
    }
    Ok(groups
        .into_iter()
        .map(|(group, parts, spans)| GroupPayload {
            group,
            payload: crate::Payload::from_parts(parts),
            spans,
        })
        .collect())
}

#[cfg(test)]
mod tests;
