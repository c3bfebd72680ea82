//! One pass over an encoded `ExportTraceServiceRequest` that hands over, per span, the few fields the
//! connector needs and every attribute as it goes by.
//!
//! `spanpipe_core::wire::scan_traces` followed by a second walk over each span's attributes cost about twice as
//! much per span (measured on agent spans with ten attributes); the receiver has already validated the request,
//! so here a malformed message only has to be refused safely, not diagnosed.

use spanpipe_core::wire::WireError;

use crate::attrs::{RawValue, SPAN_ATTRIBUTES, Wire, field, key_value};

/// The fields of one span the connector uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanFields<'a> {
    pub trace_id: &'a [u8],
    /// Empty for a root span.
    pub parent_span_id: &'a [u8],
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: u64,
}

fn malformed(what: &str) -> WireError {
    WireError::new(format!("malformed {what}"))
}

/// The length-delimited fields numbered `number` of `msg`.
fn each<'a>(
    msg: &'a [u8],
    number: u64,
    what: &str,
    mut f: impl FnMut(&'a [u8]) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut pos = 0;
    while pos < msg.len() {
        match field(msg, &mut pos).ok_or_else(|| malformed(what))? {
            (n, Wire::Bytes(b)) if n == number => f(b)?,
            _ => {}
        }
    }
    Ok(())
}

/// Calls `span(resource, raw_span)` for every span, with the encoded resource of its `ResourceSpans`.
pub fn for_each_span<'a>(
    request: &'a [u8],
    mut span: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), WireError>,
) -> Result<(), WireError> {
    each(request, 1, "resource_spans", |rs| {
        // The resource may follow the scope spans on the wire: find it first.
        let mut resource: &[u8] = &[];
        each(rs, 1, "resource_spans", |r| {
            resource = r;
            Ok(())
        })?;
        each(rs, 2, "resource_spans", |ss| {
            each(ss, 2, "scope_spans", |raw| span(resource, raw))
        })
    })
}

/// Reads one span's fields, calling `attr(key, value)` for each well-formed attribute on the way.
#[inline]
pub fn span_fields<'a>(
    raw: &'a [u8],
    mut attr: impl FnMut(&'a [u8], RawValue<'a>),
) -> Result<SpanFields<'a>, WireError> {
    let mut s = SpanFields::default();
    let mut pos = 0;
    while pos < raw.len() {
        match field(raw, &mut pos).ok_or_else(|| malformed("span"))? {
            (1, Wire::Bytes(b)) => s.trace_id = b,
            (4, Wire::Bytes(b)) => s.parent_span_id = b,
            (7, Wire::Fixed64(t)) => s.start_time_unix_nano = t,
            (8, Wire::Fixed64(t)) => s.end_time_unix_nano = t,
            (n, Wire::Bytes(kv)) if n == u64::from(SPAN_ATTRIBUTES) => {
                // A malformed attribute is skipped: the receiver does not look inside attributes, so refusing the
                // request here would refuse it for every other exporter too, and the span's duration still counts.
                if let Some((k, v)) = key_value(kv) {
                    attr(k, v);
                }
            }
            (15, Wire::Bytes(status)) => {
                let mut p = 0;
                while p < status.len() {
                    if let (3, Wire::Varint(code)) =
                        field(status, &mut p).ok_or_else(|| malformed("status"))?
                    {
                        s.status_code = code;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    use spanpipe_core::wire::scan_traces;

    use super::*;
    use crate::test_util::{request, span};

    #[test]
    fn reads_what_the_core_scanner_reads() {
        let mut bytes = request(
            &[("a", "b")],
            vec![
                span(1, 2, 1, 5.0, 2, &[("k", "v")]),
                span(1, 1, 0, 9.0, 1, &[]),
            ],
        );
        bytes.extend(request(
            &[],
            vec![span(3, 1, 0, 1.0, 0, &[("x", "y"), ("z", "w")])],
        ));
        let mut core = Vec::new();
        scan_traces(&bytes, |res, v| {
            core.push((
                res.to_vec(),
                v.trace_id.to_vec(),
                v.parent_span_id.to_vec(),
                v.start_time_unix_nano,
                v.end_time_unix_nano,
                v.status_code,
            ))
        })
        .unwrap();
        let mut ours = Vec::new();
        let mut attrs = 0;
        for_each_span(&bytes, |res, raw| {
            let f = span_fields(raw, |_, _| attrs += 1)?;
            ours.push((
                res.to_vec(),
                f.trace_id.to_vec(),
                f.parent_span_id.to_vec(),
                f.start_time_unix_nano,
                f.end_time_unix_nano,
                f.status_code,
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(ours, core);
        assert_eq!(attrs, 3);
        let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.resource_spans.len(), 2);
    }

    #[test]
    fn truncations_and_garbage_error_without_panic() {
        let bytes = request(&[("a", "b")], vec![span(1, 2, 1, 5.0, 2, &[("k", "v")])]);
        for cut in 0..bytes.len() {
            let _ = for_each_span(&bytes[..cut], |_, raw| {
                span_fields(raw, |_, _| {}).map(|_| ())
            });
        }
        let mut x: u32 = 99;
        for _ in 0..2000 {
            let mut m = bytes.clone();
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = (x as usize) % m.len();
            m[i] ^= (x >> 16) as u8;
            let _ = for_each_span(&m, |_, raw| {
                span_fields(raw, |k, v| {
                    let _ = (k, v.get());
                })
                .map(|_| ())
            });
        }
        assert!(for_each_span(b"\xff\xff", |_, _| Ok(())).is_err());
    }
}
