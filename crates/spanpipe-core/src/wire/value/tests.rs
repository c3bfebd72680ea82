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
