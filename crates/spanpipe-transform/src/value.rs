//! Attribute values read straight from encoded `AnyValue` bytes, without allocating, and the pdata conversions
//! the OTel Collector applies to them (`AsString`, the attribute matcher's string form).

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;
use spanpipe_core::wire::{Field, Reader, WireError};

/// A borrowed view of one `AnyValue`; arrays and maps stay encoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// No value set (OTLP "empty").
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    /// Encoded `ArrayValue`.
    Array(&'a [u8]),
    /// Encoded `KeyValueList`.
    Kvlist(&'a [u8]),
}

impl<'a> ValueRef<'a> {
    /// Reads an encoded `AnyValue` (the last oneof field wins, as in protobuf).
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let mut v = ValueRef::Empty;
        let mut r = Reader::new(buf);
        while let Some((n, f)) = r.next_field()? {
            v = match n {
                1 => ValueRef::Str(utf8(f.bytes("string_value")?)?),
                2 => ValueRef::Bool(f.varint("bool_value")? != 0),
                3 => ValueRef::Int(f.varint("int_value")? as i64),
                4 => ValueRef::Double(f64::from_bits(f.fixed64("double_value")?)),
                5 => ValueRef::Array(f.bytes("array_value")?),
                6 => ValueRef::Kvlist(f.bytes("kvlist_value")?),
                7 => ValueRef::Bytes(f.bytes("bytes_value")?),
                _ => v,
            };
        }
        Ok(v)
    }

    /// A view of an owned value.
    pub fn of(value: &'a AnyValue) -> Self {
        match &value.value {
            None => ValueRef::Empty,
            Some(any_value::Value::StringValue(s)) => ValueRef::Str(s),
            Some(any_value::Value::BoolValue(b)) => ValueRef::Bool(*b),
            Some(any_value::Value::IntValue(i)) => ValueRef::Int(*i),
            Some(any_value::Value::DoubleValue(d)) => ValueRef::Double(*d),
            Some(any_value::Value::BytesValue(b)) => ValueRef::Bytes(b),
            // Nested values are rare in conditions; encode them to keep one borrowed representation.
            Some(any_value::Value::ArrayValue(_))
            | Some(any_value::Value::KvlistValue(_))
            | Some(any_value::Value::StringValueStrindex(_)) => ValueRef::Empty,
        }
    }

    /// pdata's `Value.AsString()`: strings as is, numbers and booleans as JSON would print them, bytes as
    /// base64, arrays and maps as JSON, empty as "".
    pub fn as_string(&self) -> String {
        match self {
            ValueRef::Empty => String::new(),
            ValueRef::Str(s) => (*s).to_string(),
            ValueRef::Bool(b) => b.to_string(),
            ValueRef::Int(i) => i.to_string(),
            ValueRef::Double(d) => format_double(*d),
            ValueRef::Bytes(b) => base64(b),
            ValueRef::Array(_) | ValueRef::Kvlist(_) => self.to_json().to_string(),
        }
    }

    /// The JSON form pdata gives a value (`AsRaw` then `json.Marshal`); undecodable nested bytes become null.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            ValueRef::Empty => J::Null,
            ValueRef::Str(s) => J::String((*s).to_string()),
            ValueRef::Bool(b) => J::Bool(*b),
            ValueRef::Int(i) => J::from(*i),
            ValueRef::Double(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
            ValueRef::Bytes(b) => J::String(base64(b)),
            ValueRef::Array(buf) => {
                let mut items = Vec::new();
                let _ = for_each_bytes(buf, 1, |v| {
                    items.push(ValueRef::parse(v).map_or(J::Null, |v| v.to_json()));
                });
                J::Array(items)
            }
            ValueRef::Kvlist(buf) => {
                let mut map = serde_json::Map::new();
                let _ = for_each_bytes(buf, 1, |kv| {
                    if let Ok((k, v)) = key_value(kv) {
                        let v = v.map_or(Ok(ValueRef::Empty), ValueRef::parse);
                        map.insert(k.to_string(), v.map_or(J::Null, |v| v.to_json()));
                    }
                });
                J::Object(map)
            }
        }
    }

    /// The owned value (nested values are decoded from their bytes).
    pub fn to_owned_value(&self) -> AnyValue {
        let v = match self {
            ValueRef::Empty => None,
            ValueRef::Str(s) => Some(any_value::Value::StringValue((*s).to_string())),
            ValueRef::Bool(b) => Some(any_value::Value::BoolValue(*b)),
            ValueRef::Int(i) => Some(any_value::Value::IntValue(*i)),
            ValueRef::Double(d) => Some(any_value::Value::DoubleValue(*d)),
            ValueRef::Bytes(b) => Some(any_value::Value::BytesValue(b.to_vec())),
            ValueRef::Array(b) => prost::Message::decode(*b)
                .ok()
                .map(any_value::Value::ArrayValue),
            ValueRef::Kvlist(b) => prost::Message::decode(*b)
                .ok()
                .map(any_value::Value::KvlistValue),
        };
        AnyValue { value: v }
    }
}

