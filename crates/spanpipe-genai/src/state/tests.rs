use super::*;
use crate::extract::extract;
use crate::test_util::{PRICES, V, request, settings, span};
use spanpipe_core::Metadata;

fn run(s: Settings, table: Option<&PriceTable>, reqs: &[Vec<u8>]) -> State {
    let s = Arc::new(s);
    let mut st = State::new(s.clone(), "USD", "t");
    let md = Metadata::default();
    let now = Instant::now();
    for r in reqs {
        let f = extract(&s, r, &md, 0).unwrap();
        st.record_batch(&f, table, now, 1);
    }
    st
}

fn token_sum(st: &State, model: &str, ty: TokenType) -> f64 {
    st.store()
        .series()
        .filter(|s| s.metric == Metric::TokenUsage && s.token == ty)
        .filter(|s| s.slots[crate::extract::REQUEST_MODEL].as_deref() == Some(model))
        .map(|s| match &s.value {
            crate::store::Value::Hist(h) => h.sum,
            crate::store::Value::Sum(v) => *v,
        })
        .sum()
}

fn cost_sum(st: &State) -> f64 {
    st.store()
        .series()
        .filter(|s| s.metric == Metric::Cost)
        .map(|s| match &s.value {
            crate::store::Value::Sum(v) => *v,
            _ => 0.0,
        })
        .sum()
}

fn llm(
    t: u8,
    id: u64,
    parent: u64,
    model: &str,
    i: i64,
    o: i64,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    span(
        t,
        id,
        parent,
        10.0,
        0,
        &[
            ("gen_ai.operation.name", V::S("chat")),
            ("gen_ai.request.model", V::S(model)),
            ("gen_ai.usage.input_tokens", V::I(i)),
            ("gen_ai.usage.output_tokens", V::I(o)),
        ],
    )
}

#[test]
fn rolled_up_usage_is_counted_once_on_the_topmost_span() {
    // agent (root, usage 30/12) → chain (no usage) → two LLM calls (10/4 and 20/8), children first, in two
    // requests: MLflow counts only the agent's usage.
    let agent = span(
        1,
        1,
        0,
        50.0,
        0,
        &[
            ("gen_ai.operation.name", V::S("invoke_agent")),
            ("gen_ai.request.model", V::S("gpt-test")),
            ("gen_ai.usage.input_tokens", V::I(30)),
            ("gen_ai.usage.output_tokens", V::I(12)),
        ],
    );
    let chain = span(1, 2, 1, 40.0, 0, &[]);
    let reqs = [
        request(
            &[],
            vec![
                llm(1, 3, 2, "gpt-test", 10, 4),
                llm(1, 4, 2, "gpt-test", 20, 8),
            ],
        ),
        request(&[], vec![chain, agent]),
    ];
    let table = PriceTable::parse("p", PRICES).unwrap();
    let st = run(settings(""), Some(&table), &reqs);
    assert_eq!(token_sum(&st, "gpt-test", TokenType::Input), 30.0);
    assert_eq!(token_sum(&st, "gpt-test", TokenType::Output), 12.0);
    assert_eq!(st.counts.rolled_up_spans, 2);
    let want = (30.0 * 2.0 + 12.0 * 8.0) / 1e6;
    assert!(
        (cost_sum(&st) - want).abs() < 1e-15,
        "{} vs {want}",
        cost_sum(&st)
    );
    // Every LLM call still has its duration.
    let calls: u64 = st
        .store()
        .series()
        .filter(|s| s.metric == Metric::OperationDuration)
        .map(|s| match &s.value {
            crate::store::Value::Hist(h) => h.count,
            _ => 0,
        })
        .sum();
    assert_eq!(calls, 2);
}

#[test]
fn without_a_wait_every_span_counts_and_leaf_usage_is_summed() {
    let reqs = [request(
        &[],
        vec![
            llm(1, 3, 2, "gpt-test", 10, 4),
            llm(1, 4, 2, "gpt-test", 20, 8),
            span(1, 2, 0, 40.0, 0, &[]),
        ],
    )];
    let st = run(settings("trace_wait: 0s"), None, &reqs);
    assert_eq!(token_sum(&st, "gpt-test", TokenType::Input), 30.0);
    let st = run(settings(""), None, &reqs);
    assert_eq!(
        token_sum(&st, "gpt-test", TokenType::Output),
        12.0,
        "siblings are both counted"
    );
    assert_eq!(st.pending_spans(), 0, "root arrived: nothing waits");
}

