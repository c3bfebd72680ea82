//! Scanning `ExportTraceServiceRequest` bytes: validation, span count and per-span views.

use super::{Reader, WireError, for_each_message};

/// The fields of one span a component may need, borrowed from the encoded request.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanView<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    /// Empty for a root span.
    pub parent_span_id: &'a [u8],
    pub name: &'a [u8],
    pub kind: u64,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: u64,
    /// The whole encoded span, for lazy attribute lookups.
    pub raw: &'a [u8],
}

/// What a scan learnt about a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracesSummary {
    pub resources: usize,
    pub spans: usize,
}

/// Walks every span of an encoded `ExportTraceServiceRequest`, validating the structure and the id lengths
/// (trace id 16 bytes, span id 8, parent span id empty or 8), and calls `visit(resource_bytes, span)`.
pub fn scan_traces<'a>(
    buf: &'a [u8],
    mut visit: impl FnMut(&'a [u8], &SpanView<'a>),
) -> Result<TracesSummary, WireError> {
    let mut summary = TracesSummary::default();
    for_each_message(buf, 1, "resource_spans", |rs| {
        summary.resources += 1;
        let mut resource: &[u8] = &[];
        let mut r = Reader::new(rs);
        // The resource may come after the scope spans on the wire; find it first.
        while let Some((n, f)) = r.next_field()? {
            if n == 1 {
                resource = f.bytes("resource")?;
            }
        }
        for_each_message(rs, 2, "scope_spans", |ss| {
            for_each_message(ss, 2, "span", |span| {
                let view = parse_span(span, summary.spans)?;
                summary.spans += 1;
                visit(resource, &view);
                Ok(())
            })
        })
    })?;
    Ok(summary)
}

#[inline]
fn parse_span(raw: &[u8], index: usize) -> Result<SpanView<'_>, WireError> {
    let mut v = SpanView {
        raw,
        ..SpanView::default()
    };
    let mut r = Reader::new(raw);
    while let Some((n, f)) = r.next_field()? {
        match n {
            1 => v.trace_id = f.bytes("trace_id")?,
            2 => v.span_id = f.bytes("span_id")?,
            4 => v.parent_span_id = f.bytes("parent_span_id")?,
            5 => v.name = f.bytes("name")?,
            6 => v.kind = f.varint("kind")?,
            7 => v.start_time_unix_nano = f.fixed64("start_time_unix_nano")?,
            8 => v.end_time_unix_nano = f.fixed64("end_time_unix_nano")?,
            15 => {
                let mut s = Reader::new(f.bytes("status")?);
                while let Some((sn, sf)) = s.next_field()? {
                    if sn == 3 {
                        v.status_code = sf.varint("status.code")?;
                    }
                }
            }
            _ => {}
        }
    }
    if v.trace_id.len() != 16 {
        return Err(WireError::new(format!(
            "span {index}: trace_id is {} bytes, expected 16",
            v.trace_id.len()
        )));
    }
    if v.span_id.len() != 8 {
        return Err(WireError::new(format!(
            "span {index}: span_id is {} bytes, expected 8",
            v.span_id.len()
        )));
    }
    if !v.parent_span_id.is_empty() && v.parent_span_id.len() != 8 {
        return Err(WireError::new(format!(
            "span {index}: parent_span_id is {} bytes, expected 8 or none",
            v.parent_span_id.len()
        )));
    }
    Ok(v)
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
        let joined = [a, b].concat();
        assert_eq!(scan_traces(&joined, |_, _| {}).unwrap().spans, 11);
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
