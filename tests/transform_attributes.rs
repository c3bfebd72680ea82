//! `attributes` and `resource` processors end to end: spans with chosen attributes, kinds and resources from the
//! Python OTel SDK over HTTP (with request headers) → spanpipe A (`resource`, two `attributes` processors) →
//! OTLP/gRPC → spanpipe B (`file`). Every action and every include/exclude property is checked at B, and the
//! spans the processors leave alone arrive unchanged.

#[path = "transform_support.rs"]
mod support;

use serde_json::{Value, json};
use support::{by_name, send, start_pair, wait_received};

/// SHA-256 of "alice@example.com" in hex (what the OTel Collector's hash action produces).
const ALICE_SHA256: &str = "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976";

const PROCESSORS: &str = r#"  resource:
    attributes:
      - { key: deployment.environment, value: staging, action: upsert }
      - { key: host.name, action: delete }
      - { key: team, from_context: x-team, action: insert }
  attributes/pii:
    actions:
      - { key: user.email, action: hash }
      - { key: session.token, action: delete }
      - { pattern: '^debug\.', action: delete }
      - { key: tenant, from_context: metadata.x-tenant, action: insert }
      - { key: env, value: prod, action: insert }
      - { key: http.status_code, action: convert, converted_type: int }
      - { key: http.url, pattern: '^https?://(?P<http_host>[^/]+)(?P<http_path>/[^?]*)', action: extract }
      - { key: llm.model, from_attribute: gen_ai.request.model, action: upsert }
      - { key: retries, value: 0, action: update }
    include:
      match_type: strict
      services: [agent]
    exclude:
      match_type: regexp
      span_names: ['^health']
  attributes/kinds:
    actions:
      - { key: is_llm_call, value: true, action: upsert }
    include:
      match_type: strict
      span_kinds: [SPAN_KIND_CLIENT]
      attributes: [{ key: gen_ai.system, value: openai }]"#;

#[test]
fn attribute_and_resource_actions_reach_the_backend() {
    let pair = start_pair(PROCESSORS, "resource, attributes/pii, attributes/kinds");
    let sent = send(
        pair.work.path(),
        json!({
            "protocol": "http",
            "endpoint": format!("http://127.0.0.1:{}", pair.a_http),
            "headers": {"x-tenant": "acme", "x-team": "ml"},
            "resources": [
                {"attributes": {"service.name": "agent", "host.name": "box-1"}, "traces": [[
                    {"name": "invoke_agent", "kind": "SERVER", "attributes": {
                        "user.email": "alice@example.com", "session.token": "s3cr3t",
                        "debug.a": "x", "debug.b": 1, "http.status_code": "200",
                        "http.url": "https://api.example.com/v1/chat?x=1", "env": "dev", "retries": 3}},
                    {"name": "chat gpt-4o", "kind": "CLIENT", "attributes": {
                        "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"}},
                    {"name": "health check", "kind": "INTERNAL", "attributes": {
                        "user.email": "bob@example.com", "session.token": "t"}}
                ]]},
                {"attributes": {"service.name": "other"}, "traces": [[
                    {"name": "other op", "kind": "CLIENT", "attributes": {
                        "user.email": "carol@example.com", "gen_ai.system": "anthropic"}}
                ]]}
            ]
        }),
    );
    assert_eq!(sent.len(), 4);
    let got = wait_received(&pair.out, 4);
    assert_eq!(got.len(), 4, "every span arrives once: {got:#?}");
    for s in &sent {
        let r = by_name(&got, &s.name);
        assert_eq!(
            (&r.trace_id, &r.span_id),
            (&s.trace_id, &s.span_id),
            "{}",
            s.name
        );
    }

    // attributes/pii on an included span: every action.
    let root = &by_name(&got, "invoke_agent").attributes;
    assert_eq!(root["user.email"], ALICE_SHA256, "hash");
    assert!(!root.contains_key("session.token"), "delete by key");
    assert!(
        !root.keys().any(|k| k.starts_with("debug.")),
        "delete by pattern"
    );
    assert_eq!(
        root["tenant"], "acme",
        "insert from_context metadata.x-tenant"
    );
    assert_eq!(root["env"], "dev", "insert keeps an existing value");
    assert_eq!(root["http.status_code"], 200, "convert to int");
    assert_eq!(root["http_host"], "api.example.com", "extract");
    assert_eq!(root["http_path"], "/v1/chat", "extract");
    assert!(
        !root.contains_key("llm.model"),
        "from_attribute of a missing key: no action"
    );
    assert_eq!(root["retries"], 0, "update of an existing key");
    assert_eq!(by_name(&got, "invoke_agent").kind, 2, "kind untouched");

    let chat = &by_name(&got, "chat gpt-4o").attributes;
    assert_eq!(chat["llm.model"], "gpt-4o", "upsert from_attribute");
    assert_eq!(chat["env"], "prod", "insert where absent");
    assert!(!chat.contains_key("retries"), "update never inserts");
    assert_eq!(
        chat["is_llm_call"],
        Value::Bool(true),
        "kind + attribute include"
    );
    assert_eq!(chat["gen_ai.system"], "openai");

    // exclude by name regexp: untouched.
    let health = &by_name(&got, "health check").attributes;
    assert_eq!(health["user.email"], "bob@example.com");
    assert_eq!(health["session.token"], "t");
    assert!(!health.contains_key("tenant") && !health.contains_key("is_llm_call"));

    // another service: outside include; a CLIENT span whose gen_ai.system differs.
    let other = &by_name(&got, "other op").attributes;
    assert_eq!(other["user.email"], "carol@example.com");
    assert!(!other.contains_key("is_llm_call") && !other.contains_key("tenant"));

    // resource processor.
    let res = &by_name(&got, "invoke_agent").resource;
    assert_eq!(res["service.name"], "agent");
    assert_eq!(res["deployment.environment"], "staging");
    assert_eq!(res["team"], "ml", "from_context with a bare header name");
    assert!(!res.contains_key("host.name"));
    assert_eq!(
        res["telemetry.sdk.language"], "python",
        "other resource attributes kept"
    );
    let res = &by_name(&got, "other op").resource;
    assert_eq!(res["service.name"], "other");
    assert_eq!(res["deployment.environment"], "staging");
}
