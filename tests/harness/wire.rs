//! Hand-encoded OTLP protobuf for the door tests: requests prost would refuse to build or to decode (strings that
//! are not UTF-8, `AnyValue`s nested thousands of levels deep). Everything is built iteratively from bytes — no
//! recursion, so a 12,000-deep value costs the test nothing.
//!
//! Field numbers (opentelemetry-proto): `ExportTraceServiceRequest.resource_spans` 1; `ResourceSpans.resource` 1,
//! `.scope_spans` 2; `Resource.attributes` 1; `ScopeSpans.scope` 1, `.spans` 2; `Span.name` 5, `.attributes` 9;
//! `KeyValue.key` 1, `.value` 2; `AnyValue.string_value` 1, `.array_value` 5, `.kvlist_value` 6;
//! `ArrayValue.values` 1; `KeyValueList.values` 1.

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::{Span, span};
use prost::Message;

/// Appends `v` as a protobuf varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Bytes of `v` as a varint.
pub fn varint_len(v: usize) -> usize {
    let mut n = 1;
    let mut v = v >> 7;
    while v != 0 {
        n += 1;
        v >>= 7;
    }
    n
}

/// The tag and length of a length-delimited field `number` (< 16: one tag byte).
fn header(out: &mut Vec<u8>, number: u32, len: usize) {
    put_varint(out, (u64::from(number) << 3) | 2);
    put_varint(out, len as u64);
}

/// A length-delimited field.
pub fn field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    header(&mut out, number, payload.len());
    out.extend_from_slice(payload);
    out
}

/// `AnyValue { string_value }` with arbitrary bytes (so invalid UTF-8 can be sent).
pub fn string_value(s: &[u8]) -> Vec<u8> {
    field(1, s)
}

/// `AnyValue { array_value { values } }` of already encoded `AnyValue`s.
pub fn array_value(values: &[Vec<u8>]) -> Vec<u8> {
    let inner: Vec<u8> = values.iter().flat_map(|v| field(1, v)).collect();
    field(5, &inner)
}

/// An encoded `KeyValue` with an already encoded `AnyValue`.
pub fn key_value(key: &str, value: &[u8]) -> Vec<u8> {
    [field(1, key.as_bytes()), field(2, value)].concat()
}

/// How a deep value nests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nest {
    /// `AnyValue { array_value { values: [inner] } }`
    Array,
    /// `AnyValue { kvlist_value { values: [{ key: "k", value: inner }] } }`
    Kvlist,
}

