use super::*;

fn scalar(node: &Node) -> (&str, bool) {
    match &node.value {
        Value::Scalar { text, quoted } => (text, *quoted),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn positions_and_styles() {
    let text = "a:\n  b: 1\n  c: 'x'\n  d: |\n    block\n  e:\n  f: [1, \"two\"]\n";
    let root = load_str("t.yaml", text).unwrap();
    let a = root.get("a").unwrap();
    assert_eq!(a.get("b").unwrap().location.to_string(), "t.yaml:2:6");
    assert_eq!(scalar(a.get("b").unwrap()), ("1", false));
    assert_eq!(scalar(a.get("c").unwrap()), ("x", true));
    assert_eq!(scalar(a.get("d").unwrap()), ("block\n", true));
    assert!(matches!(a.get("e").unwrap().value, Value::Null));
    let Value::Map(entries) = &a.value else {
        panic!()
    };
    assert_eq!(entries[0].0.location.to_string(), "t.yaml:2:3");
    let Value::Seq(items) = &a.get("f").unwrap().value else {
        panic!()
    };
    assert_eq!(items[1].location.to_string(), "t.yaml:7:10");
    assert_eq!(scalar(&items[1]), ("two", true));
}

#[test]
fn empty_document_is_empty_map() {
    for text in ["", "# only a comment\n", "---\n"] {
        let root = load_str("e.yaml", text).unwrap();
        match root.value {
            Value::Map(entries) => assert!(entries.is_empty()),
            // `---` with nothing is an explicit empty (null) document
            Value::Null => assert_eq!(text, "---\n"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn str_tag_makes_quoted() {
    let root = load_str("t.yaml", "a: !!str 123\n").unwrap();
    assert_eq!(scalar(root.get("a").unwrap()), ("123", true));
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let text = "base: &b\n  x: 1\n  y: 2\nother:\n  <<: *b\n  y: 3\nlist: [&v 7, *v]\nmulti:\n  <<: [{p: 1}, {p: 2, q: 2}]\n";
    let root = load_str("t.yaml", text).unwrap();
    let other = root.get("other").unwrap();
    assert_eq!(other.get("x").unwrap().as_str(), Some("1"));
    assert_eq!(other.get("y").unwrap().as_str(), Some("3"));
    assert!(other.get("<<").is_none());
    let list: Vec<u8> = root.get("list").unwrap().deserialize("list").unwrap();
    assert_eq!(list, [7, 7]);
    let multi = root.get("multi").unwrap();
    assert_eq!(multi.get("p").unwrap().as_str(), Some("1"));
    assert_eq!(multi.get("q").unwrap().as_str(), Some("2"));
    // A quoted "<<" is an ordinary key.
    let quoted = load_str("t.yaml", "'<<': 1\n").unwrap();
    assert_eq!(quoted.get("<<").unwrap().as_str(), Some("1"));
    let bad = load_str("t.yaml", "a:\n  <<: 5\n").unwrap_err();
    assert!(bad.to_string().starts_with("t.yaml:2:7: "), "{bad}");
}

#[test]
fn duplicate_keys_are_rejected() {
    let err = load_str("d.yaml", "a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err();
    assert_eq!(err.location.to_string(), "d.yaml:4:3");
    assert_eq!(err.key, "c");
    assert!(err.message.contains("first defined at d.yaml:3:3"), "{err}");
    // Same key in different mappings is fine.
    assert!(load_str("d.yaml", "a: {c: 1}\nb: {c: 1}\n").is_ok());
}

#[test]
fn non_scalar_keys_and_multiple_documents() {
    let err = load_str("k.yaml", "? [a, b]\n: 1\n").unwrap_err();
    assert!(err.message.contains("keys must be scalars"), "{err}");
    let err = load_str("k.yaml", "a: 1\n---\nb: 2\n").unwrap_err();
    assert!(err.message.contains("multiple YAML documents"), "{err}");
    assert_eq!(err.location.line, 2);
}

#[test]
fn billion_laughs_is_rejected() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let (prev, name) = (pair[0], pair[1]);
        let refs = vec![format!("*{prev}"); 9].join(",");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    let err = load_str("bomb.yaml", &text).unwrap_err();
    assert!(err.message.contains("too large"), "{err}");
    assert!(err.to_string().starts_with("bomb.yaml:"), "{err}");
}

#[test]
fn huge_string_aliased_many_times_is_rejected() {
    let big = "x".repeat(1 << 20);
    let refs = vec!["*s"; 40].join(", ");
    let text = format!("s: &s {big}\nl: [{refs}]\n");
    assert!(
        load_str("big.yaml", &text)
            .unwrap_err()
            .message
            .contains("too large")
    );
}

#[test]
fn deep_nesting_is_rejected() {
    let flow = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(load_str("deep.yaml", &flow).is_err());
    let block = format!("{}x\n", "- ".repeat(MAX_DEPTH + 1));
    let err = load_str("deep.yaml", &block).unwrap_err();
    assert!(err.message.contains("nesting"), "{err}");
    let ok = format!("{}x\n", "- ".repeat(MAX_DEPTH - 1));
    assert!(load_str("deep.yaml", &ok).is_ok());
}

#[test]
fn unknown_alias_is_an_error() {
    assert!(load_str("a.yaml", "a: *nope\n").is_err());
    assert!(load_str("a.yaml", "a: &x [*x]\n").is_err());
}

#[test]
fn garbage_does_not_panic() {
    let inputs = [
        "\t: : [",
        ": : :",
        "[[[[",
        "{a: [}",
        "a: 'unterminated",
        "a: \"\\xZZ\"",
        "- a\nb: c",
        "&&&& ***",
        "%YAML 9.9\n---\na",
        "!<tag:x> [",
        "a:\n\tb: c",
        "? ? ? ?",
        "a: |\n x\n  y\n z",
        "---\n...\n---\n...",
        "\u{0}\u{1}\u{2}",
        "'",
        "a: b: c",
        "- - - - -\n  - x\n -",
        "*",
        "&a",
        "!!",
        "{",
        "}",
        "]",
        "\u{FEFF}a: 1",
        "a: &a\n  <<: *a",
    ];
    for input in inputs {
        let _ = load_str("g.yaml", input);
    }
    // Pseudo-random byte soup built from YAML-significant characters.
    let alphabet: Vec<char> = "ab:-[]{}&*!|>'\"#%@`?,\n \t\\~<".chars().collect();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..5000 {
        let mut s = String::new();
        for _ in 0..(state % 80) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            s.push(alphabet[(state % alphabet.len() as u64) as usize]);
        }
        let _ = load_str("fuzz.yaml", &s);
    }
}

#[test]
fn syntax_errors_name_the_line() {
    let err = load_str(
        "m.yaml",
        "receivers:\n  otlp:\n    protocols: grpc: {}\nexporters:\n",
    )
    .unwrap_err();
    assert_eq!(err.location.line, 3, "{err}");
    assert!(err.to_string().starts_with("m.yaml:3:"), "{err}");
    assert!(err.key.is_empty());
}
