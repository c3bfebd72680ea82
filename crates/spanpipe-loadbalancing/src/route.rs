//! The routing key of one span, as a ring position: read through `spanpipe_core::wire` from the encoded span and
//! its resource, never decoded. A value that cannot be read routes as empty (the receiver's door has checked the
//! request, so this is a bug path, and a routing key only has to be stable).

use spanpipe_core::wire::{self, SpanCtx, SpanView, WireError, fields};

use crate::config::RoutingKey;
use crate::ring::position;

/// The ring position of the span in `ctx` under `key`.
pub fn span_position(key: &RoutingKey, ctx: SpanCtx<'_>) -> Result<u32, WireError> {
    match key {
        // The trace id is the span's first field as SDKs write it: stop there instead of reading the span.
        RoutingKey::TraceId => {
            let mut r = wire::Reader::new(ctx.raw);
            while let Some((n, f)) = r.next_field()? {
                if n == fields::span::TRACE_ID {
                    return Ok(position(f.bytes("span.trace_id")?));
                }
            }
            Ok(position(&[]))
        }
        RoutingKey::Service => {
            let name = wire::find_attr(ctx.resource, fields::resource::ATTRIBUTES, "service.name")?
                .map(|v| v.bytes())
                .unwrap_or_default();
            Ok(position(name))
        }
        // The resource's attributes as encoded: one key per distinct resource.
        RoutingKey::Resource => {
            let mut h = crc32fast::Hasher::new();
            wire::for_each_attr(ctx.resource, fields::resource::ATTRIBUTES, |k, v| {
                h.update(k);
                h.update(b"=");
                h.update(v.bytes());
                h.update(b"|");
            })?;
            Ok(crate::ring::position(&h.finalize().to_le_bytes()))
        }
        RoutingKey::Attributes(names) => {
            let mut h = crc32fast::Hasher::new();
            let mut span_attrs: Vec<(&[u8], wire::RawValue<'_>)> = Vec::new();
            let span = SpanView::read(ctx.raw, |k, v| span_attrs.push((k, v)))?;
            for name in names {
                h.update(name.as_bytes());
                h.update(b"=");
                match name.as_str() {
                    "span.kind" => h.update(&span.kind.to_le_bytes()),
                    "span.name" => h.update(span.name),
                    _ => {
                        let found = span_attrs
                            .iter()
                            .find(|(k, _)| *k == name.as_bytes())
                            .map(|(_, v)| *v);
                        let found = match found {
                            Some(v) => Some(v),
                            None => {
                                wire::find_attr(ctx.resource, fields::resource::ATTRIBUTES, name)?
                            }
                        };
                        if let Some(v) = found {
                            h.update(v.bytes());
                        }
                    }
                }
                h.update(b"|");
            }
            Ok(crate::ring::position(&h.finalize().to_le_bytes()))
        }
    }
}

#[cfg(test)]
mod tests;
