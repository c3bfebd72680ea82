use super::*;

#[test]
fn parses_what_serde_json_parses_and_rejects_what_it_rejects() {
    let good = [
        r#"{"a": [1, -2.5e+3, true, false, null, "x\"y\u0040z"], "b": {}}"#,
        r#"  [ ]  "#,
        r#""plain""#,
        r#"{"nested": "{\"inner\": \"a@b.io\"}"}"#,
        "0",
        "-0.1E-2",
    ];
    for s in good {
        assert!(parse(s).is_ok(), "{s}");
        assert!(serde_json::from_str::<serde_json::Value>(s).is_ok(), "{s}");
    }
    let bad = [
        "",
        "{",
        "[1,]",
        "{\"a\" 1}",
        "01",
        "1.",
        "-",
        "\"\\x\"",
        "\"a\nb\"",
        "tru",
        "{} x",
        "\"\\u12\"",
        "[1 2]",
        "{\"a\":1,}",
        "'a'",
    ];
    for s in bad {
        assert_eq!(parse(s), Err(NotJson), "{s:?}");
        assert!(
            serde_json::from_str::<serde_json::Value>(s).is_err(),
            "{s:?}"
        );
    }
}

#[test]
fn deep_nesting_is_not_json_and_does_not_overflow() {
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    assert_eq!(parse(&deep), Err(NotJson));
    let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert!(parse(&ok).is_ok());
}

#[test]
fn keys_and_order_are_kept_raw() {
    let Ok(Node::Object(m)) = parse(r#"{"z": 1, "a\u0041": "v"}"#) else {
        panic!("object")
    };
    assert_eq!(m[0].0, "\"z\"");
    assert_eq!(m[1].0, r#""a\u0041""#);
    assert_eq!(m[1].1, Node::Str("\"v\""));
}

#[test]
fn strings_round_trip_through_decode_and_encode() {
    for s in [
        "plain",
        "q\"uote",
        "back\\slash",
        "nl\nx",
        "tab\t",
        "\u{1}ctl",
        "ünï 😀",
        "",
    ] {
        let enc = encode_str(s);
        assert_eq!(serde_json::from_str::<String>(&enc).unwrap(), s);
        assert_eq!(decode_str(&enc).unwrap(), s);
    }
    assert_eq!(decode_str(r#""a\u0040b""#).unwrap(), "a@b");
    assert!(decode_str(r#""\ud800""#).is_none(), "lone surrogate");
    assert!(looks_like_json(" {\"a\":1}") && looks_like_json("[") && !looks_like_json("12"));
}