/// Strict equality of the OTel attribute matcher: same type and value (nested values compared by encoding).
pub fn values_equal(a: &ValueRef<'_>, b: &AnyValue) -> bool {
    match (a, &b.value) {
        (ValueRef::Str(x), Some(any_value::Value::StringValue(y))) => *x == y,
        (ValueRef::Bool(x), Some(any_value::Value::BoolValue(y))) => x == y,
        (ValueRef::Int(x), Some(any_value::Value::IntValue(y))) => x == y,
        (ValueRef::Double(x), Some(any_value::Value::DoubleValue(y))) => x == y,
        (ValueRef::Bytes(x), Some(any_value::Value::BytesValue(y))) => *x == y.as_slice(),
        (ValueRef::Array(x), Some(any_value::Value::ArrayValue(y))) => *x == y.encode_to_vec(),
        (ValueRef::Kvlist(x), Some(any_value::Value::KvlistValue(y))) => *x == y.encode_to_vec(),
        (ValueRef::Empty, None) => true,
        _ => false,
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`, the string form the attribute matcher's regexp mode uses.
pub fn format_double_plain(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    format!("{d}")
}

/// pdata's double `AsString`: JSON (ES6) number formatting; exponents below 1e-6 and from 1e21.
pub fn format_double(d: f64) -> String {
    if !d.is_finite() {
        return format_double_plain(d);
    }
    let a = d.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format!("{d:e}");
        return match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        };
    }
    format!("{d}")
}

/// Standard base64 with padding (pdata's string form of bytes).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Lower-case hex (trace and span ids, hashes).
pub fn hex(data: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

pub(crate) fn utf8(b: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(b).map_err(|_| WireError::new("string is not valid UTF-8"))
}

/// Calls `f` with the payload of every length-delimited field `number` of a message.
pub(crate) fn for_each_bytes<'a>(
    buf: &'a [u8],
    number: u32,
    mut f: impl FnMut(&'a [u8]),
) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while let Some((n, field)) = r.next_field()? {
        if n == number
            && let Field::Bytes(b) = field
        {
            f(b);
        }
    }
    Ok(())
}

/// The raw key bytes and encoded value (if any) of an encoded `KeyValue`.
fn raw_key_value(buf: &[u8]) -> Result<(&[u8], Option<&[u8]>), WireError> {
    let mut key: &[u8] = &[];
    let mut value = None;
    let mut r = Reader::new(buf);
    while let Some((n, f)) = r.next_field()? {
        match n {
            1 => key = f.bytes("key")?,
            2 => value = Some(f.bytes("value")?),
            _ => {}
        }
    }
    Ok((key, value))
}

/// The key and encoded value (if any) of an encoded `KeyValue`.
pub(crate) fn key_value(buf: &[u8]) -> Result<(&str, Option<&[u8]>), WireError> {
    let mut key: &[u8] = &[];
    let mut value = None;
    let mut r = Reader::new(buf);
    while let Some((n, f)) = r.next_field()? {
        match n {
            1 => key = f.bytes("key")?,
            2 => value = Some(f.bytes("value")?),
            _ => {}
        }
    }
    Ok((utf8(key)?, value))
}

/// The value of the first attribute named `key` in a message whose field `number` holds `KeyValue`s (span
/// attributes are field 9, resource and scope attributes field 1 of theirs).
pub fn find_attribute<'a>(
    msg: &'a [u8],
    number: u32,
    key: &str,
) -> Result<Option<ValueRef<'a>>, WireError> {
    let mut r = Reader::new(msg);
    while let Some((n, f)) = r.next_field()? {
        if n != number {
            continue;
        }
        // Compare key bytes first: no UTF-8 check or value parse for the attributes that do not match.
        let (k, v) = raw_key_value(f.bytes("attributes")?)?;
        if k == key.as_bytes() {
            return Ok(Some(match v {
                Some(v) => ValueRef::parse(v)?,
                None => ValueRef::Empty,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{kv, s};
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    #[test]
    fn parse_every_type() {
        let cases = [
            (s("x"), ValueRef::Str("x")),
            (
                AnyValue {
                    value: Some(any_value::Value::BoolValue(true)),
                },
                ValueRef::Bool(true),
            ),
            (
                AnyValue {
                    value: Some(any_value::Value::IntValue(-5)),
                },
                ValueRef::Int(-5),
            ),
            (
                AnyValue {
                    value: Some(any_value::Value::DoubleValue(1.5)),
                },
                ValueRef::Double(1.5),
            ),
            (AnyValue { value: None }, ValueRef::Empty),
        ];
        for (owned, view) in cases {
            let enc = owned.encode_to_vec();
            assert_eq!(ValueRef::parse(&enc).unwrap(), view);
            assert!(values_equal(&view, &owned));
            assert_eq!(view.to_owned_value(), owned);
        }
        assert!(!values_equal(
            &ValueRef::Int(1),
            &AnyValue {
                value: Some(any_value::Value::DoubleValue(1.0))
            }
        ));
    }

    #[test]
    fn as_string_follows_pdata() {
        assert_eq!(ValueRef::Double(1.0).as_string(), "1");
        assert_eq!(ValueRef::Double(2.5).as_string(), "2.5");
        assert_eq!(ValueRef::Double(1e21).as_string(), "1e+21");
        assert_eq!(ValueRef::Double(1e-7).as_string(), "1e-7");
        assert_eq!(ValueRef::Bool(false).as_string(), "false");
        assert_eq!(ValueRef::Bytes(b"hello").as_string(), "aGVsbG8=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
        let arr = ArrayValue {
            values: vec![s("a"), s("b")],
        }
        .encode_to_vec();
        assert_eq!(ValueRef::Array(&arr).as_string(), r#"["a","b"]"#);
        let map = KeyValueList {
            values: vec![kv("k", s("v"))],
        }
        .encode_to_vec();
        assert_eq!(ValueRef::Kvlist(&map).as_string(), r#"{"k":"v"}"#);
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
    }

    #[test]
    fn find_attribute_reads_the_first_match_and_survives_garbage() {
        let mut msg = Vec::new();
        for a in [kv("a", s("1")), kv("b", s("2")), kv("a", s("3"))] {
            spanpipe_core::wire::put_bytes_field(&mut msg, 9, &a.encode_to_vec());
        }
        assert_eq!(
            find_attribute(&msg, 9, "a").unwrap(),
            Some(ValueRef::Str("1"))
        );
        assert_eq!(find_attribute(&msg, 9, "c").unwrap(), None);
        assert!(find_attribute(b"\x4a\xff", 9, "a").is_err());
    }
}
