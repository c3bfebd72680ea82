use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::*;
use crate::span::SpanRef;
use crate::test_util::{b, d, i, kv, s, span, with_status};

struct Fx {
    span: Vec<u8>,
    resource: Vec<u8>,
    scope: Vec<u8>,
}

fn fx() -> Fx {
    let mut sp = with_status(
        span(
            0xab,
            7,
            "chat gpt-4o",
            3,
            vec![
                kv("http.route", s("/health")),
                kv("tokens", i(120)),
                kv("cost", d(0.25)),
                kv("cached", b(false)),
                kv("user", s("alice")),
            ],
        ),
        2,
    );
    sp.status.as_mut().unwrap().message = "boom".into();
    Fx {
        span: sp.encode_to_vec(),
        resource: Resource {
            attributes: vec![kv("service.name", s("agent")), kv("env", s("dev"))],
            ..Default::default()
        }
        .encode_to_vec(),
        scope: InstrumentationScope {
            name: "openai".into(),
            version: "1.2.3".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    }
}

fn holds(cond: &str) -> bool {
    let f = fx();
    let view = SpanRef::parse(&f.span, &f.resource, &f.scope).unwrap();
    eval(
        &parse(cond).unwrap_or_else(|e| panic!("{cond}: {e:?}")),
        &view,
    )
}

#[test]
fn names_kinds_and_status() {
    assert!(holds(r#"name == "chat gpt-4o""#));
    assert!(holds(r#"span.name != "other""#));
    assert!(holds("kind == SPAN_KIND_CLIENT"));
    assert!(holds("kind == 3"));
    assert!(!holds("kind == SPAN_KIND_SERVER"));
    assert!(holds("status.code == STATUS_CODE_ERROR"));
    assert!(holds(r#"status.message == "boom""#));
    assert!(holds(r#"IsMatch(name, "^chat ")"#));
    assert!(!holds(r#"IsMatch(name, "^gpt")"#));
}

#[test]
fn attributes_with_typed_comparisons() {
    assert!(holds(r#"attributes["http.route"] == "/health""#));
    assert!(holds(r#"attributes["tokens"] > 100"#));
    assert!(holds(r#"attributes["tokens"] >= 120.0"#));
    assert!(!holds(r#"attributes["tokens"] < 120"#));
    assert!(holds(r#"attributes["cost"] <= 0.25"#));
    assert!(holds(r#"attributes["cached"] == false"#));
    assert!(!holds(r#"attributes["tokens"] == "120""#), "types differ");
    assert!(holds(r#"attributes["tokens"] != "120""#));
    assert!(
        !holds(r#"attributes["tokens"] > "1""#),
        "no ordering across types"
    );
    assert!(holds(r#"attributes["missing"] == nil"#));
    assert!(holds(r#"attributes["missing"] != "x""#));
    assert!(!holds(r#"attributes["missing"] == "x""#));
    assert!(!holds(r#"attributes["user"] == nil"#));
    assert!(holds(r#"IsMatch(attributes["tokens"], "^12")"#));
    assert!(!holds(r#"IsMatch(attributes["missing"], ".*")"#));
    assert!(holds(r#"attributes["user"] < "bob""#));
}

#[test]
fn context_paths() {
    assert!(holds(r#"resource.attributes["service.name"] == "agent""#));
    assert!(holds(r#"resource.attributes["absent"] == nil"#));
    assert!(holds(r#"instrumentation_scope.name == "openai""#));
    assert!(holds(r#"instrumentation_scope.version == "1.2.3""#));
    assert!(holds(
        r#"trace_id.string == "abababababababababababababababab""#
    ));
    assert!(holds(r#"span_id.string == "0707070707070707""#));
    assert!(holds(r#"parent_span_id.string == """#));
}

#[test]
fn boolean_logic_and_precedence() {
    assert!(holds(r#"name == "x" or kind == SPAN_KIND_CLIENT"#));
    assert!(!holds(
        r#"name == "x" or kind == SPAN_KIND_CLIENT and status.code == 0"#
    ));
    assert!(holds(
        r#"(name == "x" or kind == SPAN_KIND_CLIENT) and status.code == 2"#
    ));
    assert!(holds(r#"not name == "x""#));
    assert!(!holds(r#"not (name == "x" or true)"#));
    assert!(holds("true"));
    assert!(holds(
        r#"attributes["cached"] == false and not attributes["tokens"] == nil"#
    ));
}

#[test]
fn unsupported_input_is_a_clear_error() {
    let err = |c: &str| parse(c).unwrap_err();
    assert!(
        err(r#"IsString(name)"#)
            .message
            .contains("IsString is not supported")
    );
    assert_eq!(err(r#"IsString(name)"#).col, 1);
    assert!(
        err(r#"events["x"] == 1"#)
            .message
            .contains("path `events` is not supported")
    );
    assert!(err(r#"name = "x""#).message.contains("unexpected '='"));
    assert!(err(r#"name == "x"#).message.contains("unterminated"));
    assert!(
        err(r#"attributes["a"]"#)
            .message
            .contains("a value alone is not a condition")
    );
    let e = err(r#"name == "x" and"#);
    assert!(e.message.contains("before the end"), "{e:?}");
    assert!(err(r#"(name == "x""#).message.contains("`)`"));
    assert!(
        err(r#"IsMatch(name, "(")"#)
            .message
            .contains("invalid regular expression")
    );
    assert!(
        err(r#"IsMatch(name, attributes["x"])"#)
            .message
            .contains("string literal")
    );
    assert!(
        err(r#"attributes["a"]["b"] == 1"#)
            .message
            .contains("nested")
    );
    assert!(err(r#"name == "x" name"#).message.contains("unexpected"));
    assert!(err("").message.contains("empty"));
    assert!(err("attributes == 1").message.contains("not supported"));
    assert_eq!(err(r#"name == "a" and kind ~ 1"#).col, 22);
}
