use super::*;
use crate::load_str;

/// Location-free rendering of a tree, for comparing values.
fn shape(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".into(),
        Value::Scalar { text, quoted } => {
            if !quoted && crate::scalar::resolve(text) != Resolved::Str {
                format!("{:?}", crate::scalar::resolve(text))
            } else {
                format!("{text:?}")
            }
        }
        Value::Seq(items) => format!(
            "[{}]",
            items.iter().map(shape).collect::<Vec<_>>().join(",")
        ),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{:?}:{}", k.as_str().unwrap_or_default(), shape(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn round_trip(text: &str) {
    let original = load_str("in.yaml", text).unwrap();
    let yaml = original.to_yaml();
    let again =
        load_str("out.yaml", &yaml).unwrap_or_else(|e| panic!("re-parse failed: {e}\n{yaml}"));
    assert_eq!(shape(&again), shape(&original), "\n--- emitted:\n{yaml}");
}

#[test]
fn round_trips() {
    round_trip(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:4317\n      http:\n\
         processors:\n  batch: {}\n  attributes:\n    actions:\n      - key: a\n        value: '123'\n        action: insert\n      - {key: b, action: delete}\n\
         exporters:\n  debug: []\n  x:\n    list: [[1, 2], [], [a, {b: c}]]\n    weird: ['', ' lead', 'trail ', 'a: b', 'a #b', '#c', '- x', '-', '[x]', 'true', '1.5', 'null', '~', \"line\\nbreak\", \"tab\\t\", 'quote\"s', '\\\\', 'x:', '&a', '*a', '!t', '%p', '@a', '`b', '---', 'é ü', 'ok-value', '-5']\n    nums: [1, -2, 0x1f, .inf, true, ~, null]\n    '<<': literal\n    'key with: colon': 1\n    '': empty key\n    \"multi\\nline key\": 2\n",
    );
    round_trip("[a, [b, [c]], {d: [e]}]");
    round_trip("plain");
    round_trip("'123'");
    round_trip("{}");
}

#[test]
fn output_is_readable_block_yaml() {
    let root = load_str(
        "in.yaml",
        "a:\n  b: [1, two]\n  c: {d: x}\nl:\n  - k: v\n    m: n\n",
    )
    .unwrap();
    assert_eq!(
        root.to_yaml(),
        "a:\n  b:\n    - 1\n    - two\n  c:\n    d: x\nl:\n  - k: v\n    m: n\n"
    );
}

#[test]
fn secrets_are_redacted() {
    let root = load_str(
        "in.yaml",
        "exporters:\n  otlp:\n    headers:\n      Authorization: Bearer abc\n      x-other: visible\n    auth:\n      token: t0ps3cret\n      Password: hunter2\n      client_secret: s\n      api_key: k\n      bearer_token: bt\n      github_token: [g1, g2]\n      tokens: not-a-secret-key\n      user: bob\n",
    )
    .unwrap();
    let yaml = root.to_yaml();
    for secret in [
        "abc",
        "t0ps3cret",
        "hunter2",
        ": s\n",
        ": k\n",
        ": bt\n",
        "g1",
        "g2",
    ] {
        assert!(!yaml.contains(secret), "{secret:?} leaked:\n{yaml}");
    }
    assert!(yaml.contains("token: \"[REDACTED]\""), "{yaml}");
    assert!(yaml.contains("Password: \"[REDACTED]\""), "{yaml}");
    assert!(yaml.contains("x-other: visible"));
    assert!(yaml.contains("tokens: not-a-secret-key"));
    assert!(yaml.contains("user: bob"));
    let again = load_str("out.yaml", &yaml).unwrap();
    let token = again
        .get("exporters")
        .and_then(|e| e.get("otlp"))
        .and_then(|o| o.get("auth"))
        .and_then(|a| a.get("token"));
    assert_eq!(token.and_then(Node::as_str), Some("[REDACTED]"));
}

#[test]
fn secret_key_rules() {
    for k in [
        "token",
        "TOKEN",
        "password",
        "secret",
        "api_key",
        "authorization",
        "Bearer_Token",
        "x_token",
        "db_password",
        "aws_secret",
    ] {
        assert!(is_secret_key(k), "{k}");
    }
    for k in ["tokens", "endpoint", "secretive", "passwords", "key"] {
        assert!(!is_secret_key(k), "{k}");
    }
}

/// Values some component read as a `Secret` are redacted whatever their key (a vendor's `space_key`, every header
/// value, a list of tokens); other values are printed.
#[test]
fn typed_secrets_are_redacted_by_location_not_by_name() {
    use std::collections::BTreeMap;

    use crate::Secret;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        space_key: Secret,
        headers: BTreeMap<String, Secret>,
        tokens: Vec<Secret>,
        endpoint: String,
    }
    let text = "space_key: sk-1\nheaders:\n  DD-API-KEY: dd-2\n  X-Honeycomb-Team: hc-3\ntokens: [t-4, t-5]\n\
                endpoint: https://user:pw-6@example.com:4318/v1\n";
    let root = load_str("c.yaml", text).unwrap();
    let (cfg, secrets) = crate::collect_secret_locations(|| root.deserialize::<Cfg>("x"));
    let cfg = cfg.unwrap();
    assert_eq!(cfg.headers["DD-API-KEY"].expose(), "dd-2");
    assert_eq!(secrets.len(), 5, "{secrets:?}");
    let yaml = root.to_yaml_redacting(&secrets);
    for value in ["sk-1", "dd-2", "hc-3", "t-4", "t-5", "pw-6"] {
        assert!(!yaml.contains(value), "{value} in\n{yaml}");
    }
    assert!(yaml.contains("DD-API-KEY"), "{yaml}");
    assert!(
        yaml.contains("https://user:[REDACTED]@example.com:4318/v1"),
        "{yaml}"
    );
    // Outside a collection nothing is recorded.
    assert!(root.deserialize::<Cfg>("x").is_ok());
}

#[test]
fn url_userinfo_is_redacted() {
    assert_eq!(
        redact_userinfo("http://a:b@h/p?x=@"),
        "http://a:[REDACTED]@h/p?x=@"
    );
    assert_eq!(redact_userinfo("https://tok@h"), "https://[REDACTED]@h");
    assert_eq!(redact_userinfo("https://h/p@x"), "https://h/p@x");
    assert_eq!(redact_userinfo("user@example.com"), "user@example.com");
}