#[test]
fn a_late_child_of_a_span_with_usage_is_not_counted_twice() {
    let reqs = [
        request(&[], vec![llm(1, 1, 0, "gpt-test", 30, 12)]),
        request(
            &[],
            vec![
                llm(1, 2, 1, "gpt-test", 10, 4),
                llm(2, 9, 0, "gpt-test", 1, 1),
            ],
        ),
    ];
    let st = run(settings(""), None, &reqs);
    assert_eq!(token_sum(&st, "gpt-test", TokenType::Input), 31.0);
}

#[test]
fn traces_without_root_are_resolved_at_the_end_of_the_wait() {
    let reqs = [request(
        &[],
        vec![
            llm(1, 3, 2, "gpt-test", 10, 4),
            llm(1, 2, 1, "gpt-test", 50, 5),
        ],
    )];
    let s = Arc::new(settings(""));
    let mut st = State::new(s.clone(), "USD", "t");
    let md = Metadata::default();
    let t0 = Instant::now();
    st.record_batch(&extract(&s, &reqs[0], &md, 0).unwrap(), None, t0, 1);
    assert_eq!(st.pending_spans(), 2);
    st.sweep(None, t0 + std::time::Duration::from_secs(31), 2);
    assert_eq!((st.pending_spans(), st.counts.no_root_traces), (0, 1));
    assert_eq!(
        token_sum(&st, "gpt-test", TokenType::Input),
        50.0,
        "the parent present covers its child"
    );
}

#[test]
fn unpriced_models_are_counted_and_carried_costs_kept() {
    let table = PriceTable::parse("p", PRICES).unwrap();
    let carried = span(
        3,
        1,
        0,
        5.0,
        0,
        &[
            ("gen_ai.request.model", V::S("gpt-test")),
            ("gen_ai.usage.input_tokens", V::I(1_000_000)),
            ("gen_ai.usage.cost.amount", V::D(0.25)),
        ],
    );
    let euro = span(
        4,
        1,
        0,
        5.0,
        0,
        &[
            ("gen_ai.request.model", V::S("gpt-test")),
            ("gen_ai.usage.input_tokens", V::I(1)),
            ("llm.cost.total", V::D(9.0)),
            ("gen_ai.usage.cost.currency", V::S("EUR")),
        ],
    );
    let reqs = [request(
        &[],
        vec![llm(1, 1, 0, "mystery-model", 5, 5), carried, euro],
    )];
    let st = run(settings(""), Some(&table), &reqs);
    assert_eq!(st.counts.unpriced_spans, 1);
    assert_eq!(st.counts.currency_mismatch_spans, 1);
    assert!(
        (cost_sum(&st) - 0.25).abs() < 1e-12,
        "the span's own cost, not the table's"
    );
}

#[test]
fn tags_come_from_the_root_and_label_every_point() {
    let root = span(1, 1, 0, 50.0, 0, &[("mlflow.traceTag.team", V::S("rust"))]);
    let reqs = [
        request(&[], vec![llm(1, 2, 1, "gpt-test", 1, 1)]),
        request(&[], vec![root]),
    ];
    let st = run(settings("tags: [team]"), None, &reqs);
    let s = st
        .store()
        .series()
        .find(|s| s.metric == Metric::TokenUsage)
        .unwrap();
    assert_eq!(s.trace[0].as_deref(), Some("rust"));
}

#[test]
fn cycles_in_parent_ids_end() {
    let reqs = [request(
        &[],
        vec![
            llm(1, 2, 3, "gpt-test", 1, 1),
            llm(1, 3, 2, "gpt-test", 1, 1),
            span(1, 1, 0, 1.0, 0, &[]),
        ],
    )];
    let st = run(settings(""), None, &reqs);
    assert_eq!(
        token_sum(&st, "gpt-test", TokenType::Input),
        0.0,
        "each has an ancestor with usage"
    );
}

#[test]
fn series_are_capped_with_an_overflow_series() {
    let spans: Vec<_> = (0..20u64)
        .map(|i| llm(1, i + 2, 0, &format!("m{i}"), 1, 1))
        .collect();
    let st = run(
        settings("max_series: 5\ntrace_wait: 0s"),
        None,
        &[request(&[], spans)],
    );
    assert_eq!(st.store().len(), 5);
    assert!(st.store().overflow(Metric::TokenUsage).is_some());
    assert!(st.counts.overflow_points > 0);
}

