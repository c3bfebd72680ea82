//! Requests the fuzz target `wire_door` found (or that were written while fixing what it found) where the door and
//! a prost decode disagreed: each must now be refused, or admitted and decodable; and `drop` must remove exactly
//! the spans the door refused, leaving a request that passes the door and decodes.

use super::*;
use crate::wire::{bytes_field, put_bytes_field, put_varint};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fn ld(n: u32, payload: &[u8]) -> Vec<u8> {
    bytes_field(n, payload)
}

fn varint_field(n: u32, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, u64::from(n) << 3);
    put_varint(&mut out, v);
    out
}

/// A valid span with `extra` fields appended.
fn span(extra: &[u8]) -> Vec<u8> {
    let mut s = ld(1, &[7; 16]);
    s.extend(ld(2, &[8; 8]));
    s.extend(ld(5, b"n"));
    s.extend_from_slice(extra);
    s
}

/// One resource (`resource`, then `rs_extra`) with one scope (`scope`, `ss_extra`) holding `spans`.
fn request(spans: &[Vec<u8>], resource: &[u8], rs_extra: &[u8], ss_extra: &[u8]) -> Vec<u8> {
    let mut ss = ld(1, b"");
    for s in spans {
        put_bytes_field(&mut ss, 2, s);
    }
    ss.extend_from_slice(ss_extra);
    let mut rs = ld(1, resource);
    put_bytes_field(&mut rs, 2, &ss);
    rs.extend_from_slice(rs_extra);
    ld(1, &rs)
}

fn attr(kv: &[u8]) -> Vec<u8> {
    ld(9, kv)
}

fn string_value(s: &[u8]) -> Vec<u8> {
    ld(1, s)
}

/// The door's promise on one request, under both policies.
fn holds(buf: &[u8]) -> Result<DoorReport, WireError> {
    let report = check_traces(buf, 32);
    let Ok(r) = &report else {
        return report;
    };
    if r.invalid_spans == 0 {
        assert!(r.first_error.is_none());
        ExportTraceServiceRequest::decode(buf).expect("admitted, so prost decodes it");
        return report;
    }
    let out = drop_invalid_spans(buf, 32).expect("drop");
    assert_eq!(
        out.dropped, r.invalid_spans,
        "drop removed other spans than the door refused"
    );
    let kept = out.payload.as_deref().unwrap_or(buf);
    let again = check_traces(kept, 32).expect("what drop keeps passes the door");
    assert_eq!(again.invalid_spans, 0);
    ExportTraceServiceRequest::decode(kept).expect("what drop keeps decodes");
    report
}

fn invalid_spans(buf: &[u8]) -> usize {
    holds(buf).expect("framing is fine").invalid_spans
}

#[test]
fn every_occurrence_of_a_key_or_value_is_checked() {
    // Readers keep the last key / value of a KeyValue; prost validates every occurrence.
    let mut kv = ld(1, b"\xff");
    kv.extend(ld(1, b"ok"));
    kv.extend(ld(2, &string_value(b"v")));
    assert_eq!(
        invalid_spans(&request(&[span(&attr(&kv))], b"", b"", b"")),
        1
    );

    let mut kv = ld(1, b"k");
    kv.extend(ld(2, &string_value(b"\xff")));
    kv.extend(ld(2, &string_value(b"v")));
    assert_eq!(
        invalid_spans(&request(&[span(&attr(&kv))], b"", b"", b"")),
        1
    );

    // An array (with a bad element) later replaced by an int in the oneof.
    let mut value = ld(5, &ld(1, &string_value(b"\xff")));
    value.extend(varint_field(3, 5));
    let mut kv = ld(1, b"k");
    kv.extend(ld(2, &value));
    assert_eq!(
        invalid_spans(&request(&[span(&attr(&kv))], b"", b"", b"")),
        1
    );
}

#[test]
fn dictionary_index_fields_have_their_wire_types() {
    // AnyValue.string_value_strindex (8) and KeyValue.key_strindex (3) are int32s.
    let mut kv = ld(1, b"k");
    kv.extend(ld(2, &ld(8, b"zz")));
    assert_eq!(
        invalid_spans(&request(&[span(&attr(&kv))], b"", b"", b"")),
        1
    );

    let mut entry = ld(1, b"a");
    entry.extend(ld(2, &string_value(b"b")));
    entry.extend(ld(3, b"x"));
    let mut kv = ld(1, b"k");
    kv.extend(ld(2, &ld(6, &ld(1, &entry))));
    assert_eq!(
        invalid_spans(&request(&[span(&attr(&kv))], b"", b"", b"")),
        1
    );

    // As varints they are fine.
    let mut kv = ld(1, b"k");
    kv.extend(ld(2, &varint_field(8, 3)));
    kv.extend(varint_field(3, 4));
    assert_eq!(
        invalid_spans(&request(&[span(&attr(&kv))], b"", b"", b"")),
        0
    );
}

#[test]
fn a_varint_past_64_bits_is_refused() {
    // kind = a 10-byte varint whose last byte carries more than bit 63.
    let mut extra = Vec::new();
    put_varint(&mut extra, 6 << 3);
    extra.extend([0xff; 9]);
    extra.push(0x7f);
    assert_eq!(invalid_spans(&request(&[span(&extra)], b"", b"", b"")), 1);
    // Bit 63 alone is a valid u64.
    let mut extra = Vec::new();
    put_varint(&mut extra, 6 << 3);
    put_varint(&mut extra, u64::MAX);
    assert_eq!(invalid_spans(&request(&[span(&extra)], b"", b"", b"")), 0);
}

#[test]
fn an_invalid_resource_or_scope_without_spans_refuses_the_request() {
    let mut bad_kv = ld(1, b"\xff");
    bad_kv.extend(ld(2, &string_value(b"v")));
    let bad_resource = ld(1, &bad_kv);
    // Nothing to drop it with: refused whole.
    assert!(holds(&request(&[], &bad_resource, b"", b"")).is_err());
    assert!(holds(&ld(1, &ld(2, &ld(1, &ld(1, b"\xff"))))).is_err());
}

#[test]
fn drop_removes_exactly_what_the_door_refused_with_repeated_resources_and_scopes() {
    let mut bad_kv = ld(1, b"\xff");
    bad_kv.extend(ld(2, &string_value(b"v")));
    // A second resource / scope occurrence (prost merges them) is the invalid one.
    let second_resource = ld(1, &ld(1, &bad_kv));
    assert_eq!(
        invalid_spans(&request(
            &[span(b""), span(b"")],
            b"",
            &second_resource,
            b""
        )),
        2
    );
    let second_scope = ld(1, &ld(1, b"\xff"));
    assert_eq!(
        invalid_spans(&request(&[span(b"")], b"", b"", &second_scope)),
        1
    );

    // An invalid resource whose spans are all dropped but which keeps a span-less scope: the scope stays, with
    // an empty resource.
    let bad_resource = ld(1, &bad_kv);
    let mut ss_empty = ld(1, b"");
    ss_empty.extend(ld(3, b"https://schema"));
    let mut ss = ld(1, b"");
    put_bytes_field(&mut ss, 2, &span(b""));
    let mut rs = ld(1, &bad_resource);
    rs.extend(ld(2, &ss));
    rs.extend(ld(2, &ss_empty));
    let mut buf = ld(1, &rs);
    buf.extend(request(&[span(b"")], b"", b"", b""));
    assert_eq!(invalid_spans(&buf), 1);
}
