//! Attribute lookups on encoded OTLP spans and resources, without decoding them.
//!
//! The connector reads a handful of attributes per span on the hot path; walking the `KeyValue` fields of the
//! encoded span borrows keys and values from the request bytes, so nothing is allocated per span.

use std::borrow::Cow;

use spanpipe_core::wire::WireError;

/// `Span.attributes` is field 9.
pub const SPAN_ATTRIBUTES: u32 = 9;
/// `Resource.attributes` is field 1.
pub const RESOURCE_ATTRIBUTES: u32 = 1;

/// An attribute value borrowed from the encoded message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttrValue<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    /// Arrays, key-value lists, bytes, invalid UTF-8, or no value at all.
    Other,
}

impl<'a> AttrValue<'a> {
    /// The string, when the value is one.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as MLflow's server turns a resource attribute into a trace tag: strings unchanged, scalars as
    /// JSON (`json.dumps`); arrays and maps are not used (`None`).
    pub fn tag_text(&self) -> Option<Cow<'a, str>> {
        match *self {
            AttrValue::Str(s) => Some(Cow::Borrowed(s)),
            AttrValue::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
            AttrValue::Int(i) => Some(Cow::Owned(i.to_string())),
            AttrValue::Double(d) if d.is_finite() => Some(Cow::Owned(format!("{d:?}"))),
            _ => None,
        }
    }
}

/// An attribute's encoded `AnyValue`, decoded only when asked: most attributes of a span are not looked at
/// beyond their key.
#[derive(Clone, Copy, Debug)]
pub struct RawValue<'a>(&'a [u8]);

impl<'a> RawValue<'a> {
    /// Wraps encoded `AnyValue` bytes.
    pub fn new(encoded: &'a [u8]) -> Self {
        RawValue(encoded)
    }

    /// `AnyValue`: string 1, bool 2, int 3, double 4 (arrays 5, maps 6, bytes 7, or anything malformed are
    /// [`AttrValue::Other`]).
    pub fn get(self) -> AttrValue<'a> {
        let (b, mut pos) = (self.0, 0);
        let mut out = AttrValue::Other;
        while pos < b.len() {
            let Some((n, f)) = field(b, &mut pos) else {
                return AttrValue::Other;
            };
            out = match (n, f) {
                (1, Wire::Bytes(s)) => {
                    std::str::from_utf8(s).map_or(AttrValue::Other, AttrValue::Str)
                }
                (2, Wire::Varint(x)) => AttrValue::Bool(x != 0),
                (3, Wire::Varint(x)) => AttrValue::Int(x as i64),
                (4, Wire::Fixed64(x)) => AttrValue::Double(f64::from_bits(x)),
                _ => AttrValue::Other,
            };
        }
        out
    }
}

/// One field, as the attribute walk needs it.
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Other,
}

/// A varint; one-byte values (almost every tag and length here) take the first branch.
#[inline(always)]
pub(crate) fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *b.get(*pos)?;
    *pos += 1;
    if first < 0x80 {
        return Some(u64::from(first));
    }
    let mut v = u64::from(first & 0x7f);
    for shift in 1..10 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << (7 * shift);
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// The next field of `b` at `pos`, bounds-checked; `None` on malformed input.
///
/// A local reader rather than `spanpipe_core::wire::Reader`: the attribute walk reads four fields per attribute,
/// ten attributes per span, and this inlined version is several times cheaper per field (no error values).
#[inline(always)]
pub(crate) fn field<'a>(b: &'a [u8], pos: &mut usize) -> Option<(u64, Wire<'a>)> {
    let key = varint(b, pos)?;
    let wire = match key & 7 {
        0 => Wire::Varint(varint(b, pos)?),
        1 => {
            let s = b.get(*pos..*pos + 8)?;
            *pos += 8;
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            Wire::Fixed64(u64::from_le_bytes(a))
        }
        2 => {
            let len = usize::try_from(varint(b, pos)?).ok()?;
            let end = pos.checked_add(len)?;
            let s = b.get(*pos..end)?;
            *pos = end;
            Wire::Bytes(s)
        }
        5 => {
            b.get(*pos..*pos + 4)?;
            *pos += 4;
            Wire::Other
        }
        _ => return None,
    };
    Some((key >> 3, wire))
}

