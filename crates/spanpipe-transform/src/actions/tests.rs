use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::*;
use crate::attrs::replace_attributes;
use crate::config::Key;
use crate::test_util::{attr, b, d, i, kv, s, span};

fn actions(yaml: &str) -> Result<Vec<Action>, crate::config::Invalid> {
    let node = spanpipe_config::load_str("t.yaml", yaml).unwrap();
    let cfg: Vec<ActionConfig> = node.deserialize("actions").unwrap();
    compile_actions(&cfg, "actions")
}

fn run_with(yaml: &str, attrs: Vec<KeyValue>, metadata: &Metadata) -> (Vec<KeyValue>, bool) {
    let acts = actions(yaml).unwrap();
    let bytes = span(1, 1, "s", 1, attrs).encode_to_vec();
    let mut list = AttrList::parse(&bytes, 9).unwrap();
    apply(&acts, &mut list, metadata);
    let mut out = Vec::new();
    replace_attributes(&bytes, 9, &list, &mut out).unwrap();
    (
        Span::decode(out.as_slice()).unwrap().attributes,
        list.changed(),
    )
}

fn run(yaml: &str, attrs: Vec<KeyValue>) -> Vec<KeyValue> {
    run_with(yaml, attrs, &Metadata::default()).0
}

fn sv(v: &str) -> Option<&'static Value> {
    Some(Box::leak(Box::new(Value::StringValue(v.into()))))
}

#[test]
fn insert_only_when_absent() {
    let got = run(
        "- {action: insert, key: a, value: new}\n- {action: insert, key: b, value: 7}",
        vec![kv("a", s("old"))],
    );
    assert_eq!(attr(&got, "a"), sv("old"));
    assert_eq!(attr(&got, "b"), Some(&Value::IntValue(7)));
}

#[test]
fn update_only_when_present() {
    let got = run(
        "- {action: update, key: a, value: new}\n- {action: update, key: b, value: x}",
        vec![kv("a", s("old"))],
    );
    assert_eq!(attr(&got, "a"), sv("new"));
    assert_eq!(attr(&got, "b"), None);
}

#[test]
fn upsert_always_and_from_attribute_copies_the_typed_value() {
    let got = run(
        "- {action: upsert, key: a, value: true}\n- {action: upsert, key: c, from_attribute: n}\n- {action: upsert, key: d, from_attribute: missing}",
        vec![kv("a", s("old")), kv("n", d(2.5))],
    );
    assert_eq!(attr(&got, "a"), Some(&Value::BoolValue(true)));
    assert_eq!(attr(&got, "c"), Some(&Value::DoubleValue(2.5)));
    assert_eq!(attr(&got, "d"), None);
}

#[test]
fn from_context_reads_request_metadata() {
    let md = Metadata(Some(Arc::from(vec![
        ("x-tenant".to_string(), "acme".to_string()),
        ("x-multi".to_string(), "1".to_string()),
        ("x-multi".to_string(), "2".to_string()),
    ])));
    let (got, _) = run_with(
        "- {action: insert, key: tenant, from_context: metadata.x-tenant}\n- {action: insert, key: bare, from_context: X-Tenant}\n- {action: insert, key: multi, from_context: metadata.x-multi}\n- {action: insert, key: none, from_context: metadata.absent}",
        vec![],
        &md,
    );
    assert_eq!(attr(&got, "tenant"), sv("acme"));
    assert_eq!(attr(&got, "bare"), sv("acme"));
    assert_eq!(attr(&got, "multi"), sv("1;2"));
    assert_eq!(attr(&got, "none"), None);
    let (got, changed) = run_with(
        "- {action: insert, key: tenant, from_context: metadata.x-tenant}",
        vec![],
        &Metadata::default(),
    );
    assert!(got.is_empty() && !changed, "no metadata kept: no action");
}

#[test]
fn delete_by_key_and_pattern() {
    let got = run(
        "- {action: delete, key: a}\n- {action: delete, pattern: '^secret\\.'}",
        vec![
            kv("a", s("1")),
            kv("secret.x", s("2")),
            kv("secret.y", i(3)),
            kv("keep", s("4")),
        ],
    );
    let keys: Vec<_> = got.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys, ["keep"]);
}

