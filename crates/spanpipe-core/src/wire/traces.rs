//! Walking `ExportTraceServiceRequest` bytes: resource → scope → span with borrowed views, and the receiver-side
//! scan that validates the structure and counts spans.

use super::fields::{
    request as rq, resource_spans as rsf, scope_spans as ssf, span as sf, status as stf,
};
use super::{Field, RawValue, Reader, WireError, key_value};
use crate::payload::WireParts;

/// The fields of one span a component may need, borrowed from the encoded request.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanView<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    /// Empty for a root span.
    pub parent_span_id: &'a [u8],
    /// Raw bytes: UTF-8 once the receiver checked the request ([`super::utf8`] to view it as text).
    pub name: &'a [u8],
    pub kind: u64,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: u64,
    pub status_message: &'a [u8],
    /// The whole encoded span, for lazy attribute lookups.
    pub raw: &'a [u8],
}

/// One span in its context, as [`walk_spans`] hands it over.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanCtx<'a> {
    /// The encoded `Resource` of its `ResourceSpans` (empty if absent).
    pub resource: &'a [u8],
    /// The encoded `InstrumentationScope` of its `ScopeSpans` (empty if absent).
    pub scope: &'a [u8],
    /// The encoded `Span`.
    pub raw: &'a [u8],
}

/// What a scan learnt about a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracesSummary {
    pub resources: usize,
    pub spans: usize,
}

/// The first length-delimited field `number` of `msg` (empty if absent).
#[inline]
pub(crate) fn first_bytes<'a>(
    msg: &'a [u8],
    number: u32,
    what: &'static str,
) -> Result<&'a [u8], WireError> {
    let mut r = Reader::new(msg);
    while let Some((n, f)) = r.next_field()? {
        if n == number {
            return f.bytes(what);
        }
    }
    Ok(&[])
}

/// Calls `visit` for every span, resource → scope → span in wire order, with the encoded resource and scope of
/// its parents (each may come after the spans on the wire; they are found first). Iterative: the request's
/// nesting is fixed, nothing here recurses. A [`Payload`](crate::Payload) of several parts is walked part by part,
/// in place.
pub fn walk_spans<'a>(
    request: &'a (impl WireParts + ?Sized),
    mut visit: impl FnMut(SpanCtx<'a>) -> Result<(), WireError>,
) -> Result<TracesSummary, WireError> {
    let mut summary = TracesSummary::default();
    for part in request.wire_parts() {
        walk_request(part, &mut visit, &mut summary)?;
    }
    Ok(summary)
}

/// [`walk_spans`] over one encoded request.
#[inline]
fn walk_request<'a>(
    request: &'a [u8],
    visit: &mut impl FnMut(SpanCtx<'a>) -> Result<(), WireError>,
    summary: &mut TracesSummary,
) -> Result<(), WireError> {
    let mut r = Reader::new(request);
    while let Some((n, f)) = r.next_field()? {
        if n != rq::RESOURCE_SPANS {
            continue;
        }
        let rs = f.bytes("resource_spans")?;
        summary.resources += 1;
        let resource = first_bytes(rs, rsf::RESOURCE, "resource")?;
        let mut r = Reader::new(rs);
        while let Some((n, f)) = r.next_field()? {
            if n != rsf::SCOPE_SPANS {
                continue;
            }
            let ss = f.bytes("scope_spans")?;
            let scope = first_bytes(ss, ssf::SCOPE, "scope")?;
            let mut r = Reader::new(ss);
            while let Some((n, f)) = r.next_field()? {
                if n == ssf::SPANS {
                    let raw = f.bytes("span")?;
                    summary.spans += 1;
                    visit(SpanCtx {
                        resource,
                        scope,
                        raw,
                    })?;
                }
            }
        }
    }
    Ok(())
}

impl<'a> SpanView<'a> {
    /// Reads one span's fields in one pass, calling `attr(key, value)` for each attribute on the way. Ids are
    /// not checked here ([`SpanView::check_ids`]). A malformed `KeyValue` is skipped, not an error: this is the
    /// view of readers that only look (metrics, routing, matching); the door ([`super::check_traces`]) has
    /// refused such spans before any of them runs.
    #[inline]
    pub fn read(
        raw: &'a [u8],
        mut attr: impl FnMut(&'a [u8], RawValue<'a>),
    ) -> Result<Self, WireError> {
        let mut v = SpanView {
            raw,
            ..SpanView::default()
        };
        let mut r = Reader::new(raw);
        while let Some((n, f)) = r.next_field()? {
            // Attributes first, with a plain branch: they are most of a span's fields, and the table jump of the
            // `match` below cost a fifth of the span-metrics reader when every field went through it.
            if let (sf::ATTRIBUTES, Field::Bytes(kv)) = (n, f) {
                if let Ok((k, val)) = key_value(kv) {
                    attr(k, val);
                }
                continue;
            }
            match (n, f) {
                (sf::TRACE_ID, Field::Bytes(b)) => v.trace_id = b,
                (sf::SPAN_ID, Field::Bytes(b)) => v.span_id = b,
                (sf::PARENT_SPAN_ID, Field::Bytes(b)) => v.parent_span_id = b,
                (sf::NAME, Field::Bytes(b)) => v.name = b,
                (sf::KIND, Field::Varint(k)) => v.kind = k,
                (sf::START_TIME_UNIX_NANO, Field::Fixed64(t)) => v.start_time_unix_nano = t,
                (sf::END_TIME_UNIX_NANO, Field::Fixed64(t)) => v.end_time_unix_nano = t,
                (sf::STATUS, Field::Bytes(status)) => {
                    let mut s = Reader::new(status);
                    while let Some((sn, sf)) = s.next_field()? {
                        match sn {
                            stf::CODE => v.status_code = sf.varint("status.code")?,
                            stf::MESSAGE => v.status_message = sf.bytes("status.message")?,
                            _ => {}
                        }
                    }
                }
                (
                    sf::TRACE_ID
                    | sf::SPAN_ID
                    | sf::PARENT_SPAN_ID
                    | sf::NAME
                    | sf::ATTRIBUTES
                    | sf::STATUS,
                    _,
                ) => return Err(WireError::new(format!("span field {n}: wrong wire type"))),
                (sf::KIND, _) | (sf::START_TIME_UNIX_NANO, _) | (sf::END_TIME_UNIX_NANO, _) => {
                    return Err(WireError::new(format!("span field {n}: wrong wire type")));
                }
                _ => {}
            }
        }
        Ok(v)
    }