/// Calls `visit(key, value)` for every attribute in the `KeyValue` fields numbered `field_number` of `msg`
/// (a span: [`SPAN_ATTRIBUTES`], a resource: [`RESOURCE_ATTRIBUTES`]), in wire order.
pub fn for_each_attr<'a>(
    msg: &'a [u8],
    field_number: u32,
    mut visit: impl FnMut(&'a [u8], RawValue<'a>),
) -> Result<(), WireError> {
    let malformed = || WireError::new("malformed attributes");
    let mut pos = 0;
    while pos < msg.len() {
        let (n, f) = field(msg, &mut pos).ok_or_else(malformed)?;
        let Wire::Bytes(kv) = f else {
            continue;
        };
        if n != u64::from(field_number) {
            continue;
        }
        let (key, value) = key_value(kv).ok_or_else(malformed)?;
        visit(key, value);
    }
    Ok(())
}

/// `KeyValue { 1: key, 2: AnyValue }`.
#[inline]
pub(crate) fn key_value(kv: &[u8]) -> Option<(&[u8], RawValue<'_>)> {
    let (mut key, mut value, mut p) = (&[][..], &[][..], 0);
    while p < kv.len() {
        match field(kv, &mut p)? {
            (1, Wire::Bytes(k)) => key = k,
            (2, Wire::Bytes(v)) => value = v,
            _ => {}
        }
    }
    Some((key, RawValue(value)))
}

/// MLflow's `try_json_loads` for text that should be a string: `"\"LLM\""` → `LLM`, anything that is not a JSON
/// string literal stays as it is. Borrowed unless the literal has escapes.
pub fn json_str(raw: &str) -> Cow<'_, str> {
    let b = raw.as_bytes();
    if b.len() < 2 || b[0] != b'"' || b[b.len() - 1] != b'"' {
        return Cow::Borrowed(raw);
    }
    let inner = &raw[1..raw.len() - 1];
    if !inner.bytes().any(|c| c == b'\\' || c == b'"' || c < 0x20) {
        return Cow::Borrowed(inner);
    }
    match serde_json::from_str::<String>(raw) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn reads_every_scalar_kind_in_order() {
        let res = Resource {
            attributes: vec![
                kv("s", Value::StringValue("x".into())),
                kv("b", Value::BoolValue(true)),
                kv("i", Value::IntValue(-3)),
                kv("d", Value::DoubleValue(1.5)),
                kv("raw", Value::BytesValue(vec![1])),
            ],
            ..Default::default()
        };
        let bytes = res.encode_to_vec();
        let mut seen = Vec::new();
        for_each_attr(&bytes, RESOURCE_ATTRIBUTES, |k, v| {
            seen.push((String::from_utf8_lossy(k).into_owned(), v.get()))
        })
        .unwrap();
        let want = [
            ("s", AttrValue::Str("x")),
            ("b", AttrValue::Bool(true)),
            ("i", AttrValue::Int(-3)),
            ("d", AttrValue::Double(1.5)),
            ("raw", AttrValue::Other),
        ];
        assert_eq!(seen.len(), want.len());
        for ((k, v), (wk, wv)) in seen.iter().zip(want) {
            assert_eq!((k.as_str(), *v), (wk, wv));
        }
        assert_eq!(AttrValue::Double(1.0).tag_text().unwrap(), "1.0");
        assert_eq!(AttrValue::Int(7).tag_text().unwrap(), "7");
        assert_eq!(AttrValue::Bool(false).tag_text().unwrap(), "false");
        assert!(AttrValue::Other.tag_text().is_none());
    }

    #[test]
    fn truncated_attributes_error_without_panic() {
        let res = Resource {
            attributes: vec![kv("key", Value::StringValue("value".into()))],
            ..Default::default()
        };
        let bytes = res.encode_to_vec();
        for cut in 1..bytes.len() {
            let _ = for_each_attr(&bytes[..cut], RESOURCE_ATTRIBUTES, |_, _| {});
        }
        assert!(for_each_attr(b"\x0a\x05\x0a", RESOURCE_ATTRIBUTES, |_, _| {}).is_err());
    }

    #[test]
    fn json_strings_are_decoded_like_try_json_loads() {
        assert_eq!(json_str("\"LLM\""), "LLM");
        assert!(matches!(json_str("\"LLM\""), Cow::Borrowed(_)));
        assert_eq!(json_str("LLM"), "LLM");
        assert_eq!(json_str("\"a\\\"b\""), "a\"b");
        assert_eq!(json_str("\"caf\\u00e9\""), "café");
        assert_eq!(json_str("\""), "\"");
        assert_eq!(json_str("\"bad\\\""), "\"bad\\\"");
        assert_eq!(json_str("\"\""), "");
    }
}