#[test]
fn hash_is_sha256_hex_like_the_collector() {
    let got = run(
        "- {action: hash, key: email}\n- {action: hash, pattern: '^n'}\n- {action: hash, key: missing}",
        vec![kv("email", s("test")), kv("n", i(1)), kv("nb", b(true))],
    );
    // sha256("test")
    assert_eq!(
        attr(&got, "email"),
        sv("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
    );
    // sha256 of 1i64 little-endian, of [1]
    assert_eq!(
        attr(&got, "n"),
        sv(&hex(ring::digest::digest(
            &ring::digest::SHA256,
            &1i64.to_le_bytes()
        )
        .as_ref()))
    );
    assert_eq!(
        attr(&got, "nb"),
        sv("4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a")
    );
    assert_eq!(attr(&got, "missing"), None);
}

#[test]
fn extract_named_groups_from_strings_only() {
    let got = run(
        "- {action: extract, key: url, pattern: '^/api/(?P<version>v\\d+)/(?P<resource>\\w+)'}\n- {action: extract, key: n, pattern: '(?P<x>.*)'}",
        vec![kv("url", s("/api/v2/users?id=1")), kv("n", i(5))],
    );
    assert_eq!(attr(&got, "version"), sv("v2"));
    assert_eq!(attr(&got, "resource"), sv("users"));
    assert_eq!(attr(&got, "url"), sv("/api/v2/users?id=1"));
    assert_eq!(attr(&got, "x"), None, "not a string: no extraction");
    let (_, changed) = run_with(
        "- {action: extract, key: url, pattern: '^(?P<a>x)$'}",
        vec![kv("url", s("nomatch"))],
        &Metadata::default(),
    );
    assert!(!changed);
}

#[test]
fn convert_between_types() {
    let got = run(
        "- {action: convert, key: a, converted_type: int}\n- {action: convert, key: b, converted_type: double}\n- {action: convert, key: c, converted_type: string}\n- {action: convert, key: e, converted_type: int}\n- {action: convert, key: f, converted_type: int}\n- {action: convert, key: g, converted_type: string}",
        vec![
            kv("a", s("42")),
            kv("b", i(3)),
            kv("c", d(1.0)),
            kv("e", s("nope")),
            kv("f", d(7.9)),
            kv("g", b(true)),
        ],
    );
    assert_eq!(attr(&got, "a"), Some(&Value::IntValue(42)));
    assert_eq!(attr(&got, "b"), Some(&Value::DoubleValue(3.0)));
    assert_eq!(attr(&got, "c"), sv("1"));
    assert_eq!(attr(&got, "e"), sv("nope"), "unconvertible stays as is");
    assert_eq!(attr(&got, "f"), Some(&Value::IntValue(7)));
    assert_eq!(attr(&got, "g"), sv("true"));
}

#[test]
fn actions_apply_in_order() {
    let got = run(
        "- {action: insert, key: t, from_attribute: a}\n- {action: hash, key: t}\n- {action: delete, key: a}",
        vec![kv("a", s("test"))],
    );
    assert_eq!(
        attr(&got, "t"),
        sv("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
    );
    assert_eq!(attr(&got, "a"), None);
}

#[test]
fn validation_names_the_item_and_key() {
    let err = |yaml: &str| actions(yaml).unwrap_err();
    let at = |i, k| vec![Key::Name("actions"), Key::Index(i), Key::Name(k)];
    assert_eq!(err("- {action: bogus, key: a}").keys, at(0, "action"));
    assert_eq!(
        err("- {action: insert, key: a, value: 1}\n- {action: insert, value: 1}").keys,
        at(1, "key")
    );
    assert_eq!(err("- {action: insert, key: a}").keys, at(0, "action"));
    assert_eq!(
        err("- {action: upsert, key: a, value: 1, from_attribute: b}").keys,
        at(0, "value")
    );
    assert_eq!(err("- {action: delete}").keys, at(0, "key"));
    assert_eq!(
        err("- {action: delete, key: a, value: 1}").keys,
        at(0, "value")
    );
    assert_eq!(err("- {action: hash, pattern: '('}").keys, at(0, "pattern"));
    assert_eq!(
        err("- {action: extract, key: a, pattern: '(x)'}").keys,
        at(0, "pattern")
    );
    assert_eq!(
        err("- {action: extract, key: a, pattern: '(?P<n>x)(y)'}").keys,
        at(0, "pattern")
    );
    assert_eq!(err("- {action: extract, key: a}").keys, at(0, "pattern"));
    assert_eq!(
        err("- {action: convert, key: a, converted_type: bool}").keys,
        at(0, "converted_type")
    );
    assert_eq!(
        err("- {action: convert, key: a}").keys,
        at(0, "converted_type")
    );
    assert_eq!(
        err("- {action: insert, key: a, from_context: auth.sub}").keys,
        at(0, "from_context")
    );
    assert_eq!(
        err("- {action: upsert, key: a, value: 1, pattern: x}").keys,
        at(0, "pattern")
    );
    assert_eq!(err("[]").keys, vec![Key::Name("actions")]);
    assert!(
        actions("- {action: UPSERT, key: a, value: 1}").is_ok(),
        "any case"
    );
}
