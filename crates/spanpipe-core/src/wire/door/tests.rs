use super::*;
use crate::wire::test_data::request;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use prost::Message;

/// Replaces the first occurrence of `marker` in `buf` by bytes of the same length (keeping every length valid).
fn poison(mut buf: Vec<u8>, marker: &[u8], with: &[u8]) -> Vec<u8> {
    assert_eq!(marker.len(), with.len());
    let at = buf
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("marker present");
    buf[at..at + marker.len()].copy_from_slice(with);
    buf
}

fn sval(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(s.into())),
    })
}

#[test]
fn a_valid_request_passes_and_counts() {
    let buf = request(3, 4).encode_to_vec();
    let r = check_traces(&buf, 32).unwrap();
    assert_eq!((r.spans, r.invalid_spans, r.first_error), (12, 0, None));
}

#[test]
fn invalid_utf8_anywhere_a_string_is_typed_fails_its_span() {
    let mut req = request(1, 3);
    let s = &mut req.resource_spans[0].scope_spans[0].spans[1];
    s.trace_state = "TSTATE".into();
    s.events.push(Event {
        name: "EVNAME".into(),
        attributes: vec![KeyValue {
            key: "EVKEY".into(),
            value: sval("EVVAL"),
            ..Default::default()
        }],
        ..Default::default()
    });
    s.links.push(Link {
        trace_id: vec![1; 16],
        span_id: vec![1; 8],
        trace_state: "LSTATE".into(),
        ..Default::default()
    });
    s.status.as_mut().unwrap().message = "STMSG".into();
    let clean = req.encode_to_vec();
    assert_eq!(check_traces(&clean, 32).unwrap().invalid_spans, 0);
    let span_cases: [&[u8]; 8] = [
        b"span-1", b"TSTATE", b"EVNAME", b"EVKEY", b"EVVAL", b"LSTATE", b"STMSG", b"gen_ai",
    ];
    for marker in span_cases {
        let mut with = marker.to_vec();
        with[0] = 0xff;
        let buf = poison(clean.clone(), marker, &with);
        let r = check_traces(&buf, 32).unwrap();
        assert_eq!(r.invalid_spans, 1, "{}", String::from_utf8_lossy(marker));
        assert!(r.first_error.unwrap().0.contains("UTF-8"));
        let out = drop_invalid_spans(&buf, 32).unwrap();
        assert_eq!(out.dropped, 1);
        let kept = ExportTraceServiceRequest::decode(out.payload.unwrap().as_slice()).unwrap();
        assert_eq!(kept.resource_spans[0].scope_spans[0].spans.len(), 2);
    }
    // The resource and the scope fail every span under them.
    for marker in [&b"svc-0"[..], b"scope-0"] {
        let mut with = marker.to_vec();
        with[0] = 0xff;
        let buf = poison(clean.clone(), marker, &with);
        let r = check_traces(&buf, 32).unwrap();
        assert_eq!(r.invalid_spans, 3, "{}", String::from_utf8_lossy(marker));
    }
    // A schema URL is request-level.
    assert!(check_traces(&poison(clean, b"https", b"\xffttps"), 32).is_err());
}

#[test]
fn deep_values_fail_by_depth_and_bad_ids_by_length() {
    let deep = crate::wire::value::tests::nested(60);
    let mut req = request(1, 2);
    let base = req.encode_to_vec();
    let mut kvb = Vec::new();
    crate::wire::put_bytes_field(&mut kvb, 1, b"deep");
    crate::wire::put_bytes_field(&mut kvb, 2, &deep);
    let mut span = req.resource_spans[0].scope_spans[0].spans[0].encode_to_vec();
    crate::wire::put_bytes_field(&mut span, 9, &kvb);
    req.resource_spans[0].scope_spans[0].spans[0] =
        opentelemetry_proto::tonic::trace::v1::Span::decode(
            &*req.resource_spans[0].scope_spans[0].spans[1].encode_to_vec(),
        )
        .unwrap();
    // Build a request by hand: the deep span, then a good one.
    let mut ss = Vec::new();
    crate::wire::put_bytes_field(&mut ss, 2, &span);
    crate::wire::put_bytes_field(
        &mut ss,
        2,
        &req.resource_spans[0].scope_spans[0].spans[1].encode_to_vec(),
    );
    let mut rs = Vec::new();
    crate::wire::put_bytes_field(&mut rs, 2, &ss);
    let mut buf = Vec::new();
    crate::wire::put_bytes_field(&mut buf, 1, &rs);
    let r = check_traces(&buf, 32).unwrap();
    assert_eq!((r.spans, r.invalid_spans), (2, 1));
    assert!(r.first_error.unwrap().0.contains("deeper than 32"));
    assert_eq!(
        check_traces(&buf, 64).unwrap().invalid_spans,
        1,
        "capped at MAX_DEPTH"
    );
    assert!(check_traces(&base, 32).unwrap().first_error.is_none());

    let mut req = request(1, 2);
    req.resource_spans[0].scope_spans[0].spans[0].span_id = vec![1; 7];
    let r = check_traces(&req.encode_to_vec(), 32).unwrap();
    assert!(r.first_error.unwrap().0.contains("span_id is 7 bytes"));
}

