//! Cutting an encoded `ExportTraceServiceRequest` into requests of at most N spans, at span granularity,
//! by copying the raw field bytes (resource and scope headers are repeated in each piece). No decode, no re-encode
//! of spans.

use std::borrow::Cow;

use super::{Reader, WireError, each_raw_field, put_bytes_field};

struct Scope<'a> {
    header: Vec<&'a [u8]>,
    spans: Vec<&'a [u8]>,
}

struct Resource<'a> {
    header: Vec<&'a [u8]>,
    scopes: Vec<Scope<'a>>,
}

fn parse(buf: &[u8]) -> Result<Vec<Resource<'_>>, WireError> {
    let mut resources = Vec::new();
    each_raw_field(buf, |n, _, rs| {
        if n != 1 {
            return Ok(());
        }
        let mut res = Resource {
            header: Vec::new(),
            scopes: Vec::new(),
        };
        each_raw_field(rs, |n, raw, ss| {
            if n != 2 {
                res.header.push(raw);
                return Ok(());
            }
            let mut scope = Scope {
                header: Vec::new(),
                spans: Vec::new(),
            };
            each_raw_field(ss, |n, raw, _| {
                if n == 2 {
                    scope.spans.push(raw);
                } else {
                    scope.header.push(raw);
                }
                Ok(())
            })?;
            res.scopes.push(scope);
            Ok(())
        })?;
        resources.push(res);
        Ok(())
    })?;
    Ok(resources)
}

/// Returns pieces of at most `max_spans` spans each (with their span counts), in order. `max_spans == 0` means no
/// limit. Resources or scopes without spans are dropped: they carry no data.
pub fn split_traces(buf: &[u8], max_spans: usize) -> Result<Vec<(Vec<u8>, usize)>, WireError> {
    split_traces_after(buf, max_spans, max_spans)
}

/// [`split_traces`] whose first piece holds at most `first_spans` spans (0: no limit), to fill what is left of a
/// batch; the pieces after it hold at most `max_spans`.
pub fn split_traces_after(
    buf: &[u8],
    first_spans: usize,
    max_spans: usize,
) -> Result<Vec<(Vec<u8>, usize)>, WireError> {
    let limit = |n: usize| if n == 0 { usize::MAX } else { n };
    let (mut max, then) = (limit(first_spans), limit(max_spans));
    let resources = parse(buf)?;
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut in_chunk = 0usize;
    for res in &resources {
        let mut rs_body: Option<Vec<u8>> = None;
        for scope in &res.scopes {
            let mut ss_body: Option<Vec<u8>> = None;
            for span in &scope.spans {
                let ss = ss_body.get_or_insert_with(|| scope.header.concat());
                ss.extend_from_slice(span);
                in_chunk += 1;
                if in_chunk == max {
                    let rs = rs_body.get_or_insert_with(|| res.header.concat());
                    if let Some(ss) = ss_body.take() {
                        put_bytes_field(rs, 2, &ss);
                    }
                    if let Some(rs) = rs_body.take() {
                        put_bytes_field(&mut chunk, 1, &rs);
                    }
                    out.push((std::mem::take(&mut chunk), in_chunk));
                    in_chunk = 0;
                    max = then;
                }
            }
            if let Some(ss) = ss_body.take() {
                let rs = rs_body.get_or_insert_with(|| res.header.concat());
                put_bytes_field(rs, 2, &ss);
            }
        }
        if let Some(rs) = rs_body.take() {
            put_bytes_field(&mut chunk, 1, &rs);
        }
    }
    if in_chunk > 0 {
        out.push((chunk, in_chunk));
    }
    Ok(out)
}

/// One trace's spans of a request, as a request of their own (see [`split_by_trace`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracePiece<'a> {
    /// The spans' trace id (16 bytes after the receiver's door; any length is carried as found).
    pub trace_id: Vec<u8>,
    /// An encoded `ExportTraceServiceRequest` holding only this trace's spans: the input itself when it holds one
    /// trace, else a copy of the trace's spans under their resource and scope headers.
    pub request: Cow<'a, [u8]>,
    pub spans: usize,
}

/// The open resource and scope of one trace's piece while [`split_by_trace`] copies spans into it.
struct Building {
    request: Vec<u8>,
    /// (resource index, scope index) the spans in `rs` / `ss` belong to; `None` before the first.
    at: Option<(usize, usize)>,
    rs: Vec<u8>,
    ss: Vec<u8>,
}

