use super::*;
use crate::wire::put_bytes_field;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// An array nested `depth` levels (the innermost holds a string): depth 1 is the bare string.
pub(crate) fn nested(depth: usize) -> Vec<u8> {
    let mut enc = AnyValue {
        value: Some(Value::StringValue("x".into())),
    }
    .encode_to_vec();
    for i in 1..depth {
        let mut list = Vec::new();
        if i % 2 == 0 {
            put_bytes_field(&mut list, 1, &enc);
            enc.clear();
            put_bytes_field(&mut enc, 5, &list);
        } else {
            let mut kvb = Vec::new();
            put_bytes_field(&mut kvb, 1, b"k");
            put_bytes_field(&mut kvb, 2, &enc);
            put_bytes_field(&mut list, 1, &kvb);
            enc.clear();
            put_bytes_field(&mut enc, 6, &list);
        }
    }
    enc
}

#[test]
fn reads_every_kind_in_order() {
    let res = Resource {
        attributes: vec![
            kv("s", Value::StringValue("x".into())),
            kv("b", Value::BoolValue(true)),
            kv("i", Value::IntValue(-3)),
            kv("d", Value::DoubleValue(1.5)),
            kv("raw", Value::BytesValue(vec![1])),
            KeyValue {
                key: "none".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
    .encode_to_vec();
    let mut seen = Vec::new();
    for_each_attr(&res, 1, |k, v| seen.push((k.to_vec(), v.parse().unwrap()))).unwrap();
    let want = [
        AnyValueRef::Str("x"),
        AnyValueRef::Bool(true),
        AnyValueRef::Int(-3),
        AnyValueRef::Double(1.5),
        AnyValueRef::Bytes(&[1]),
        AnyValueRef::Empty,
    ];
    assert_eq!(seen.iter().map(|(_, v)| *v).collect::<Vec<_>>(), want);
    assert_eq!(seen[0].0, b"s");
    assert_eq!(
        find_attr(&res, 1, "i").unwrap().unwrap().get(),
        AnyValueRef::Int(-3)
    );
    assert_eq!(find_attr(&res, 1, "missing").unwrap(), None);
    assert_eq!(find_attr(&[], 1, "x").unwrap(), None);
}

#[test]
fn lists_are_walked_without_recursion() {
    let arr = ArrayValue {
        values: vec![
            AnyValue {
                value: Some(Value::StringValue("a".into())),
            },
            AnyValue {
                value: Some(Value::IntValue(2)),
            },
        ],
    }
    .encode_to_vec();
    let mut items = Vec::new();
    for_each_item(&arr, |v| {
        items.push(v.parse()?);
        Ok(())
    })
    .unwrap();
    assert_eq!(items, [AnyValueRef::Str("a"), AnyValueRef::Int(2)]);
    let map = KeyValueList {
        values: vec![kv("k", Value::StringValue("v".into()))],
    }
    .encode_to_vec();
    let mut entries = Vec::new();
    for_each_entry(&map, |k, v| {
        entries.push((k.to_vec(), v.parse()?));
        Ok(())
    })
    .unwrap();
    assert_eq!(entries, [(b"k".to_vec(), AnyValueRef::Str("v"))]);
}

#[test]
fn invalid_utf8_and_garbage_are_errors_not_panics() {
    // attributes { key: "k", value { string_value: 0xff } }
    let bad = [0x0a, 0x08, 0x0a, 0x01, b'k', 0x12, 0x03, 0x0a, 0x01, 0xff];
    let v = find_attr(&bad, 1, "k").unwrap().unwrap();
    assert!(v.parse().is_err());
    assert_eq!(v.get(), AnyValueRef::Empty, "lenient readers see nothing");
    assert!(check_value(v, 32).is_err());
    assert!(find_attr(b"\x0a\xff", 1, "x").is_err());
    assert!(for_each_attr(b"\x0a\x05\x0a", 1, |_, _| {}).is_err());
    let res = Resource {
        attributes: vec![kv("key", Value::StringValue("value".into()))],
        ..Default::default()
    }
    .encode_to_vec();
    for cut in 1..res.len() {
        let _ = for_each_attr(&res[..cut], 1, |_, v| {
            let _ = check_value(v, 32);
        });
    }
}

#[test]
fn depth_is_checked_iteratively_at_any_depth() {
    for d in [1, 2, 3, 31, 32] {
        assert!(
            check_value(RawValue::new(&nested(d)), 32).is_ok(),
            "depth {d}"
        );
    }
    for d in [33, 60, 12_000] {
        let err = check_value(RawValue::new(&nested(d)), 32).unwrap_err();
        assert!(err.0.contains("deeper than 32"), "{err}");
    }
    assert!(check_value(RawValue::new(&nested(2)), 1).is_err());
    assert!(check_value(RawValue::new(&nested(1)), 1).is_ok());
    // An invalid key deep inside a map.
    let mut kvb = Vec::new();
    put_bytes_field(&mut kvb, 1, b"\xff");
    let mut list = Vec::new();
    put_bytes_field(&mut list, 1, &kvb);
    let mut v = Vec::new();
    put_bytes_field(&mut v, 6, &list);
    assert!(check_value(RawValue::new(&v), 32).is_err());
}

/// [`short_kv`] whose value is a one-byte-length string: the key, the encoded `AnyValue` and the string.
fn short_string_kv(kv: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (key, value) = short_kv(kv)?;
    Some((key, value, short_string(value)?))
}

/// Attributes of the shapes the short-string fast path must take or leave to the field-by-field path.
fn kv_shapes() -> Vec<Vec<u8>> {
    let long = "x".repeat(130);
    let mut shapes: Vec<Vec<u8>> = [
        kv("gen_ai.request.model", Value::StringValue("gpt-4o".into())),
        kv("", Value::StringValue(String::new())),
        kv("k", Value::StringValue(long.clone())),
        kv(&long, Value::StringValue("v".into())),
        kv("n", Value::IntValue(7)),
        kv("b", Value::BoolValue(true)),
        kv("d", Value::DoubleValue(1.5)),
        kv("é", Value::StringValue("ü".into())),
        KeyValue {
            key: "none".into(),
            value: None,
            ..Default::default()
        },
    ]
    .iter()
    .map(|k| k.encode_to_vec())
    .collect();
    // Hand-made: a second value, a string plus an int in one AnyValue, a trailing unknown field, a key index.
    shapes.push(b"\x0a\x01k\x12\x03\x0a\x01a\x12\x03\x0a\x01b".to_vec());
    shapes.push(b"\x0a\x01k\x12\x05\x0a\x01a\x18\x01".to_vec());
    shapes.push(b"\x0a\x01k\x12\x03\x0a\x01a\x28\x01".to_vec());
    shapes.push(b"\x0a\x01k\x12\x03\x0a\x01a\x18\x02".to_vec());
    shapes.push(b"\x0a\x01\xff\x12\x03\x0a\x01a".to_vec());
    shapes.push(b"\x0a\x01k\x12\x03\x0a\x01\xff".to_vec());
    shapes
}

/// Every prefix, every single-byte change and every truncation of `enc`, plus `enc` itself: deterministic, and
/// dense around the one-byte lengths the fast path trusts.
fn mutations(enc: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![enc.to_vec()];
    for cut in 0..enc.len() {
        out.push(enc[..cut].to_vec());
    }
    for i in 0..enc.len().min(24) {
        for b in [0x00, 0x01, 0x02, 0x0a, 0x12, 0x7f, 0x80, 0x81, 0xff] {
            let mut m = enc.to_vec();
            m[i] = b;
            out.push(m);
        }
    }
    out
}

#[test]
fn the_short_string_fast_path_answers_as_the_field_by_field_path_does() {
    let (mut fast_taken, mut other_fast_taken) = (0, 0);
    for shape in kv_shapes() {
        for m in mutations(&shape) {
            if short_string_kv(&m).is_some() {
                fast_taken += 1;
            }
            if short_kv(&m).is_some() && short_string_kv(&m).is_none() {
                other_fast_taken += 1;
            }
            assert_eq!(
                key_value(&m).map_err(|e| e.to_string()),
                key_value_fields(&m).map_err(|e| e.to_string()),
                "key_value of {m:02x?}"
            );
            assert_eq!(
                check_key_value(&m, MAX_DEPTH).map_err(|e| e.to_string()),
                check_key_value_fields(&m, MAX_DEPTH).map_err(|e| e.to_string()),
                "check_key_value of {m:02x?}"
            );
            if let Ok((_, v)) = key_value_fields(&m) {
                // Compared as printed: a NaN double is not equal to itself.
                assert_eq!(
                    format!("{:?}", AnyValueRef::parse(v.bytes())),
                    format!("{:?}", AnyValueRef::parse_fields(v.bytes())),
                    "AnyValue of {m:02x?}"
                );
            }
        }
    }
    // The comparison means something only if the fast path ran on many of the inputs.
    assert!(fast_taken > 20, "fast path taken {fast_taken} times");
    assert!(
        other_fast_taken > 20,
        "non-string fast path taken {other_fast_taken} times"
    );
}

#[test]
fn the_fast_path_takes_the_usual_attribute_and_leaves_the_rest() {
    let usual = kv("mlflow.spanType", Value::StringValue("\"LLM\"".into())).encode_to_vec();
    let (k, v, s) = short_string_kv(&usual).unwrap();
    assert_eq!((k, s), (&b"mlflow.spanType"[..], &b"\"LLM\""[..]));
    assert_eq!(v, &usual[usual.len() - v.len()..]);
    for other in [
        kv("k", Value::IntValue(1)),
        kv("k", Value::StringValue("x".repeat(200))),
    ] {
        assert!(short_string_kv(&other.encode_to_vec()).is_none());
    }
    let int = kv("gen_ai.usage.input_tokens", Value::IntValue(412)).encode_to_vec();
    let (k, v) = short_kv(&int).unwrap();
    assert_eq!(k, b"gen_ai.usage.input_tokens");
    assert_eq!(RawValue::new(v).parse().unwrap(), AnyValueRef::Int(412));
    let long = kv("k", Value::StringValue("x".repeat(200))).encode_to_vec();
    assert!(short_kv(&long).is_none());
}
