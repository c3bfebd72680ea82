use super::*;
use crate::test_util::{d, i, kv, s, span};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

fn props(yaml: &str) -> MatchProperties {
    let node = spanpipe_config::load_str("t.yaml", yaml).unwrap();
    node.deserialize("include").unwrap()
}

struct Fixture {
    span: Vec<u8>,
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl Fixture {
    fn new(name: &str, kind: i32) -> Self {
        Fixture {
            span: span(
                1,
                1,
                name,
                kind,
                vec![kv("http.method", s("GET")), kv("n", i(42)), kv("f", d(1.5))],
            )
            .encode_to_vec(),
            resource: Resource {
                attributes: vec![kv("service.name", s("checkout")), kv("env", s("prod"))],
                ..Default::default()
            }
            .encode_to_vec(),
            scope: InstrumentationScope {
                name: "openai".into(),
                version: "1.2".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        }
    }

    fn view(&self) -> SpanRef<'_> {
        SpanRef::parse(&self.span, &self.resource, &self.scope).unwrap()
    }
}

fn matches(yaml: &str, f: &Fixture) -> bool {
    Matcher::new(&props(yaml)).unwrap().matches(&f.view())
}

#[test]
fn strict_names_kinds_services() {
    let f = Fixture::new("GET /users", 2);
    assert!(matches(
        "match_type: strict\nspan_names: [x, GET /users]",
        &f
    ));
    assert!(!matches("match_type: strict\nspan_names: [GET]", &f));
    assert!(matches(
        "match_type: strict\nspan_kinds: [SPAN_KIND_SERVER]",
        &f
    ));
    assert!(!matches(
        "match_type: strict\nspan_kinds: [SPAN_KIND_CLIENT]",
        &f
    ));
    assert!(matches("match_type: strict\nservices: [checkout]", &f));
    assert!(!matches("match_type: strict\nservices: [cart]", &f));
    // every property must match
    assert!(!matches(
        "match_type: strict\nservices: [checkout]\nspan_names: [nope]",
        &f
    ));
}

#[test]
fn regexp_is_an_unanchored_search() {
    let f = Fixture::new("GET /users", 2);
    assert!(matches("match_type: regexp\nspan_names: [users]", &f));
    assert!(matches("match_type: regexp\nspan_names: ['^GET ']", &f));
    assert!(!matches("match_type: regexp\nspan_names: ['^users']", &f));
    assert!(matches("match_type: regexp\nspan_kinds: [SERVER]", &f));
    assert!(matches("match_type: regexp\nservices: ['^check']", &f));
}

#[test]
fn attributes_and_resources() {
    let f = Fixture::new("s", 1);
    assert!(matches(
        "match_type: strict\nattributes: [{key: http.method}]",
        &f
    ));
    assert!(matches(
        "match_type: strict\nattributes: [{key: http.method, value: GET}, {key: n, value: 42}]",
        &f
    ));
    assert!(
        !matches(
            "match_type: strict\nattributes: [{key: n, value: \"42\"}]",
            &f
        ),
        "type matters"
    );
    assert!(!matches(
        "match_type: strict\nattributes: [{key: missing}]",
        &f
    ));
    assert!(matches(
        "match_type: regexp\nattributes: [{key: n, value: '^4'}]",
        &f
    ));
    assert!(matches(
        "match_type: regexp\nattributes: [{key: f, value: '^1\\.5$'}]",
        &f
    ));
    assert!(matches(
        "match_type: strict\nresources: [{key: env, value: prod}]",
        &f
    ));
    assert!(matches(
        "match_type: strict\nresource_attributes: [{key: env}]",
        &f
    ));
    assert!(!matches(
        "match_type: strict\nresources: [{key: env, value: dev}]",
        &f
    ));
    assert!(matches(
        "match_type: strict\nlibraries: [{name: openai, version: '1.2'}]",
        &f
    ));
    assert!(!matches(
        "match_type: strict\nlibraries: [{name: openai, version: '2'}]",
        &f
    ));
    assert!(matches("match_type: regexp\nlibraries: [{name: open}]", &f));
}

#[test]
fn include_then_exclude() {
    let f = Fixture::new("GET /users", 2);
    let cfg = |yaml: &str| -> MatchConfig {
        spanpipe_config::load_str("t.yaml", yaml)
            .unwrap()
            .deserialize("p")
            .unwrap()
    };
    let sf = SpanFilter::new(&cfg("include: {match_type: strict, services: [checkout]}")).unwrap();
    assert!(sf.applies(&f.view()));
    let sf = SpanFilter::new(&cfg(
        "include: {match_type: strict, services: [checkout]}\nexclude: {match_type: regexp, span_names: [users]}",
    ))
    .unwrap();
    assert!(!sf.applies(&f.view()));
    let sf = SpanFilter::new(&cfg("exclude: {match_type: strict, span_names: [other]}")).unwrap();
    assert!(sf.applies(&f.view()));
    assert!(SpanFilter::new(&MatchConfig::default()).unwrap().is_empty());
}

#[test]
fn invalid_blocks_say_which_key() {
    let err = |yaml: &str| Matcher::new(&props(yaml)).unwrap_err();
    assert_eq!(err("span_names: [a]").keys, vec![Key::Name("match_type")]);
    assert!(
        err("match_type: strict")
            .message
            .contains("at least one of")
    );
    assert_eq!(
        err("match_type: strict\nspan_kinds: [SERVER]").keys,
        vec![Key::Name("span_kinds"), Key::Index(0)]
    );
    assert_eq!(
        err("match_type: regexp\nspan_names: [ok, '(']").keys,
        vec![Key::Name("span_names"), Key::Index(1)]
    );
    assert_eq!(
        err("match_type: regexp\nattributes: [{key: a, value: 1}]").keys,
        vec![Key::Name("attributes"), Key::Index(0), Key::Name("value")]
    );
    assert_eq!(
        err("match_type: strict\nattributes: [{value: 1}]").keys,
        vec![Key::Name("attributes"), Key::Index(0), Key::Name("key")]
    );
}