impl Building {
    /// Closes the open scope into the open resource.
    fn close_scope(&mut self, header: &[&[u8]]) {
        if !self.ss.is_empty() {
            let mut body = header.concat();
            body.extend_from_slice(&self.ss);
            put_bytes_field(&mut self.rs, 2, &body);
            self.ss.clear();
        }
    }

    /// Closes the open resource into the piece.
    fn close_resource(&mut self, header: &[&[u8]]) {
        if !self.rs.is_empty() {
            let mut body = header.concat();
            body.extend_from_slice(&self.rs);
            put_bytes_field(&mut self.request, 1, &body);
            self.rs.clear();
        }
    }
}

/// Cuts a request into one request per trace id, in order of first appearance, by copying raw span bytes under
/// their resource and scope headers (no decode, no re-encode of spans). Spans of one trace keep their order;
/// resources and scopes without spans are dropped. A request holding a single trace comes back as itself
/// (borrowed, no copy); one without spans gives no piece.
pub fn split_by_trace(buf: &[u8]) -> Result<Vec<TracePiece<'_>>, WireError> {
    let resources = parse(buf)?;
    // First the trace of every span (by first appearance), so a one-trace request is not copied.
    let mut ids: Vec<(&[u8], usize)> = Vec::new();
    let mut index: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    let mut slots = Vec::new();
    for span in resources
        .iter()
        .flat_map(|r| &r.scopes)
        .flat_map(|s| &s.spans)
    {
        let mut r = Reader::new(span);
        let payload = match r.next_field()? {
            Some((_, super::Field::Bytes(p))) => p,
            _ => return Err(WireError::new("span: wrong wire type")),
        };
        let trace_id = super::traces::first_bytes(payload, 1, "span.trace_id")?;
        let slot = *index.entry(trace_id).or_insert_with(|| {
            ids.push((trace_id, 0));
            ids.len() - 1
        });
        ids[slot].1 += 1;
        slots.push(slot);
    }
    if let [(trace_id, spans)] = ids[..] {
        return Ok(vec![TracePiece {
            trace_id: trace_id.to_vec(),
            request: Cow::Borrowed(buf),
            spans,
        }]);
    }
    let mut order: Vec<Building> = ids
        .iter()
        .map(|_| Building {
            request: Vec::new(),
            at: None,
            rs: Vec::new(),
            ss: Vec::new(),
        })
        .collect();
    let mut slot_of = slots.into_iter();
    for (ri, res) in resources.iter().enumerate() {
        for (si, scope) in res.scopes.iter().enumerate() {
            for span in &scope.spans {
                let slot = slot_of
                    .next()
                    .ok_or_else(|| WireError::new("span count changed between passes"))?;
                let b = order
                    .get_mut(slot)
                    .ok_or_else(|| WireError::new("span slot out of range"))?;
                if let Some((pr, ps)) = b.at
                    && (pr, ps) != (ri, si)
                {
                    b.close_scope(&resources[pr].scopes[ps].header);
                    if pr != ri {
                        b.close_resource(&resources[pr].header);
                    }
                }
                b.at = Some((ri, si));
                b.ss.extend_from_slice(span);
            }
        }
    }
    Ok(order
        .into_iter()
        .zip(ids)
        .map(|(mut b, (trace_id, spans))| {
            if let Some((pr, ps)) = b.at {
                b.close_scope(&resources[pr].scopes[ps].header);
                b.close_resource(&resources[pr].header);
            }
            TracePiece {
                trace_id: trace_id.to_vec(),
                request: Cow::Owned(b.request),
                spans,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::scan_traces;
    use crate::wire::test_data::request;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    fn span_ids(req: &ExportTraceServiceRequest) -> Vec<Vec<u8>> {
        req.resource_spans
            .iter()
            .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.iter()))
            .map(|s| s.span_id.clone())
            .collect()
    }

    #[test]
    fn the_first_piece_fills_the_room_left_and_the_rest_are_full_size() {
        let req = request(3, 7);
        let bytes = req.encode_to_vec();
        for (first, max, sizes) in [
            (3, 5, vec![3, 5, 5, 5, 3]),
            (1, 21, vec![1, 20]),
            (21, 4, vec![21]),
            (5, 0, vec![5, 16]),
        ] {
            let pieces = split_traces_after(&bytes, first, max).unwrap();
            let got: Vec<usize> = pieces.iter().map(|(_, n)| *n).collect();
            assert_eq!(got, sizes, "first {first}, max {max}");
            let ids: Vec<Vec<u8>> = pieces
                .iter()
                .flat_map(|(p, _)| {
                    span_ids(&ExportTraceServiceRequest::decode(p.as_slice()).unwrap())
                })
                .collect();
            assert_eq!(ids, span_ids(&req));
        }
    }

    #[test]
    fn split_keeps_every_span_once_with_its_resource_and_scope() {
        let req = request(3, 7);
        let bytes = req.encode_to_vec();
        for max in [1, 2, 5, 7, 8, 20, 21, 100, 0] {
            let pieces = split_traces(&bytes, max).unwrap();
            let mut ids = Vec::new();
            for (piece, n) in &pieces {
                let decoded = ExportTraceServiceRequest::decode(piece.as_slice()).unwrap();
                assert_eq!(scan_traces(piece, |_, _| {}).unwrap().spans, *n);
                if max > 0 {
                    assert!(*n <= max);
                }
                for rs in &decoded.resource_spans {
                    let orig = req
                        .resource_spans
                        .iter()
                        .find(|o| o.resource == rs.resource)
                        .expect("resource preserved");
                    assert_eq!(orig.schema_url, rs.schema_url);
                    for ss in &rs.scope_spans {
                        assert!(orig.scope_spans.iter().any(|o| o.scope == ss.scope));
                    }
                }
                ids.extend(span_ids(&decoded));
            }
            assert_eq!(ids, span_ids(&req), "max {max}");
            let expected_pieces = if max == 0 { 1 } else { 21usize.div_ceil(max) };
            assert_eq!(pieces.len(), expected_pieces, "max {max}");
        }
    }

    #[test]
    fn split_by_trace_keeps_every_span_once_under_its_resource_and_scope() {
        // Two resources, each holding spans of traces 0 and 1 interleaved, plus an empty scope.
        let mut req = request(2, 4);
        for rs in &mut req.resource_spans {
            for (i, s) in rs.scope_spans[0].spans.iter_mut().enumerate() {
                s.trace_id = vec![(i % 2) as u8 + 1; 16];
            }
            rs.scope_spans.push(Default::default());
        }
        let bytes = req.encode_to_vec();
        let pieces = split_by_trace(&bytes).unwrap();
        assert_eq!(pieces.len(), 2);
        let mut all = Vec::new();
        for p in &pieces {
            let decoded = ExportTraceServiceRequest::decode(&p.request[..]).unwrap();
            assert_eq!(decoded.resource_spans.len(), 2, "both resources repeated");
            for (rs, orig) in decoded.resource_spans.iter().zip(&req.resource_spans) {
                assert_eq!(rs.resource, orig.resource);
                assert_eq!(rs.schema_url, orig.schema_url);
                assert_eq!(rs.scope_spans.len(), 1, "the empty scope is dropped");
                assert_eq!(rs.scope_spans[0].scope, orig.scope_spans[0].scope);
                for s in &rs.scope_spans[0].spans {
                    assert_eq!(s.trace_id, p.trace_id);
                }
            }
            assert_eq!(p.spans, 4);
            assert_eq!(scan_traces(&p.request[..], |_, _| {}).unwrap().spans, 4);
            all.extend(span_ids(&decoded));
        }
        let mut want = span_ids(&req);
        want.sort();
        all.sort();
        assert_eq!(all, want);
        assert_eq!(split_by_trace(&[]).unwrap(), vec![]);
    }

    #[test]
    fn a_request_of_one_trace_comes_back_as_itself() {
        let mut req = request(2, 3);
        for rs in &mut req.resource_spans {
            for s in &mut rs.scope_spans[0].spans {
                s.trace_id = vec![7; 16];
            }
        }
        let bytes = req.encode_to_vec();
        let pieces = split_by_trace(&bytes).unwrap();
        assert_eq!(pieces.len(), 1);
        assert!(matches!(pieces[0].request, Cow::Borrowed(b) if b.as_ptr() == bytes.as_ptr()));
        assert_eq!(
            (pieces[0].trace_id.as_slice(), pieces[0].spans),
            (&[7u8; 16][..], 6)
        );
    }

    #[test]
    fn split_by_trace_of_garbage_is_an_error_never_a_panic() {
        let bytes = request(2, 3).encode_to_vec();
        for cut in 0..bytes.len() {
            let _ = split_by_trace(&bytes[..cut]);
        }
        assert!(split_by_trace(b"\x0a\xff\x01").is_err());
    }

    #[test]
    fn split_of_garbage_is_an_error() {
        assert!(split_traces(b"\x0a\xff\x01", 2).is_err());
    }
}
