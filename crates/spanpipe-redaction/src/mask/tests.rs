use super::*;
use crate::config::PRESETS;

fn masker(blocked: &[&str], presets: &[&str], allowed: &[&str], hash: HashFunction) -> Masker {
    let p: Vec<_> = PRESETS
        .iter()
        .filter(|p| presets.contains(&p.name))
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    Masker::new(&s(blocked), &p, &s(allowed), hash, "key", true).expect("compiles")
}

fn presets() -> Masker {
    masker(
        &[],
        &["email", "api_key", "bearer_token", "credit_card"],
        &[],
        HashFunction::None,
    )
}

#[test]
fn presets_mask_what_they_name_and_leave_the_rest() {
    let m = presets();
    let cases = [
        ("write to jane.doe+x@example.co.uk now", "write to **** now"),
        ("key sk-proj-abcdefghijklmnop1234 used", "key **** used"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws ****"),
        (
            "Authorization: Bearer abc.def-ghi_jkl",
            "Authorization: ****",
        ),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig-nature",
            "jwt ****",
        ),
        ("card 4111 1111 1111 1111 ok", "card **** ok"),
    ];
    for (input, want) in cases {
        assert_eq!(m.mask_text(input).as_deref(), Some(want), "{input}");
    }
    for untouched in [
        "nothing here",
        "ts 1700000000000000000 and 4111 1111 1111 1112 (bad checksum)",
        "user@localhost",
        "a bearer of news",
    ] {
        assert_eq!(m.mask_text(untouched), None, "{untouched}");
    }
}

#[test]
fn json_leaves_are_masked_and_the_result_stays_valid_json() {
    let m = presets();
    let input = r#"{"messages": [{"role": "user", "content": "mail me at bob@example.com\nthanks \"Bob\""}], "n": 4111111111111111}"#;
    let out = m.mask_text(input).expect("masked");
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(
        v["messages"][0]["content"],
        "mail me at ****\nthanks \"Bob\""
    );
    assert_eq!(
        v["n"], 4111111111111111u64,
        "numbers are copied as they are"
    );
    assert!(
        out.starts_with(r#"{"messages": [{"role": "user", "#),
        "formatting kept: {out}"
    );
}

#[test]
fn escapes_cannot_hide_a_match() {
    let m = presets();
    // `\u0040` is `@`: the raw text has no e-mail, the decoded leaf has.
    let input = r#"{"to": "bob\u0040example.com"}"#;
    let out = m.mask_text(input).expect("masked");
    assert_eq!(out, r#"{"to": "****"}"#);
    // JSON nested in a JSON string (MLflow's spanInputs holding a JSON-encoded argument).
    let nested =
        serde_json::json!({"arg": serde_json::json!({"email": "eve@example.org"}).to_string()})
            .to_string();
    let out = m.mask_text(&nested).expect("masked");
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid");
    let inner: serde_json::Value =
        serde_json::from_str(v["arg"].as_str().expect("string")).expect("inner valid");
    assert_eq!(inner["email"], "****");
}

#[test]
fn a_match_across_an_escape_never_breaks_the_json() {
    // A user regex that would eat half of an escape sequence if applied to the raw text.
    let m = masker(&[r#"x\\"#, r#"y""#, "z."], &[], &[], HashFunction::None);
    for input in [r#"{"a": "x\\y\"z\u0041"}"#, r#"["x\\", "y\"", "z\n"]"#] {
        let out = m.mask_text(input).unwrap_or_else(|| input.to_string());
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap_or_else(|e| panic!("{input} -> {out}: {e}"));
    }
    // A lone surrogate cannot be decoded, so that leaf is masked whole (fail closed).
    let out = presets()
        .mask_text(r#"{"a": "\ud800 x@y.io"}"#)
        .expect("masked");
    assert_eq!(out, r#"{"a": "****"}"#);
}

#[test]
fn allowed_values_exempt_matches_and_hashes_replace_them() {
    let m = masker(&[], &["email"], &[r".+@corp\.com"], HashFunction::None);
    assert_eq!(
        m.mask_text("a@corp.com b@gmail.com").as_deref(),
        Some("a@corp.com ****")
    );
    let h = masker(&[], &["email"], &[], HashFunction::Md5);
    // md5("") is the well-known d41d8cd98f00b204e9800998ecf8427e.
    assert_eq!(h.mask_whole(""), "d41d8cd98f00b204e9800998ecf8427e");
    let out = h.mask_text("x a@b.io").expect("hashed");
    assert_eq!(out.len(), 2 + 32);
    assert_eq!(
        h.mask_text("x a@b.io"),
        h.mask_text("x a@b.io"),
        "deterministic"
    );
    for (f, len) in [
        (HashFunction::Sha1, 40),
        (HashFunction::Sha3, 64),
        (HashFunction::HmacSha256, 64),
        (HashFunction::HmacSha512, 128),
    ] {
        assert_eq!(
            masker(&[], &["email"], &[], f).mask_whole("a@b.io").len(),
            len
        );
    }
    assert_eq!(presets().mask_whole("anything"), "****");
}

#[test]
fn bad_patterns_name_their_entry() {
    let e = Masker::new(
        &["ok".into(), "(".into()],
        &[],
        &[],
        HashFunction::None,
        "",
        true,
    )
    .err()
    .expect("error");
    assert_eq!((e.list, e.index), ("blocked_values", 1));
    let e = Masker::new(&[], &[], &["[".into()], HashFunction::None, "", true)
        .err()
        .expect("error");
    assert_eq!(e.list, "allowed_values");
}

#[test]
fn unescape_decodes_nested_escapes_and_gives_up_on_deep_chains() {
    // JSON in a JSON string: `\\u0040` decodes in two rounds.
    assert_eq!(super::unescape(r"a\\u0040b").as_deref(), Some("a@b"));
    assert_eq!(super::unescape("plain").as_deref(), Some("plain"));
    // `\u005c` is a backslash: `\u005cu005c…u0040` loses one level per round, so 50 levels exceed the bound.
    let chain = format!(r"\u005c{}u0040", "u005c".repeat(50));
    assert!(super::unescape(&format!(r"\u005c{}u0040", "u005c".repeat(3))).is_some());
    assert_eq!(super::unescape(&chain), None);
}
