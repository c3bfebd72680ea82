//! The pdata conversions the OTel Collector applies to attribute values (`AsString`, `AsRaw` + JSON, the attribute
//! matcher's string form). Values themselves are read by the shared wire layer ([`spanpipe_core::wire`]): this
//! module decodes nothing.

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;
use spanpipe_core::wire::{MAX_DEPTH, for_each_entry, for_each_item, utf8};

/// A borrowed view of one `AnyValue` (the wire layer's); arrays and maps stay encoded.
pub use spanpipe_core::wire::AnyValueRef as ValueRef;

/// A view of an owned value. Nested values are rare in conditions and read as empty.
pub fn value_of(value: &AnyValue) -> ValueRef<'_> {
    match &value.value {
        None => ValueRef::Empty,
        Some(any_value::Value::StringValue(s)) => ValueRef::Str(s),
        Some(any_value::Value::BoolValue(b)) => ValueRef::Bool(*b),
        Some(any_value::Value::IntValue(i)) => ValueRef::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => ValueRef::Double(*d),
        Some(any_value::Value::BytesValue(b)) => ValueRef::Bytes(b),
        Some(any_value::Value::ArrayValue(_))
        | Some(any_value::Value::KvlistValue(_))
        | Some(any_value::Value::StringValueStrindex(_)) => ValueRef::Empty,
    }
}

/// The pdata conversions of a value view.
pub trait ValueExt {
    /// pdata's `Value.AsString()`: strings as is, numbers and booleans as JSON would print them, bytes as
    /// base64, arrays and maps as JSON, empty as "".
    fn as_string(&self) -> String;
    /// The JSON form pdata gives a value (`AsRaw` then `json.Marshal`). Nested values are followed to
    /// [`MAX_DEPTH`] levels (the deepest the receiver lets in); anything deeper or undecodable becomes null.
    fn to_json(&self) -> serde_json::Value;
    /// The owned value (nested values are decoded from their bytes; undecodable ones become empty).
    fn to_owned_value(&self) -> AnyValue;
}

impl ValueExt for ValueRef<'_> {
    fn as_string(&self) -> String {
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

    fn to_json(&self) -> serde_json::Value {
        to_json(self, MAX_DEPTH)
    }

    fn to_owned_value(&self) -> AnyValue {
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

/// `to_json` with an explicit depth budget: each nested level spends one, so the recursion is at most
/// [`MAX_DEPTH`] frames whatever the input.
fn to_json(v: &ValueRef<'_>, budget: usize) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        ValueRef::Empty => J::Null,
        ValueRef::Str(s) => J::String((*s).to_string()),
        ValueRef::Bool(b) => J::Bool(*b),
        ValueRef::Int(i) => J::from(*i),
        ValueRef::Double(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        ValueRef::Bytes(b) => J::String(base64(b)),
        ValueRef::Array(_) | ValueRef::Kvlist(_) if budget <= 1 => J::Null,
        ValueRef::Array(buf) => {
            let mut items = Vec::new();
            let _ = for_each_item(buf, |v| {
                items.push(v.parse().map_or(J::Null, |v| to_json(&v, budget - 1)));
                Ok(())
            });
            J::Array(items)
        }
        ValueRef::Kvlist(buf) => {
            let mut map = serde_json::Map::new();
            let _ = for_each_entry(buf, |k, v| {
                if let Ok(k) = utf8(k) {
                    map.insert(
                        k.to_string(),
                        v.parse().map_or(J::Null, |v| to_json(&v, budget - 1)),
                    );
                }
                Ok(())
            });
            J::Object(map)
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{kv, s};
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use spanpipe_core::wire::find_attr;

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
    fn find_attr_reads_the_first_match_and_survives_garbage() {
        let mut msg = Vec::new();
        for a in [kv("a", s("1")), kv("b", s("2")), kv("a", s("3"))] {
            spanpipe_core::wire::put_bytes_field(&mut msg, 9, &a.encode_to_vec());
        }
        assert_eq!(
            find_attr(&msg, 9, "a").unwrap().map(|v| v.get()),
            Some(ValueRef::Str("1"))
        );
        assert_eq!(find_attr(&msg, 9, "c").unwrap(), None);
        assert!(find_attr(b"\x4a\xff", 9, "a").is_err());
    }
}

#[cfg(test)]
mod deep_tests {
    use super::*;

    #[test]
    fn to_json_of_a_value_deeper_than_any_budget_does_not_overflow() {
        // 100,000 levels: nulls past MAX_DEPTH, no stack overflow.
        let mut enc = Vec::new();
        spanpipe_core::wire::put_bytes_field(&mut enc, 1, b"x");
        for _ in 0..100_000 {
            let mut list = Vec::new();
            spanpipe_core::wire::put_bytes_field(&mut list, 1, &enc);
            enc.clear();
            spanpipe_core::wire::put_bytes_field(&mut enc, 5, &list);
        }
        let v = ValueRef::parse(&enc).unwrap();
        let j = v.to_json();
        assert!(j.is_array());
        assert!(v.as_string().contains("null"));
    }
}
