//! Redaction fails closed: the bypasses of issue 12 (a card number beside an invalid-UTF-8 array element, in a
//! kvlist nested ≥ 34 or an array nested ≥ 51, an e-mail escaped inside JSON nested > 64) come out masked.

use spanpipe_core::wire::{bytes_field, fields, for_each_attr, walk_spans};

use super::{Redactor, Stats};
use crate::config::RedactionConfig;

const CARD: &str = "4111 1111 1111 1111";

fn redactor() -> Redactor {
    let yaml = "allow_all_keys: true\nblocked_value_presets: [credit_card, email]\n";
    let node = spanpipe_config::load_str("t.yaml", yaml).expect("yaml");
    let cfg: RedactionConfig = node.deserialize("processors.redaction").expect("config");
    cfg.validate().expect("valid");
    Redactor::new(&cfg).expect("compiles")
}

fn string_any(s: &[u8]) -> Vec<u8> {
    bytes_field(1, s)
}

fn array(items: &[Vec<u8>]) -> Vec<u8> {
    let list: Vec<_> = items.iter().map(|i| bytes_field(1, i)).collect();
    bytes_field(5, &list.concat())
}

fn key_value(key: &[u8], value: &[u8]) -> Vec<u8> {
    [bytes_field(1, key), bytes_field(2, value)].concat()
}

fn kvlist(key: &str, value: &[u8]) -> Vec<u8> {
    bytes_field(6, &bytes_field(1, &key_value(key.as_bytes(), value)))
}

/// A request with one span whose attribute `a` holds the encoded `AnyValue` `value`.
fn request(value: &[u8]) -> Vec<u8> {
    let span = [
        bytes_field(1, &[1; 16]),
        bytes_field(2, &[1; 8]),
        bytes_field(9, &key_value(b"a", value)),
    ]
    .concat();
    bytes_field(1, &bytes_field(2, &bytes_field(2, &span)))
}

/// The redacted request's bytes: they must not contain the secret anywhere.
fn redact(value: &[u8]) -> (Vec<u8>, Stats) {
    let mut stats = Stats::default();
    let out = redactor()
        .redact_request(&request(value), &mut stats)
        .expect("redacts")
        .expect("something was masked");
    (out, stats)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_invalid_utf8_sibling_does_not_unmask_a_card() {
    let value = array(&[string_any(CARD.as_bytes()), string_any(b"\xff")]);
    let (out, stats) = redact(&value);
    assert!(!contains(&out, CARD.as_bytes()));
    assert_eq!(stats.masked, 1);
}

#[test]
fn cards_deep_in_kvlists_and_arrays_are_masked_or_the_value_is() {
    for depth in [5usize, 34, 51, 200, 12_000] {
        for map in [false, true] {
            let mut v = string_any(CARD.as_bytes());
            for _ in 0..depth {
                v = if map { kvlist("k", &v) } else { array(&[v]) };
            }
            let (out, _) = redact(&v);
            assert!(!contains(&out, CARD.as_bytes()), "depth {depth} map {map}");
            assert!(!contains(&out, b"1111 1111"), "depth {depth} map {map}");
        }
    }
    // Shallow: only the leaf is masked, the structure stays.
    let (out, _) = redact(&array(&[string_any(CARD.as_bytes()), string_any(b"keep")]));
    assert!(contains(&out, b"keep"));
}

#[test]
fn an_escaped_email_in_json_nested_deeper_than_the_parser_is_masked() {
    let json = format!(
        "{}\"alice\\u0040corp.com\"{}",
        "[".repeat(70),
        "]".repeat(70)
    );
    let (out, _) = redact(&string_any(json.as_bytes()));
    walk_spans(&out, |ctx| {
        for_each_attr(ctx.raw, fields::span::ATTRIBUTES, |_, v| {
            let s = v.get().as_str().unwrap_or_default().to_string();
            assert!(!s.contains("alice"), "{s}");
            assert!(!s.contains("corp.com"), "{s}");
        })
    })
    .unwrap();
    // Shallow JSON is still masked leaf by leaf, keeping the structure.
    let (out, _) = redact(&string_any(br#"{"to":"alice\u0040corp.com","n":1}"#));
    assert!(contains(&out, br#""n":1"#));
    assert!(!contains(&out, b"alice"));
}

#[test]
fn an_unreadable_value_is_masked_whole() {
    // A string value that is not UTF-8 holding a card number.
    let mut v = CARD.as_bytes().to_vec();
    v.push(0xff);
    let (out, stats) = redact(&string_any(&v));
    assert!(!contains(&out, CARD.as_bytes()));
    assert_eq!(stats.masked, 1);
}
