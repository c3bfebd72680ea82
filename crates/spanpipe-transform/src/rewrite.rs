//! Field-level rewriting of an encoded `ExportTraceServiceRequest`.
//!
//! The walk hands every resource and span to an [`Editor`], which may keep, replace or drop it. Whatever is kept
//! is copied as the original bytes; only messages on the path to a change are re-framed (a changed span means new
//! lengths for its `ScopeSpans` and `ResourceSpans`, nothing else). Output is allocated only at the first change,
//! so a request nothing applies to costs one scan and no copy. Scopes and resources left without spans are
//! removed, as the OTel Collector's filter processor does.

use spanpipe_core::wire::{Reader, WireError, put_bytes_field};

use crate::span::SpanRef;

/// What becomes of one span.
#[derive(Debug, PartialEq, Eq)]
pub enum SpanEdit {
    Keep,
    Drop,
    /// The new encoded span.
    Replace(Vec<u8>),
}

/// A processor's view of the walk.
pub trait Editor {
    /// The new encoded `Resource`, or `None` to keep it.
    fn resource(&mut self, _resource: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
        Ok(None)
    }

    /// False for editors that only touch resources: spans are then copied without being read.
    fn visits_spans(&self) -> bool {
        true
    }

    fn span(&mut self, _span: &SpanRef<'_>) -> Result<SpanEdit, WireError> {
        Ok(SpanEdit::Keep)
    }
}

/// The result of a walk.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The new request; `None` when nothing changed (the original bytes stand).
    pub payload: Option<Vec<u8>>,
    /// Spans dropped.
    pub dropped: usize,
}

enum Piece {
    Same,
    Removed,
    New(Vec<u8>),
}

/// Appends pieces of `msg` lazily: nothing is allocated until the first piece that differs.
struct Lazy<'a> {
    msg: &'a [u8],
    out: Option<Vec<u8>>,
}

impl<'a> Lazy<'a> {
    fn new(msg: &'a [u8]) -> Self {
        Lazy { msg, out: None }
    }

    /// Records the field `msg[start..end]` (field `number`) as `piece`.
    fn add(&mut self, start: usize, end: usize, number: u32, piece: Piece) {
        let msg = self.msg;
        match piece {
            Piece::Same => {
                if let Some(o) = self.out.as_mut() {
                    o.extend_from_slice(&msg[start..end]);
                }
            }
            Piece::Removed => {
                self.out.get_or_insert_with(|| msg[..start].to_vec());
            }
            Piece::New(body) => {
                let o = self.out.get_or_insert_with(|| {
                    let mut v = Vec::with_capacity(msg.len() + 16);
                    v.extend_from_slice(&msg[..start]);
                    v
                });
                put_bytes_field(o, number, &body);
            }
        }
    }
}

/// Walks `buf`, applying `editor` to every resource and span.
pub fn rewrite(buf: &[u8], editor: &mut impl Editor) -> Result<Outcome, WireError> {
    let mut dropped = 0;
    let mut lazy = Lazy::new(buf);
    let mut r = Reader::new(buf);
    loop {
        let start = r.position();
        let Some((n, f)) = r.next_field()? else {
            break;
        };
        let piece = if n == 1 {
            resource_spans(f.bytes("resource_spans")?, editor, &mut dropped)?
        } else {
            Piece::Same
        };
        lazy.add(start, r.position(), n, piece);
    }
    Ok(Outcome {
        payload: lazy.out,
        dropped,
    })
}

/// The first occurrence of length-delimited field `number`.
fn first_bytes<'a>(
    msg: &'a [u8],
    number: u32,
    what: &'static str,
) -> Result<Option<&'a [u8]>, WireError> {
    let mut r = Reader::new(msg);
    while let Some((n, f)) = r.next_field()? {
        if n == number {
            return f.bytes(what).map(Some);
        }
    }
    Ok(None)
}

fn resource_spans(
    rs: &[u8],
    editor: &mut impl Editor,
    dropped: &mut usize,
) -> Result<Piece, WireError> {
    // The resource may follow the scope spans on the wire.
    let resource = first_bytes(rs, 1, "resource")?;
    let mut lazy = Lazy::new(rs);
    if resource.is_none() {
        // No resource on the wire is an empty one, which a resource editor may still fill.
        if let Some(new) = editor.resource(&[])? {
            let mut out = Vec::with_capacity(rs.len() + new.len() + 8);
            put_bytes_field(&mut out, 1, &new);
            lazy.out = Some(out);
        }
    }
    let resource = resource.unwrap_or_default();
    let (mut scopes_left, mut scopes_removed) = (0usize, 0usize);
    let mut r = Reader::new(rs);
    loop {
        let start = r.position();
        let Some((n, f)) = r.next_field()? else {
            break;
        };
        let piece = match n {
            1 => match editor.resource(f.bytes("resource")?)? {
                Some(new) => Piece::New(new),
                None => Piece::Same,
            },
            2 if editor.visits_spans() => {
                let p = scope_spans(f.bytes("scope_spans")?, resource, editor, dropped)?;
                match p {
                    Piece::Removed => scopes_removed += 1,
                    _ => scopes_left += 1,
                }
                p
            }
            _ => Piece::Same,
        };
        lazy.add(start, r.position(), n, piece);
    }
    Ok(match lazy.out {
        _ if scopes_removed > 0 && scopes_left == 0 => Piece::Removed,
        Some(body) => Piece::New(body),
        None => Piece::Same,
    })
}

