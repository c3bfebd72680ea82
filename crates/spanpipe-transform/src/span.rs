//! What matching and conditions see of one span: its scalar fields read from the wire, plus the encoded span,
//! resource and scope for lazy attribute lookups.

use spanpipe_core::wire::{Reader, SpanView, WireError, fields, find_attr, utf8};

use crate::value::ValueRef;

/// One span in its context, borrowed from the encoded request.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanRef<'a> {
    /// The encoded `Span`.
    pub raw: &'a [u8],
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub name: &'a str,
    pub kind: i64,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: i64,
    pub status_message: &'a str,
    /// The encoded `Resource` of its `ResourceSpans` (empty if absent).
    pub resource: &'a [u8],
    /// The encoded `InstrumentationScope` of its `ScopeSpans` (empty if absent).
    pub scope: &'a [u8],
}

/// The OTel Collector's span kind names (`traceutil.SpanKindStr`).
pub const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

impl<'a> SpanRef<'a> {
    /// Reads the scalar fields of an encoded span (through the wire layer's [`SpanView`]).
    pub fn parse(raw: &'a [u8], resource: &'a [u8], scope: &'a [u8]) -> Result<Self, WireError> {
        let v = SpanView::read(raw, |_, _| {})?;
        Ok(SpanRef {
            raw,
            trace_id: v.trace_id,
            span_id: v.span_id,
            parent_span_id: v.parent_span_id,
            name: utf8(v.name)?,
            kind: v.kind as i64,
            status_code: v.status_code as i64,
            status_message: utf8(v.status_message)?,
            resource,
            scope,
        })
    }

    /// `traceutil.SpanKindStr`: `SPAN_KIND_SERVER`, ...; out-of-range kinds are "".
    pub fn kind_str(&self) -> &'static str {
        usize::try_from(self.kind)
            .ok()
            .and_then(|k| SPAN_KINDS.get(k))
            .copied()
            .unwrap_or("")
    }

    /// A span attribute (the first with this key). Malformed bytes read as absent; the receiver validated them.
    pub fn attribute(&self, key: &str) -> Option<ValueRef<'a>> {
        find_attr(self.raw, fields::span::ATTRIBUTES, key)
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok())
    }

    /// Whether the span has any attribute.
    pub fn has_attributes(&self) -> bool {
        has_field(self.raw, 9)
    }

    /// A resource attribute.
    pub fn resource_attribute(&self, key: &str) -> Option<ValueRef<'a>> {
        find_attr(self.resource, fields::resource::ATTRIBUTES, key)
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok())
    }

    /// Whether the resource has any attribute.
    pub fn resource_has_attributes(&self) -> bool {
        has_field(self.resource, 1)
    }

    /// The instrumentation scope's name (field 1) or version (field 2).
    pub fn scope_field(&self, number: u32) -> &'a str {
        let mut r = Reader::new(self.scope);
        while let Ok(Some((n, f))) = r.next_field() {
            if n == number {
                return f
                    .bytes("scope")
                    .ok()
                    .and_then(|b| utf8(b).ok())
                    .unwrap_or("");
            }
        }
        ""
    }
}

fn has_field(msg: &[u8], number: u32) -> bool {
    let mut r = Reader::new(msg);
    while let Ok(Some((n, _))) = r.next_field() {
        if n == number {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{kv, s, span, with_status};
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    #[test]
    fn reads_fields_and_attributes() {
        let sp = with_status(span(3, 4, "chat", 3, vec![kv("a", s("x"))]), 2).encode_to_vec();
        let res = Resource {
            attributes: vec![kv("service.name", s("svc"))],
            ..Default::default()
        }
        .encode_to_vec();
        let scope = InstrumentationScope {
            name: "lib".into(),
            version: "2".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let r = SpanRef::parse(&sp, &res, &scope).unwrap();
        assert_eq!(r.name, "chat");
        assert_eq!(r.kind_str(), "SPAN_KIND_CLIENT");
        assert_eq!(r.status_code, 2);
        assert_eq!(r.trace_id, &[3u8; 16]);
        assert_eq!(r.attribute("a"), Some(ValueRef::Str("x")));
        assert_eq!(r.attribute("b"), None);
        assert!(r.has_attributes());
        assert_eq!(
            r.resource_attribute("service.name"),
            Some(ValueRef::Str("svc"))
        );
        assert_eq!(r.scope_field(1), "lib");
        assert_eq!(r.scope_field(2), "2");
        let r = SpanRef::parse(&sp, &[], &[]).unwrap();
        assert!(!r.resource_has_attributes());
        assert_eq!(r.scope_field(1), "");
    }
}
