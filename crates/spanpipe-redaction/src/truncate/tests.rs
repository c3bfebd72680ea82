use super::*;
use spanpipe_config::ByteSize;

fn truncator(max: u64) -> Truncator {
    Truncator::new(&TruncateConfig {
        keys: vec!["k".into()],
        max_bytes: ByteSize(max),
        marker: "...[truncated]".into(),
    })
    .expect("on")
}

fn check_json(out: &str, max: usize) -> serde_json::Value {
    assert!(out.len() <= max, "{} > {max}: {out}", out.len());
    serde_json::from_str(out).unwrap_or_else(|e| panic!("invalid JSON ({e}): {out}"))
}

#[test]
fn off_when_zero_and_untouched_when_small() {
    let mut cfg = TruncateConfig::default();
    assert!(Truncator::new(&cfg).is_none());
    cfg.max_bytes = ByteSize(100);
    let t = Truncator::new(&cfg).expect("on");
    assert!(t.applies("mlflow.spanInputs") && !t.applies("other"));
    assert_eq!(t.truncate("short"), None);
}

#[test]
fn a_two_megabyte_json_input_stays_valid_json_with_keys_and_marker() {
    let big = "é".repeat(1 << 20);
    let input =
        format!(r#"{{"messages": [{{"role": "user", "content": "{big}"}}], "model": "m"}}"#);
    assert!(input.len() > 2_000_000);
    let t = truncator(4096);
    let out = t.truncate(&input).expect("cut");
    let v = check_json(&out, 4096);
    let content = v["messages"][0]["content"].as_str().expect("string kept");
    assert!(content.ends_with("...[truncated]"), "{content}");
    assert!(content.starts_with("éé"));
    assert_eq!(v["messages"][0]["role"], "user");
    assert!(out.len() > 3900, "uses the budget: {}", out.len());
}

#[test]
fn every_budget_and_shape_gives_valid_json_within_max() {
    let docs = [
        serde_json::json!({"a": "x".repeat(500), "b": [1, 2, 3], "c": {"d": "y\"\\\n".repeat(100)}}),
        serde_json::json!([
            1234567890, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
            23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
            45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64
        ]),
        serde_json::json!({"k0": 0, "k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5, "k6": 6, "k7": 7, "k8": 8, "k9": 9, "ka": 10, "kb": 11, "kc": 12, "kd": 13, "ke": 14, "kf": 15, "kg": 16, "kh": 17}),
        serde_json::json!([[[[["deep", "x".repeat(300)]]]], {"u": "\u{1}\u{2}😀".repeat(60)}]),
        serde_json::json!("a plain JSON string ".repeat(40)),
    ];
    for doc in &docs {
        let s = doc.to_string();
        for max in 30..s.len() {
            let t = truncator(max as u64);
            let out = t.truncate(&s).expect("longer than max");
            let v = check_json(&out, max);
            assert!(out.contains("...[truncated]"), "max {max}: {out}");
            let _ = v;
        }
    }
}

#[test]
fn plain_text_is_cut_on_a_char_boundary() {
    let t = truncator(40);
    let s = "ü".repeat(100);
    let out = t.truncate(&s).expect("cut");
    assert!(out.len() <= 40 && out.ends_with("...[truncated]"));
    // Not JSON although it starts like it: cut as text.
    let out = t
        .truncate(&format!("{{not json {}", "x".repeat(100)))
        .expect("cut");
    assert!(out.starts_with("{not json") && out.len() <= 40);
}
