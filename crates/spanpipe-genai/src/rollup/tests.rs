use super::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as P;

fn any(v: P) -> Vec<u8> {
    use prost::Message;
    opentelemetry_proto::tonic::common::v1::AnyValue { value: Some(v) }.encode_to_vec()
}

fn id(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn tokens(input: u64, output: u64) -> Option<Usage> {
    Some(Usage {
        input: Some(input),
        output: Some(output),
        total: Some(input + output),
        ..Usage::default()
    })
}

fn node(span: u64, parent: u64, usage: Option<Usage>, cost: Option<f64>) -> Node {
    Node {
        span_id: id(span),
        parent_id: (parent != 0).then(|| id(parent)),
        usage,
        cost,
    }
}

#[test]
fn a_rolled_up_parent_counts_once_and_cost_is_rolled_up_separately() {
    // 1 agent (300 tokens, no cost) ← 2 tool (nothing) ← 3, 4 model calls (100 + 200 tokens, cost each);
    // 5 a second root (50 tokens); 6's parent is not in the trace: a root of its own (10 tokens).
    let nodes = [
        node(3, 2, tokens(60, 40), Some(0.25)),
        node(4, 2, tokens(150, 50), Some(0.5)),
        node(2, 1, None, None),
        node(1, 0, tokens(200, 100), None),
        node(5, 0, tokens(30, 20), None),
        node(6, 99, tokens(7, 3), Some(1.0)),
    ];
    let t = trace_total(&nodes);
    assert_eq!(
        (t.input_tokens, t.output_tokens, t.total_tokens),
        (200 + 30 + 7, 100 + 20 + 3, 300 + 50 + 10)
    );
    assert!(
        (t.cost - 1.75).abs() < 1e-12,
        "no ancestor of 3 or 4 has cost: {t:?}"
    );
}

#[test]
fn cycles_never_count_and_a_repeated_span_counts_once() {
    let nodes = [
        node(1, 0, tokens(10, 0), None),
        node(1, 0, tokens(10, 0), None),
        node(7, 8, tokens(1000, 0), Some(9.0)),
        node(8, 7, None, None),
        node(9, 9, tokens(1000, 0), None),
    ];
    let t = trace_total(&nodes);
    assert_eq!(t.total_tokens, 10);
    assert_eq!(t.cost, 0.0);
    assert_eq!(trace_total(&[]), TraceTotal::default());
}

#[test]
fn a_count_not_reported_adds_zero() {
    let only_input = Usage {
        input: Some(5),
        ..Usage::default()
    };
    let t = trace_total(&[node(1, 0, Some(only_input), None)]);
    assert_eq!((t.input_tokens, t.output_tokens, t.total_tokens), (5, 0, 0));
}

#[test]
fn span_hints_read_usage_and_carried_cost_like_the_connector() {
    let otel = any(P::IntValue(1000));
    let mlflow = any(P::StringValue(
        r#"{"input_tokens": 10, "output_tokens": 5}"#.into(),
    ));
    let cost = any(P::StringValue("0.5".into()));
    let mlflow_cost = any(P::StringValue(r#"{"total_cost": 9.0}"#.into()));
    let other = any(P::StringValue("x".into()));
    let mut h = SpanHints::default();
    assert!(h.offer(b"gen_ai.usage.input_tokens", RawValue::new(&otel)));
    assert!(h.offer(b"mlflow.chat.tokenUsage", RawValue::new(&mlflow)));
    assert!(h.offer(b"mlflow.llm.cost", RawValue::new(&mlflow_cost)));
    assert!(h.offer(b"llm.cost.total", RawValue::new(&cost)));
    assert!(!h.offer(b"gen_ai.request.model", RawValue::new(&other)));
    let n = h.node(id(1), None);
    let u = n.usage.expect("usage");
    assert_eq!(
        (u.input, u.output, u.total),
        (Some(10), Some(5), Some(15)),
        "MLflow's JSON wins"
    );
    assert_eq!(n.cost, Some(0.5), "llm.cost.total before mlflow.llm.cost");
    let hostile = any(P::StringValue("-3".into()));
    let mut h = SpanHints::default();
    h.offer(b"gen_ai.usage.cost.amount", RawValue::new(&hostile));
    h.offer(b"gen_ai.usage.output_tokens", RawValue::new(&hostile));
    assert_eq!(h.node(id(1), None), node(1, 0, None, None));
}