#[test]
fn broken_framing_is_an_error_and_mutations_never_panic() {
    assert!(check_traces(b"\x0a\xff\x01", 32).is_err());
    let bytes = request(2, 2).encode_to_vec();
    for cut in 0..bytes.len() {
        let _ = check_traces(&bytes[..cut], 32);
        let _ = drop_invalid_spans(&bytes[..cut], 32);
    }
    let mut x: u32 = 7;
    for _ in 0..2000 {
        let mut m = bytes.clone();
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let i = (x as usize) % m.len();
        m[i] ^= (x >> 16) as u8;
        if let Ok(r) = check_traces(&m, 32)
            && r.invalid_spans == 0
        {
            // What the door lets through, prost decodes.
            if let Err(e) = ExportTraceServiceRequest::decode(m.as_slice()) {
                panic!("{e} {m:?}");
            }
        }
    }
}

/// `leaf` wrapped in key-value lists to `depth` levels (a scalar is 1), with prost types (shallow enough for prost).
fn kvlist_around(depth: usize, leaf: Value) -> AnyValue {
    use opentelemetry_proto::tonic::common::v1::KeyValueList;
    let mut v = AnyValue { value: Some(leaf) };
    for _ in 1..depth {
        v = AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(v),
                    ..Default::default()
                }],
            })),
        };
    }
    v
}

fn kvlist_only(depth: usize) -> AnyValue {
    kvlist_around(depth, Value::StringValue("x".into()))
}

/// What the door lets through at the largest `max_attribute_depth` a prost decode still reads, at the deepest
/// place an attribute can sit (a span event) and in the costliest shape (key-value lists: three messages a level);
/// one level more is refused — and is exactly what prost could not decode.
#[test]
fn the_depth_cap_keeps_every_accepted_value_decodable() {
    let with_event_attr = |value: AnyValue| {
        let mut req = request(1, 1);
        req.resource_spans[0].scope_spans[0].spans[0].events = vec![Event {
            name: "e".into(),
            attributes: vec![KeyValue {
                key: "deep".into(),
                value: Some(value),
                ..Default::default()
            }],
            ..Default::default()
        }];
        req.encode_to_vec()
    };
    let at_cap = with_event_attr(kvlist_only(MAX_DEPTH));
    let r = check_traces(&at_cap, MAX_DEPTH).unwrap();
    assert_eq!(r.invalid_spans, 0, "{:?}", r.first_error);
    ExportTraceServiceRequest::decode(at_cap.as_slice()).expect("the door's largest value decodes");
    // The innermost list may also be empty (as deep as a scalar for the door): one message level more.
    let empty = with_event_attr(kvlist_around(
        MAX_DEPTH,
        Value::KvlistValue(Default::default()),
    ));
    assert_eq!(check_traces(&empty, MAX_DEPTH).unwrap().invalid_spans, 0);
    ExportTraceServiceRequest::decode(empty.as_slice()).expect("an empty innermost list decodes");

    let past = with_event_attr(kvlist_only(MAX_DEPTH + 1));
    assert_eq!(check_traces(&past, usize::MAX).unwrap().invalid_spans, 1);
    assert!(
        ExportTraceServiceRequest::decode(past.as_slice()).is_err(),
        "one level past the cap is past prost's recursion limit (why the cap is where it is)"
    );
}
