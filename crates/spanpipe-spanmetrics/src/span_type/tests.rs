use super::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use prost::Message;
use spanpipe_core::wire::AnyValueRef as AttrValue;

/// An encoded `AnyValue`.
fn raw(v: Value) -> Vec<u8> {
    AnyValue { value: Some(v) }.encode_to_vec()
}

fn resolve(attrs: &[(&str, &str)]) -> String {
    let mut h = TypeHints::default();
    let encoded: Vec<Vec<u8>> = attrs
        .iter()
        .map(|(_, v)| raw(Value::StringValue(v.to_string())))
        .collect();
    for ((k, _), v) in attrs.iter().zip(&encoded) {
        h.offer(k.as_bytes(), RawValue::new(v));
    }
    h.resolve().into_owned()
}

#[test]
fn mlflow_span_type_is_json_decoded_and_wins() {
    assert_eq!(resolve(&[("mlflow.spanType", "\"LLM\"")]), "LLM");
    assert_eq!(resolve(&[("mlflow.spanType", "RETRIEVER")]), "RETRIEVER");
    assert_eq!(
        resolve(&[
            ("mlflow.spanType", "\"TOOL\""),
            ("gen_ai.operation.name", "chat")
        ]),
        "TOOL"
    );
    // Custom types pass through.
    assert_eq!(resolve(&[("mlflow.spanType", "\"MY_TYPE\"")]), "MY_TYPE");
}

#[test]
fn missing_or_unknown_type_is_inferred_from_gen_ai() {
    for (op, want) in [
        ("chat", "CHAT_MODEL"),
        ("execute_tool", "TOOL"),
        ("invoke_agent", "AGENT"),
        ("create_agent", "AGENT"),
        ("generate_content", "LLM"),
        ("text_completion", "LLM"),
        ("response", "LLM"),
        ("embeddings", "EMBEDDING"),
    ] {
        assert_eq!(resolve(&[("gen_ai.operation.name", op)]), want, "{op}");
        assert_eq!(
            resolve(&[
                ("mlflow.spanType", "\"UNKNOWN\""),
                ("gen_ai.operation.name", op)
            ]),
            want
        );
    }
    // JSON-encoded values are decoded first.
    assert_eq!(
        resolve(&[("gen_ai.operation.name", "\"chat\"")]),
        "CHAT_MODEL"
    );
    assert_eq!(resolve(&[("gen_ai.operation.name", "retrieve")]), UNKNOWN);
    assert_eq!(resolve(&[]), UNKNOWN);
    assert_eq!(resolve(&[("mlflow.spanType", "")]), UNKNOWN);
}

#[test]
fn openinference_comes_first_and_its_unknown_stops_the_search() {
    assert_eq!(
        resolve(&[("openinference.span.kind", "RETRIEVER")]),
        "RETRIEVER"
    );
    assert_eq!(
        resolve(&[
            ("openinference.span.kind", "LLM"),
            ("gen_ai.operation.name", "execute_tool")
        ]),
        "LLM"
    );
    assert_eq!(
        resolve(&[
            ("openinference.span.kind", "UNKNOWN"),
            ("gen_ai.operation.name", "chat")
        ]),
        UNKNOWN
    );
    // A kind OpenInference does not know falls through to the next translator.
    assert_eq!(
        resolve(&[
            ("openinference.span.kind", "WHATEVER"),
            ("gen_ai.operation.name", "chat")
        ]),
        "CHAT_MODEL"
    );
}

#[test]
fn traceloop_and_the_other_translators() {
    assert_eq!(resolve(&[("traceloop.span.kind", "workflow")]), "WORKFLOW");
    assert_eq!(resolve(&[("traceloop.span.kind", "task")]), "TASK");
    assert_eq!(resolve(&[("traceloop.span.kind", "tool")]), "TOOL");
    assert_eq!(resolve(&[("span.type", "claude_code.llm_request")]), "LLM");
    assert_eq!(resolve(&[("span.type", "interaction")]), "AGENT");
    assert_eq!(resolve(&[("span.type", "memory")]), "MEMORY", "VoltAgent");
    assert_eq!(resolve(&[("entity.type", "agent")]), "AGENT");
    assert_eq!(resolve(&[("ai.operationId", "ai.toolCall")]), "TOOL");
    assert_eq!(resolve(&[("lmnr.span.type", "EXECUTOR")]), "AGENT");
    assert_eq!(
        resolve(&[("langfuse.observation.type", "generation")]),
        "LLM"
    );
    assert_eq!(
        resolve(&[
            ("gen_ai.agent.name", "gemini-cli"),
            ("gen_ai.operation.name", "tool_call")
        ]),
        "TOOL"
    );
    // Gemini's names mean nothing without the Gemini CLI agent name.
    assert_eq!(resolve(&[("gen_ai.operation.name", "tool_call")]), UNKNOWN);
}

#[test]
fn livekit_rules_including_request_model_and_case() {
    assert_eq!(
        resolve(&[
            ("gen_ai.operation.name", "retrieve"),
            ("gen_ai.request.model", "gpt-4o")
        ]),
        "LLM"
    );
    assert_eq!(resolve(&[("gen_ai.operation.name", "Chat")]), "CHAT_MODEL");
    assert_eq!(resolve(&[("lk.function_tool.name", "x")]), "TOOL");
    assert_eq!(
        resolve(&[("lk.tts.voice", "x"), ("langfuse.observation.type", "tool")]),
        UNKNOWN,
        "LiveKit's UNKNOWN stops the search before Langfuse"
    );
    assert_eq!(
        resolve(&[("lk.room_name", "r"), ("lk.agent_name", "a")]),
        "AGENT"
    );
}

#[test]
fn non_string_values_never_match() {
    let (int, boolean, text) = (
        raw(Value::IntValue(3)),
        raw(Value::BoolValue(true)),
        raw(Value::StringValue("x".into())),
    );
    let mut h = TypeHints::default();
    h.offer(b"gen_ai.operation.name", RawValue::new(&int));
    h.offer(b"mlflow.spanType", RawValue::new(&boolean));
    assert_eq!(h.resolve(), UNKNOWN);
    assert!(!h.offer(b"service.name", RawValue::new(&text)));
    assert_eq!(RawValue::new(&text).get(), AttrValue::Str("x"));
}
