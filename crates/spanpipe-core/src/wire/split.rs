//! Cutting an encoded `ExportTraceServiceRequest` into requests of at most N spans, at span granularity,
//! by copying the raw field bytes (resource and scope headers are repeated in each piece). No decode, no re-encode
//! of spans.

use super::{Reader, WireError, put_bytes_field};

struct Scope<'a> {
    header: Vec<&'a [u8]>,
    spans: Vec<&'a [u8]>,
}

struct Resource<'a> {
    header: Vec<&'a [u8]>,
    scopes: Vec<Scope<'a>>,
}

/// Splits the message into `(field number, raw encoded field)` pieces, keeping field 2 payloads apart.
fn fields<'a>(
    buf: &'a [u8],
    mut on_field: impl FnMut(u32, &'a [u8], &'a [u8]) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    loop {
        let start = r.position();
        let Some((n, f)) = r.next_field()? else {
            return Ok(());
        };
        let raw = &buf[start..r.position()];
        let payload = match f {
            super::Field::Bytes(b) => b,
            _ => &[],
        };
        on_field(n, raw, payload)?;
    }
}

fn parse(buf: &[u8]) -> Result<Vec<Resource<'_>>, WireError> {
    let mut resources = Vec::new();
    fields(buf, |n, _, rs| {
        if n != 1 {
            return Ok(());
        }
        let mut res = Resource {
            header: Vec::new(),
            scopes: Vec::new(),
        };
        fields(rs, |n, raw, ss| {
            if n != 2 {
                res.header.push(raw);
                return Ok(());
            }
            let mut scope = Scope {
                header: Vec::new(),
                spans: Vec::new(),
            };
            fields(ss, |n, raw, _| {
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
    let max = if max_spans == 0 {
        usize::MAX
    } else {
        max_spans
    };
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
    fn split_of_garbage_is_an_error() {
        assert!(split_traces(b"\x0a\xff\x01", 2).is_err());
    }
}
