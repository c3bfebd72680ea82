use super::*;
use spanpipe_core::wire::RawValue;

fn any(v: opentelemetry_proto::tonic::common::v1::any_value::Value) -> Vec<u8> {
    use prost::Message;
    opentelemetry_proto::tonic::common::v1::AnyValue { value: Some(v) }.encode_to_vec()
}
use opentelemetry_proto::tonic::common::v1::any_value::Value as P;

#[test]
fn counts_are_read_like_mlflow_parses_them() {
    assert_eq!(count(RawValue::new(&any(P::IntValue(26)))), Some(26));
    assert_eq!(
        count(RawValue::new(&any(P::StringValue("26".into())))),
        Some(26)
    );
    assert_eq!(
        count(RawValue::new(&any(P::StringValue("\"26\"".into())))),
        Some(26)
    );
    assert_eq!(count(RawValue::new(&any(P::DoubleValue(7.0)))), Some(7));
    assert_eq!(count(RawValue::new(&any(P::DoubleValue(7.5)))), None);
    assert_eq!(count(RawValue::new(&any(P::IntValue(-1)))), None);
    assert_eq!(count(RawValue::new(&any(P::StringValue("x".into())))), None);
    assert_eq!(
        count(RawValue::new(b"\xff\xff")),
        None,
        "malformed value reads as absent"
    );
}

#[test]
fn mlflow_json_wins_then_openinference_then_otel_then_traceloop() {
    let mlflow = any(P::StringValue(
        r#"{"input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "cache_read_input_tokens": 2}"#.into(),
    ));
    let oi = any(P::IntValue(100));
    let otel = any(P::IntValue(1000));
    let mut h = UsageHints::default();
    h.offer(b"gen_ai.usage.input_tokens", RawValue::new(&otel));
    h.offer(b"llm.token_count.prompt", RawValue::new(&oi));
    let u = h.resolve().unwrap();
    assert_eq!(
        (u.input, u.output, u.total),
        (Some(100), None, None),
        "OpenInference before OTel, one convention only"
    );
    h.offer(b"mlflow.chat.tokenUsage", RawValue::new(&mlflow));
    let u = h.resolve().unwrap();
    assert_eq!(
        (u.input, u.output, u.total, u.cache_read),
        (Some(10), Some(5), Some(15), Some(2))
    );

    let mut t = UsageHints::default();
    t.offer(b"gen_ai.usage.prompt_tokens", RawValue::new(&oi));
    t.offer(b"gen_ai.usage.completion_tokens", RawValue::new(&oi));
    let u = t.resolve().unwrap();
    assert_eq!(
        (u.input, u.output, u.total),
        (Some(100), Some(100), Some(200)),
        "total = input + output"
    );

    let mut g = UsageHints::default();
    g.offer(b"gen_ai.usage.output_tokens", RawValue::new(&otel));
    g.offer(
        b"gen_ai.usage.cache_creation.input_tokens",
        RawValue::new(&oi),
    );
    g.offer(b"gen_ai.usage.reasoning.output_tokens", RawValue::new(&oi));
    let u = g.resolve().unwrap();
    assert_eq!(
        (u.output, u.cache_write, u.reasoning),
        (Some(1000), Some(100), Some(100))
    );
    assert!(UsageHints::default().resolve().is_none());
}

#[test]
fn hostile_mlflow_json_is_no_usage() {
    for bad in [
        "{",
        "[]",
        "\"x\"",
        "{\"input_tokens\": -3}",
        "{\"input_tokens\": {\"a\": 1}}",
        &"[".repeat(10_000),
    ] {
        let v = any(P::StringValue(bad.into()));
        let mut h = UsageHints::default();
        h.offer(b"mlflow.chat.tokenUsage", RawValue::new(&v));
        assert!(h.resolve().is_none(), "{bad:.20}");
    }
    // A JSON string holding the object (double-encoded) is read too.
    let v = any(P::StringValue(r#""{\"input_tokens\": 3}""#.into()));
    let mut h = UsageHints::default();
    h.offer(b"mlflow.chat.tokenUsage", RawValue::new(&v));
    assert_eq!(h.resolve().unwrap().input, Some(3));
}
