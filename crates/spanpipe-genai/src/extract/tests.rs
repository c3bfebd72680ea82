use super::*;
use crate::test_util::{V, request, settings, span};
use spanpipe_core::Metadata;

#[test]
fn pydantic_ai_openinference_span_reads_as_one_chat_call() {
    let s = settings("agent_name: true");
    let r = request(
        &[],
        vec![span(
            1,
            2,
            1,
            1500.0,
            2,
            &[
                ("gen_ai.operation.name", V::S("chat")),
                ("gen_ai.agent.name", V::S("probe")),
                ("gen_ai.system", V::S("test")),
                ("gen_ai.request.model", V::S("test")),
                ("gen_ai.response.model", V::S("test-2")),
                ("gen_ai.usage.input_tokens", V::I(51)),
                ("gen_ai.usage.output_tokens", V::I(6)),
                ("openinference.span.kind", V::S("LLM")),
                ("llm.model_name", V::S("test")),
                ("llm.token_count.prompt", V::I(51)),
                ("llm.token_count.completion", V::I(6)),
                ("server.address", V::S("api.example")),
                ("server.port", V::I(443)),
            ],
        )],
    );
    let md = Metadata::default();
    let f = extract(&s, &r, &md, 0).unwrap();
    let g = f.spans[0].genai.as_ref().unwrap();
    assert_eq!(g.op, Some(OpKind::Client));
    let l = |i: usize| g.labels[i].as_deref();
    assert_eq!(
        (
            l(OPERATION),
            l(PROVIDER),
            l(REQUEST_MODEL),
            l(RESPONSE_MODEL)
        ),
        (Some("chat"), Some("test"), Some("test"), Some("test-2"))
    );
    assert_eq!(
        (
            l(SERVER_ADDRESS),
            l(SERVER_PORT),
            l(ERROR_TYPE),
            l(AGENT_NAME),
            l(EXPERIMENT)
        ),
        (
            Some("api.example"),
            Some("443"),
            Some("_OTHER"),
            Some("probe"),
            Some("0")
        )
    );
    let u = g.usage.unwrap();
    assert_eq!((u.input, u.output), (Some(51), Some(6)));
    assert!((f.spans[0].duration_s - 1.5).abs() < 1e-9);
}

#[test]
fn operation_is_inferred_from_the_span_type_as_mlflow_does() {
    let s = settings("");
    let r = request(
        &[("mlflow.experimentId", "\"7\"")],
        vec![
            span(
                1,
                2,
                1,
                1.0,
                0,
                &[
                    ("mlflow.spanType", V::S("\"LLM\"")),
                    (
                        "mlflow.chat.tokenUsage",
                        V::S(r#"{"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}"#),
                    ),
                    ("mlflow.llm.model", V::S("\"m\"")),
                ],
            ),
            span(
                1,
                3,
                1,
                1.0,
                0,
                &[
                    ("openinference.span.kind", V::S("TOOL")),
                    ("tool.name", V::S("add")),
                ],
            ),
            span(
                1,
                4,
                1,
                1.0,
                0,
                &[
                    ("traceloop.span.kind", V::S("agent")),
                    ("gen_ai.usage.prompt_tokens", V::I(9)),
                ],
            ),
            span(1, 1, 0, 1.0, 0, &[("mlflow.spanType", V::S("\"CHAIN\""))]),
        ],
    );
    let md = Metadata::default();
    let f = extract(&s, &r, &md, 0).unwrap();
    let g = |i: usize| f.spans[i].genai.as_ref();
    assert_eq!(g(0).unwrap().labels[OPERATION].as_deref(), Some("chat"));
    assert_eq!(g(0).unwrap().labels[REQUEST_MODEL].as_deref(), Some("m"));
    assert_eq!(g(0).unwrap().labels[EXPERIMENT].as_deref(), Some("7"));
    assert_eq!(g(1).unwrap().op, Some(OpKind::Tool));
    assert_eq!(g(1).unwrap().labels[TOOL_NAME].as_deref(), Some("add"));
    assert_eq!(g(2).unwrap().op, Some(OpKind::Agent));
    assert_eq!(g(2).unwrap().usage.unwrap().input, Some(9));
    assert!(
        g(3).is_none(),
        "a CHAIN span without usage is no GenAI span"
    );
    assert!(f.spans[3].parent_id.is_none());
}

#[test]
fn hostile_requests_are_errors_or_read_as_absent() {
    let s = settings("");
    let md = Metadata::default();
    let good = request(
        &[],
        vec![span(
            1,
            2,
            1,
            1.0,
            0,
            &[
                ("gen_ai.request.model", V::S(&"x".repeat(5000))),
                ("gen_ai.operation.name", V::S("chat")),
            ],
        )],
    );
    let f = extract(&s, &good, &md, 0).unwrap();
    assert_eq!(
        f.spans[0].genai.as_ref().unwrap().labels[REQUEST_MODEL]
            .as_deref()
            .map(str::len),
        Some(256)
    );
    assert_eq!(f.truncated, 1);
    for cut in [1, good.len() / 2, good.len() - 1] {
        let _ = extract(&s, &good[..cut], &md, 0); // never panics
    }
    assert!(extract(&s, b"\x0a\xff\xff\xff\xff\x0f", &md, 0).is_err());
}