/// An `AnyValue` `depth` levels deep as the receiver counts them (a scalar is 1, an array of scalars 2): the
/// encoded `AnyValue` `leaf` wrapped `depth - 1` times. Every wrapper is a pure prefix (tags and lengths before
/// the inner value), so the lengths are computed inside out and the prefixes written outside in.
pub fn deep_value(nest: Nest, depth: usize, leaf: &[u8]) -> Vec<u8> {
    assert!(depth >= 1, "depth counts the leaf");
    let mut prefixes: Vec<Vec<u8>> = Vec::with_capacity(depth - 1);
    let mut inner_len = leaf.len();
    for _ in 1..depth {
        let mut p = Vec::with_capacity(16);
        match nest {
            Nest::Array => {
                let array_len = 1 + varint_len(inner_len) + inner_len;
                header(&mut p, 5, array_len);
                header(&mut p, 1, inner_len);
            }
            Nest::Kvlist => {
                let kv_len = 3 + 1 + varint_len(inner_len) + inner_len;
                let list_len = 1 + varint_len(kv_len) + kv_len;
                header(&mut p, 6, list_len);
                header(&mut p, 1, kv_len);
                p.extend_from_slice(&field(1, b"k"));
                header(&mut p, 2, inner_len);
            }
        }
        inner_len += p.len();
        prefixes.push(p);
    }
    let mut out = Vec::with_capacity(inner_len);
    for p in prefixes.iter().rev() {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(leaf);
    debug_assert_eq!(out.len(), inner_len);
    out
}

/// The same value in OTLP/JSON (`leaf` is a JSON `AnyValue` such as `{"stringValue":"x"}`), built as text: a
/// serde_json `Value` this deep would overflow the test's own stack when serialized.
pub fn deep_json_value(nest: Nest, depth: usize, leaf: &str) -> String {
    let (open, close) = match nest {
        Nest::Array => (r#"{"arrayValue":{"values":["#, "]}}"),
        Nest::Kvlist => (r#"{"kvlistValue":{"values":[{"key":"k","value":"#, "}]}}"),
    };
    let levels = depth.saturating_sub(1);
    let mut s = String::with_capacity(levels * (open.len() + close.len()) + leaf.len());
    for _ in 0..levels {
        s.push_str(open);
    }
    s.push_str(leaf);
    for _ in 0..levels {
        s.push_str(close);
    }
    s
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// An encoded `Span`: ids verbatim, `name` as raw bytes (may be invalid UTF-8), `attrs` already encoded
/// `KeyValue`s, a 1 ms duration ending now.
pub fn span(
    trace_id: &[u8],
    span_id: &[u8],
    parent: Option<&[u8]>,
    name: &[u8],
    attrs: &[Vec<u8>],
) -> Vec<u8> {
    let now = now_nanos();
    let mut out = Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: parent.map(<[u8]>::to_vec).unwrap_or_default(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: now - 1_000_000,
        end_time_unix_nano: now,
        ..Default::default()
    }
    .encode_to_vec();
    out.extend(field(5, name));
    for a in attrs {
        out.extend(field(9, a));
    }
    out
}

/// An encoded `ExportTraceServiceRequest` with one resource (attributes `resource_attrs`, encoded `KeyValue`s)
/// and one scope holding `spans` (encoded `Span`s).
pub fn request(resource_attrs: &[Vec<u8>], spans: &[Vec<u8>]) -> Vec<u8> {
    let resource: Vec<u8> = resource_attrs.iter().flat_map(|kv| field(1, kv)).collect();
    let scope = InstrumentationScope {
        name: "spanpipe.e2e.wire".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut scope_spans = field(1, &scope);
    for s in spans {
        scope_spans.extend(field(2, s));
    }
    let mut resource_spans = field(1, &resource);
    resource_spans.extend(field(2, &scope_spans));
    field(1, &resource_spans)
}

/// `service.name = <service>` as an encoded `KeyValue`.
pub fn service_name(service: &str) -> Vec<u8> {
    key_value("service.name", &string_value(service.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};

    /// Depth as the receiver counts it, walked iteratively.
    fn depth_of(v: &AnyValue) -> usize {
        let mut d = 1;
        let mut cur = v;
        loop {
            let next = match &cur.value {
                Some(Value::ArrayValue(a)) => a.values.first(),
                Some(Value::KvlistValue(l)) => l.values.first().and_then(|kv| kv.value.as_ref()),
                _ => None,
            };
            match next {
                Some(n) => {
                    d += 1;
                    cur = n;
                }
                None => return d,
            }
        }
    }

    #[test]
    fn hand_encoded_values_decode_with_prost() {
        for nest in [Nest::Array, Nest::Kvlist] {
            for depth in [1, 2, 5, 30] {
                let raw = deep_value(nest, depth, &string_value(b"leaf"));
                let v = AnyValue::decode(raw.as_slice()).expect("decodes");
                assert_eq!(depth_of(&v), depth, "{nest:?} {depth}");
            }
        }
        let v = AnyValue::decode(array_value(&[string_value(b"a"), string_value(b"b")]).as_slice())
            .expect("array");
        assert!(matches!(v.value, Some(Value::ArrayValue(a)) if a.values.len() == 2));
        // A 200-byte inner length needs a two-byte varint: lengths must still add up.
        let long = string_value(&[b'x'; 200]);
        let v = AnyValue::decode(deep_value(Nest::Kvlist, 3, &long).as_slice()).expect("long");
        assert_eq!(depth_of(&v), 3);
    }

    #[test]
    fn hand_encoded_requests_decode_with_prost() {
        let attr = key_value("a", &deep_value(Nest::Array, 4, &string_value(b"x")));
        let s = span(&[1; 16], &[2; 8], Some(&[3; 8]), b"name", &[attr]);
        let body = request(&[service_name("svc")], &[s.clone(), s]);
        let r = ExportTraceServiceRequest::decode(body.as_slice()).expect("decodes");
        let spans = &r.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].name, "name");
        assert_eq!(spans[0].parent_span_id, vec![3; 8]);
        assert_eq!(spans[0].attributes[0].key, "a");
        // Invalid UTF-8 in the name: prost refuses it, as the receiver's door must.
        let bad = request(&[], &[span(&[1; 16], &[2; 8], None, b"bad \xff", &[])]);
        assert!(ExportTraceServiceRequest::decode(bad.as_slice()).is_err());
        let json = deep_json_value(Nest::Kvlist, 3, r#"{"stringValue":"x"}"#);
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(
            parsed["kvlistValue"]["values"][0]["value"]["kvlistValue"]["values"][0]["value"]["stringValue"],
            "x"
        );
    }
}