    /// Trace id 16 bytes, span id 8, parent span id empty or 8 (`index` names the span in the message).
    pub fn check_ids(&self, index: usize) -> Result<(), WireError> {
        if self.trace_id.len() != 16 {
            return Err(WireError::new(format!(
                "span {index}: trace_id is {} bytes, expected 16",
                self.trace_id.len()
            )));
        }
        if self.span_id.len() != 8 {
            return Err(WireError::new(format!(
                "span {index}: span_id is {} bytes, expected 8",
                self.span_id.len()
            )));
        }
        if !self.parent_span_id.is_empty() && self.parent_span_id.len() != 8 {
            return Err(WireError::new(format!(
                "span {index}: parent_span_id is {} bytes, expected 8 or none",
                self.parent_span_id.len()
            )));
        }
        Ok(())
    }
}

/// Walks every span of an encoded `ExportTraceServiceRequest`, validating the structure and the id lengths
/// (trace id 16 bytes, span id 8, parent span id empty or 8), and calls `visit(resource_bytes, span)`.
pub fn scan_traces<'a>(
    buf: &'a (impl WireParts + ?Sized),
    mut visit: impl FnMut(&'a [u8], &SpanView<'a>),
) -> Result<TracesSummary, WireError> {
    let mut index = 0;
    walk_spans(buf, |ctx| {
        let view = SpanView::read(ctx.raw, |_, _| {})?;
        view.check_ids(index)?;
        index += 1;
        visit(ctx.resource, &view);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_data::{request, span};
    use prost::Message;

    #[test]
    fn scan_matches_prost_decode() {
        let req = request(3, 4);
        let bytes = req.encode_to_vec();
        let mut seen = Vec::new();
        let summary = scan_traces(&bytes, |res, s| {
            assert!(!res.is_empty());
            seen.push((
                s.span_id.to_vec(),
                s.parent_span_id.is_empty(),
                s.status_code,
            ));
        })
        .unwrap();
        assert_eq!(
            summary,
            TracesSummary {
                resources: 3,
                spans: 12
            }
        );
        let expected: Vec<_> = req
            .resource_spans
            .iter()
            .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.iter()))
            .map(|s| {
                (
                    s.span_id.clone(),
                    s.parent_span_id.is_empty(),
                    s.status.as_ref().map_or(0, |st| st.code as u64),
                )
            })
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn concatenated_requests_scan_as_one() {
        let a = request(2, 3).encode_to_vec();
        let b = request(1, 5).encode_to_vec();
        let joined = [a.clone(), b.clone()].concat();
        assert_eq!(scan_traces(&joined, |_, _| {}).unwrap().spans, 11);
        // The same two requests as a batch of parts: walked in place, part by part, in the same order.
        let parts = crate::Payload::from_parts(vec![a.into(), b.into()]);
        let (mut whole, mut in_parts) = (Vec::new(), Vec::new());
        scan_traces(&joined, |_, s| whole.push(s.span_id.to_vec())).unwrap();
        let summary = scan_traces(&parts, |_, s| in_parts.push(s.span_id.to_vec())).unwrap();
        assert_eq!(
            summary,
            TracesSummary {
                resources: 3,
                spans: 11
            }
        );
        assert_eq!(in_parts, whole);
    }

    #[test]
    fn bad_id_lengths_are_rejected() {
        let mut req = request(1, 1);
        req.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1; 15];
        let err = scan_traces(&req.encode_to_vec(), |_, _| {}).unwrap_err();
        assert!(err.0.contains("trace_id is 15 bytes"), "{err}");

        let mut req = request(1, 1);
        req.resource_spans[0].scope_spans[0].spans[0].span_id = vec![1; 7];
        let err = scan_traces(&req.encode_to_vec(), |_, _| {}).unwrap_err();
        assert!(err.0.contains("span_id is 7 bytes"), "{err}");

        let mut req = request(1, 1);
        req.resource_spans[0].scope_spans[0].spans[0]
            .trace_id
            .clear();
        assert!(scan_traces(&req.encode_to_vec(), |_, _| {}).is_err());
    }

    #[test]
    fn every_truncation_and_garbage_errors_or_scans_without_panic() {
        let bytes = request(2, 2).encode_to_vec();
        for cut in 0..bytes.len() {
            let _ = scan_traces(&bytes[..cut], |_, _| {});
        }
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let mut m = bytes.clone();
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = (x as usize) % m.len();
            m[i] ^= (x >> 16) as u8;
            let _ = scan_traces(&m, |_, _| {});
        }
        assert!(scan_traces(b"\xff\xff\xff", |_, _| {}).is_err());
        let s = span(1, 1, false);
        assert_eq!(s.span_id.len(), 8);
    }
}
