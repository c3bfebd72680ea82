//! Attribute lookup on an encoded OTLP `Resource` without decoding it.
//!
//! Kept in this crate (not `spanpipe-core::wire`) because only routing needs it today; it is self-contained and
//! can move to core as soon as a second component wants it.

use spanpipe_core::wire::{Field, Reader, WireError};

/// A scalar attribute value borrowed from the encoded message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttrValue<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Double(f64),
    /// Arrays, key-value lists and bytes: never an experiment.
    Other,
}

impl AttrValue<'_> {
    /// The value as routing text: strings as they are, integers in decimal; anything else is not usable.
    pub fn as_text(&self) -> Option<String> {
        match self {
            AttrValue::Str(s) => Some((*s).to_string()),
            AttrValue::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }
}

/// The value of attribute `key` of an encoded `Resource` (field 1 holds its `KeyValue` attributes); the first
/// occurrence wins, as in the OTel SDKs.
pub fn resource_attribute<'a>(
    resource: &'a [u8],
    key: &str,
) -> Result<Option<AttrValue<'a>>, WireError> {
    let mut r = Reader::new(resource);
    while let Some((n, f)) = r.next_field()? {
        if n != 1 {
            continue;
        }
        if let Some(v) = key_value(f.bytes("resource.attributes")?, key)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// `KeyValue { 1: key, 2: AnyValue }`: the value when the key matches.
fn key_value<'a>(kv: &'a [u8], key: &str) -> Result<Option<AttrValue<'a>>, WireError> {
    let mut r = Reader::new(kv);
    let mut matched = false;
    let mut value: Option<&'a [u8]> = None;
    while let Some((n, f)) = r.next_field()? {
        match n {
            1 => matched = f.bytes("attribute.key")? == key.as_bytes(),
            2 => value = Some(f.bytes("attribute.value")?),
            _ => {}
        }
    }
    if !matched {
        return Ok(None);
    }
    // A key without a value is an empty AnyValue: present, but not usable.
    let Some(value) = value else {
        return Ok(Some(AttrValue::Other));
    };
    any_value(value).map(Some)
}

/// `AnyValue`'s oneof: 1 string, 2 bool, 3 int64, 4 double; the rest are structured.
fn any_value(buf: &[u8]) -> Result<AttrValue<'_>, WireError> {
    let mut r = Reader::new(buf);
    let mut out = AttrValue::Other;
    while let Some((n, f)) = r.next_field()? {
        out = match (n, f) {
            (1, Field::Bytes(b)) => std::str::from_utf8(b)
                .map(AttrValue::Str)
                .map_err(|_| WireError::new("attribute string is not UTF-8"))?,
            (2, Field::Varint(v)) => AttrValue::Bool(v != 0),
            (3, Field::Varint(v)) => AttrValue::Int(v as i64),
            (4, Field::Fixed64(v)) => AttrValue::Double(f64::from_bits(v)),
            _ => AttrValue::Other,
        };
    }
    Ok(out)
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
    fn finds_strings_ints_and_ignores_other_types() {
        let res = Resource {
            attributes: vec![
                kv("service.name", Value::StringValue("agent".into())),
                kv("exp.id", Value::IntValue(42)),
                kv("flag", Value::BoolValue(true)),
                kv("service.name", Value::StringValue("second".into())),
                kv("bytes", Value::BytesValue(vec![1, 2])),
            ],
            ..Default::default()
        }
        .encode_to_vec();
        let get = |k| resource_attribute(&res, k).unwrap();
        assert_eq!(get("service.name"), Some(AttrValue::Str("agent")));
        assert_eq!(
            get("exp.id").and_then(|v| v.as_text()).as_deref(),
            Some("42")
        );
        assert_eq!(get("flag"), Some(AttrValue::Bool(true)));
        assert_eq!(get("flag").and_then(|v| v.as_text()), None);
        assert_eq!(get("bytes"), Some(AttrValue::Other));
        assert_eq!(get("missing"), None);
        assert_eq!(resource_attribute(&[], "x").unwrap(), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(resource_attribute(b"\x0a\xff", "x").is_err());
        // attributes { key: "k", value { string_value: 0xff } }: not UTF-8.
        let bad = [0x0a, 0x08, 0x0a, 0x01, b'k', 0x12, 0x03, 0x0a, 0x01, 0xff];
        assert!(resource_attribute(&bad, "k").is_err());
        assert_eq!(resource_attribute(&bad, "other").unwrap(), None);
    }
}