#[test]
fn large_traces_use_the_hashed_index_with_the_same_rule() {
    // 40 spans (past the linear scan): a chain root → 1 → 2 … each with usage: only the root counts.
    let mut spans = vec![llm(1, 1, 0, "gpt-test", 7, 3)];
    spans.extend((2..=40u64).map(|i| llm(1, i, i - 1, "gpt-test", 100, 100)));
    spans.reverse();
    let st = run(settings(""), None, &[request(&[], spans)]);
    assert_eq!(token_sum(&st, "gpt-test", TokenType::Input), 7.0);
    assert_eq!(st.counts.rolled_up_spans, 39);
}

#[test]
fn genai_spans_after_a_plain_root_get_its_tags_without_waiting() {
    let root = span(5, 1, 0, 50.0, 0, &[("mlflow.traceTag.team", V::S("ml"))]);
    let reqs = [
        request(&[], vec![root]),
        request(&[], vec![llm(5, 2, 1, "gpt-test", 4, 2)]),
    ];
    let st = run(settings("tags: [team]"), None, &reqs);
    assert_eq!(st.pending_spans(), 0);
    let s = st
        .store()
        .series()
        .find(|s| s.metric == Metric::TokenUsage)
        .unwrap();
    assert_eq!(s.trace[0].as_deref(), Some("ml"));
}

#[test]
fn a_root_arriving_before_a_linking_span_waits_for_it() {
    // agent (root, rolled-up usage) → tool (no usage) → calls; the tool span comes last.
    let agent = span(
        6,
        1,
        0,
        50.0,
        0,
        &[
            ("gen_ai.operation.name", V::S("invoke_agent")),
            ("gen_ai.request.model", V::S("gpt-test")),
            ("gen_ai.usage.input_tokens", V::I(30)),
            ("gen_ai.usage.output_tokens", V::I(12)),
        ],
    );
    let tool = span(
        6,
        2,
        1,
        40.0,
        0,
        &[
            ("gen_ai.operation.name", V::S("execute_tool")),
            ("gen_ai.tool.name", V::S("t")),
        ],
    );
    let s = Arc::new(settings(""));
    let mut st = State::new(s.clone(), "USD", "t");
    let md = Metadata::default();
    let t0 = Instant::now();
    for r in [
        request(
            &[],
            vec![
                llm(6, 3, 2, "gpt-test", 10, 4),
                llm(6, 4, 2, "gpt-test", 20, 8),
            ],
        ),
        request(&[], vec![agent]),
    ] {
        st.record_batch(&extract(&s, &r, &md, 0).unwrap(), None, t0, 1);
    }
    assert_eq!(
        st.pending_spans(),
        3,
        "the root came, but the calls' parent did not: still waiting"
    );
    assert_eq!(token_sum(&st, "gpt-test", TokenType::Input), 0.0);
    st.record_batch(
        &extract(&s, &request(&[], vec![tool]), &md, 0).unwrap(),
        None,
        t0,
        1,
    );
    assert_eq!(st.pending_spans(), 0);
    assert_eq!(
        token_sum(&st, "gpt-test", TokenType::Input),
        30.0,
        "counted once, on the agent"
    );

    // A link that never comes: resolved at the end of the wait with what is there (as MLflow would).
    let mut st = State::new(s.clone(), "USD", "t");
    let agent = span(
        7,
        1,
        0,
        50.0,
        0,
        &[
            ("gen_ai.request.model", V::S("gpt-test")),
            ("gen_ai.usage.input_tokens", V::I(30)),
        ],
    );
    st.record_batch(
        &extract(
            &s,
            &request(&[], vec![llm(7, 3, 2, "gpt-test", 10, 4), agent]),
            &md,
            0,
        )
        .unwrap(),
        None,
        t0,
        1,
    );
    st.sweep(None, t0 + std::time::Duration::from_secs(31), 2);
    assert_eq!(
        (
            st.pending_spans(),
            st.counts.incomplete_traces,
            st.counts.no_root_traces
        ),
        (0, 1, 0)
    );
    assert_eq!(token_sum(&st, "gpt-test", TokenType::Input), 40.0);
}