fn scope_spans(
    ss: &[u8],
    resource: &[u8],
    editor: &mut impl Editor,
    dropped: &mut usize,
) -> Result<Piece, WireError> {
    let scope = first_bytes(ss, 1, "scope")?.unwrap_or_default();
    let mut lazy = Lazy::new(ss);
    let (mut left, mut removed) = (0usize, 0usize);
    let mut r = Reader::new(ss);
    loop {
        let start = r.position();
        let Some((n, f)) = r.next_field()? else {
            break;
        };
        let piece = if n == 2 {
            let span = SpanRef::parse(f.bytes("span")?, resource, scope)?;
            match editor.span(&span)? {
                SpanEdit::Keep => {
                    left += 1;
                    Piece::Same
                }
                SpanEdit::Drop => {
                    removed += 1;
                    Piece::Removed
                }
                SpanEdit::Replace(new) => {
                    left += 1;
                    Piece::New(new)
                }
            }
        } else {
            Piece::Same
        };
        lazy.add(start, r.position(), n, piece);
    }
    *dropped += removed;
    Ok(match lazy.out {
        _ if removed > 0 && left == 0 => Piece::Removed,
        Some(body) => Piece::New(body),
        None => Piece::Same,
    })
}

/// Applies `editor` to the payload of a traces batch (other signals pass unchanged), keeping the same buffer when
/// nothing changed. A malformed request is rejected (the receiver answers 400), named after processor `id`.
pub fn rewrite_batch(
    id: &str,
    mut batch: spanpipe_core::Batch,
    editor: &mut impl Editor,
) -> Result<spanpipe_core::Batch, spanpipe_core::ConsumeError> {
    let outcome =
        rewrite(&batch.payload, editor).map_err(|e| spanpipe_core::ConsumeError::Rejected {
            reason: format!("{id}: malformed traces: {e}"),
        })?;
    if let Some(p) = outcome.payload {
        batch.payload = bytes::Bytes::from(p);
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{decode, kv, request, resource_spans, s, span, spans};
    use prost::Message;

    struct DropNamed(&'static str);
    impl Editor for DropNamed {
        fn span(&mut self, span: &SpanRef<'_>) -> Result<SpanEdit, WireError> {
            Ok(if span.name == self.0 {
                SpanEdit::Drop
            } else {
                SpanEdit::Keep
            })
        }
    }

    struct Rename;
    impl Editor for Rename {
        fn span(&mut self, span: &SpanRef<'_>) -> Result<SpanEdit, WireError> {
            if span.name != "b" {
                return Ok(SpanEdit::Keep);
            }
            let mut sp = opentelemetry_proto::tonic::trace::v1::Span::decode(span.raw)
                .map_err(|e| WireError::new(e.to_string()))?;
            sp.name = "renamed".into();
            Ok(SpanEdit::Replace(sp.encode_to_vec()))
        }
    }

    fn sample() -> Vec<u8> {
        request(vec![
            resource_spans(
                vec![kv("service.name", s("one"))],
                vec![span(1, 1, "a", 1, vec![]), span(1, 2, "b", 1, vec![])],
            ),
            resource_spans(
                vec![kv("service.name", s("two"))],
                vec![span(2, 3, "a", 1, vec![])],
            ),
        ])
    }

    #[test]
    fn nothing_changed_means_no_copy() {
        let out = rewrite(&sample(), &mut DropNamed("zzz")).unwrap();
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn dropping_removes_empty_scopes_and_resources() {
        let buf = sample();
        let out = rewrite(&buf, &mut DropNamed("a")).unwrap();
        assert_eq!(out.dropped, 2);
        let req = decode(&out.payload.unwrap());
        assert_eq!(req.resource_spans.len(), 1, "resource two had only 'a'");
        let names: Vec<_> = spans(&req).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["b"]);
        let orig = decode(&buf);
        assert_eq!(
            req.resource_spans[0].resource,
            orig.resource_spans[0].resource
        );
        assert_eq!(req.resource_spans[0].schema_url, "https://schema");
        assert_eq!(
            req.resource_spans[0].scope_spans[0].scope,
            orig.resource_spans[0].scope_spans[0].scope
        );
    }

    #[test]
    fn replacing_keeps_the_rest_identical() {
        let buf = sample();
        let out = rewrite(&buf, &mut Rename).unwrap();
        assert_eq!(out.dropped, 0);
        let got = decode(&out.payload.unwrap());
        let mut want = decode(&buf);
        want.resource_spans[0].scope_spans[0].spans[1].name = "renamed".into();
        assert_eq!(got, want);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let buf = sample();
        for cut in 1..buf.len() {
            let _ = rewrite(&buf[..cut], &mut DropNamed("a"));
        }
        assert!(rewrite(b"\x0a\x05\x12\x03\x12\x01", &mut DropNamed("a")).is_err());
    }
}
