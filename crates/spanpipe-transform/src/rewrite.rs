//! Field-level rewriting of an encoded `ExportTraceServiceRequest`, through the wire layer's one copy-on-write
//! rewriter ([`spanpipe_core::wire::rewrite_spans`]).
//!
//! The walk hands every resource and span to an [`Editor`], which may keep, replace or drop it. Whatever is kept
//! is copied as the original bytes; only messages on the path to a change are re-framed. Output is allocated only
//! at the first change, so a request nothing applies to costs one scan and no copy. Scopes and resources left
//! without spans are removed, as the OTel Collector's filter processor does.

use spanpipe_core::wire::{SpanCtx, SpanEditor, WireError, rewrite_spans};

pub use spanpipe_core::wire::{Outcome, SpanEdit};

use crate::span::SpanRef;

/// A processor's view of the walk: spans arrive as [`SpanRef`]s.
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

struct Adapter<'e, E>(&'e mut E);

impl<E: Editor> SpanEditor for Adapter<'_, E> {
    fn resource(&mut self, resource: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
        self.0.resource(resource)
    }

    fn visits_spans(&self) -> bool {
        self.0.visits_spans()
    }

    fn span(&mut self, ctx: &SpanCtx<'_>) -> Result<SpanEdit, WireError> {
        let span = SpanRef::parse(ctx.raw, ctx.resource, ctx.scope)?;
        self.0.span(&span)
    }
}

/// Walks `buf`, applying `editor` to every resource and span.
pub fn rewrite(buf: &[u8], editor: &mut impl Editor) -> Result<Outcome, WireError> {
    rewrite_spans(buf, &mut Adapter(editor))
}

/// Applies `editor` to the payload of a traces batch (other signals pass unchanged), keeping the same buffer when
/// nothing changed. A malformed request is rejected (the receiver answers 400), named after processor `id`.
pub fn rewrite_batch(
    id: &str,
    mut batch: spanpipe_core::Batch,
    editor: &mut impl Editor,
) -> Result<spanpipe_core::Batch, spanpipe_core::ConsumeError> {
    let outcome = spanpipe_core::wire::rewrite_payload(&batch.payload, &mut Adapter(editor))
        .map_err(|e| spanpipe_core::ConsumeError::Rejected {
            reason: format!("{id}: malformed traces: {e}"),
        })?;
    if let Some(p) = outcome.payload {
        batch.payload = p;
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
