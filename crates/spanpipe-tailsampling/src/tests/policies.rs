//! Config validation, every policy and how verdicts combine.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;

use super::*;
use crate::policy::{Decision, Policy, final_decision, trace_usage};
use crate::trace::TraceData;

// ---------- config ----------

#[test]
fn defaults_are_the_collectors() {
    let c = config("policies: [{name: a, type: always_sample}]").unwrap();
    assert_eq!(c.decision_wait.0, Duration::from_secs(30));
    assert_eq!(c.num_traces, 50_000);
    assert_eq!(c.expected_new_traces_per_sec, 0);
    assert_eq!(c.decision_cache.sampled_cache_size, 0);
    assert_eq!(c.decision_cache.non_sampled_cache_size, 0);
    assert!(!c.sample_on_first_match && !c.drop_pending_traces_on_shutdown);
}

#[test]
fn invalid_configs_name_the_key() {
    let cases = [
        ("policies: []", "at least one policy"),
        ("policies: [{name: a, type: nope}]", "unknown policy type"),
        ("policies: [{type: always_sample}]", "name cannot be empty"),
        (
            "policies: [{name: a, type: always_sample}, {name: a, type: always_sample}]",
            "duplicate policy name",
        ),
        (
            "policies: [{name: a, type: status_code, status_code: {status_codes: [BAD]}}]",
            "unknown status code",
        ),
        (
            "policies: [{name: a, type: string_attribute, string_attribute: {key: k, values: ['('], enabled_regex_matching: true}}]",
            "invalid regular expression",
        ),
        (
            "policies: [{name: a, type: rate_limiting}]",
            "spans_per_second",
        ),
        (
            "policies: [{name: a, type: genai_usage}]",
            "min_total_tokens",
        ),
        (
            "policies: [{name: a, type: composite, composite: {max_total_spans_per_second: 10, composite_sub_policy: [{name: x, type: always_sample}], rate_allocation: [{policy: y, percent: 10}]}}]",
            "is not a sub-policy",
        ),
        (
            "policies: [{name: a, type: not}]",
            "a sub-policy is required",
        ),
        (
            "decision_wait: 0s\npolicies: [{name: a, type: always_sample}]",
            "decision_wait",
        ),
        (
            "policies: [{name: a, type: and, and: {and_sub_policy: [{name: b, type: and, and: {and_sub_policy: [{name: c, type: and, and: {and_sub_policy: [{name: d, type: and, and: {and_sub_policy: [{name: e, type: always_sample}]}}]}}]}}]}}]",
            "nest at most",
        ),
    ];
    for (yaml, want) in cases {
        let err = config(yaml).expect_err(yaml);
        assert!(err.contains(want), "{yaml}: {err}");
    }
    let unknown = config("policies: [{name: a, type: always_sample, zz: 1}]").unwrap_err();
    assert!(unknown.contains("unknown field"), "{unknown}");
}

// ---------- policies ----------

#[test]
fn latency_status_span_count_and_trace_state() {
    // Spans 0..3: earliest start 1.000 s, latest end 1.008 s: 8 ms.
    let spans: Vec<Span> = (0..4).map(|s| span(1, s, 0, 1, vec![])).collect();
    let req = vec![request(vec![], spans)];
    let lat = |t, u| {
        format!(
            "{{name: l, type: latency, latency: {{threshold_ms: {t}, upper_threshold_ms: {u}}}}}"
        )
    };
    assert_eq!(decide(&lat(8, 0), &req), Decision::Sampled);
    assert_eq!(decide(&lat(9, 0), &req), Decision::NotSampled);
    assert_eq!(decide(&lat(5, 8), &req), Decision::Sampled);
    assert_eq!(
        decide(&lat(8, 20), &req),
        Decision::NotSampled,
        "lower bound exclusive"
    );

    let status = "{name: s, type: status_code, status_code: {status_codes: [ERROR]}}";
    assert_eq!(decide(status, &req), Decision::NotSampled);
    let with_error = vec![request(
        vec![],
        vec![span(1, 0, 0, 1, vec![]), span(1, 1, 0, 2, vec![])],
    )];
    assert_eq!(decide(status, &with_error), Decision::Sampled);

    let count = |min, max| {
        format!("{{name: c, type: span_count, span_count: {{min_spans: {min}, max_spans: {max}}}}}")
    };
    assert_eq!(decide(&count(4, 0), &req), Decision::Sampled);
    assert_eq!(decide(&count(2, 3), &req), Decision::NotSampled);
    assert_eq!(decide(&count(2, 4), &req), Decision::Sampled);

    let mut s = span(1, 0, 0, 1, vec![]);
    s.trace_state = "vendor=x, team=genai".into();
    let ts = vec![request(vec![], vec![s])];
    let pol = "{name: t, type: trace_state, trace_state: {key: team, values: [genai, ml]}}";
    assert_eq!(decide(pol, &ts), Decision::Sampled);
    let pol = "{name: t, type: trace_state, trace_state: {key: team, values: [web]}}";
    assert_eq!(decide(pol, &ts), Decision::NotSampled);
}

#[test]
fn attribute_policies_look_at_resources_and_spans_and_invert() {
    let res = vec![kv("service.name", v_str("checkout"))];
    let spans = vec![span(
        1,
        0,
        0,
        1,
        vec![
            kv("http.status_code", any_value::Value::IntValue(503)),
            kv("cache.hit", any_value::Value::BoolValue(true)),
            kv("route", v_str("/v1/chat/completions")),
        ],
    )];
    let req = vec![request(res, spans)];
    let s =
        |extra: &str| format!("{{name: s, type: string_attribute, string_attribute: {{{extra}}}}}");
    assert_eq!(
        decide(&s("key: service.name, values: [checkout]"), &req),
        Decision::Sampled
    );
    assert_eq!(
        decide(&s("key: route, values: [/v1/chat]"), &req),
        Decision::NotSampled
    );
    assert_eq!(
        decide(
            &s("key: route, values: ['^/v1/chat/.*'], enabled_regex_matching: true"),
            &req
        ),
        Decision::Sampled
    );
    assert_eq!(
        decide(
            &s("key: service.name, values: [checkout], invert_match: true"),
            &req
        ),
        Decision::InvertNotSampled
    );
    assert_eq!(
        decide(&s("key: absent, values: [x], invert_match: true"), &req),
        Decision::InvertSampled
    );
    let n = |extra: &str| {
        format!("{{name: n, type: numeric_attribute, numeric_attribute: {{{extra}}}}}")
    };
    assert_eq!(
        decide(
            &n("key: http.status_code, min_value: 500, max_value: 599"),
            &req
        ),
        Decision::Sampled
    );
    assert_eq!(
        decide(
            &n("key: http.status_code, min_value: 400, max_value: 499"),
            &req
        ),
        Decision::NotSampled
    );
    assert_eq!(
        decide(&n("key: http.status_code, min_value: 500"), &req),
        Decision::Sampled
    );
    assert_eq!(
        decide(
            &n("key: http.status_code, min_value: 500, invert_match: true"),
            &req
        ),
        Decision::InvertNotSampled
    );
    let b = |v: bool| {
        format!(
            "{{name: b, type: boolean_attribute, boolean_attribute: {{key: cache.hit, value: {v}}}}}"
        )
    };
    assert_eq!(decide(&b(true), &req), Decision::Sampled);
    assert_eq!(decide(&b(false), &req), Decision::NotSampled);
}

#[test]
fn probabilistic_matches_the_collectors_hash_and_rate() {
    // FNV-1a 64 of "" is the offset basis; of "a" a published test vector.
    assert_eq!(crate::policy::fnv1a64(&[b""]), 0xcbf2_9ce4_8422_2325);
    assert_eq!(crate::policy::fnv1a64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
    // floor(u64::MAX × 0.1 as f64), exactly as the Collector's big-float product truncates.
    let exact = (u128::from(u64::MAX) * 0x0019_9999_9999_999a_u128) >> 56;
    assert_eq!(crate::policy::threshold(0.1), exact as u64);
    assert_eq!(crate::policy::threshold(0.5), u64::MAX / 2);
    assert_eq!(crate::policy::threshold(1.0), u64::MAX);
    assert_eq!(crate::policy::threshold(0.0), 0);
    assert_eq!(crate::policy::threshold(f64::NAN), 0);
    let cfg = crate::config::ProbabilisticConfig {
        hash_salt: String::new(),
        sampling_percentage: 10.0,
    };
    let p = crate::policy::Probabilistic::new(&cfg);
    let kept = (0..20_000u64)
        .filter(|n| p.matches(&tid(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))))
        .count();
    assert!((1_800..=2_200).contains(&kept), "{kept} of 20000 at 10%");
    let all = crate::policy::Probabilistic::new(&crate::config::ProbabilisticConfig {
        hash_salt: "x".into(),
        sampling_percentage: 100.0,
    });
    let none = crate::policy::Probabilistic::new(&crate::config::ProbabilisticConfig {
        hash_salt: "x".into(),
        sampling_percentage: 0.0,
    });
    assert!((0..100).all(|n| all.matches(&tid(n)) && !none.matches(&tid(n))));
}

#[test]
fn combinators_and_the_final_decision() {
    let req = vec![request(
        vec![],
        vec![span(1, 0, 0, 2, vec![kv("k", v_str("v"))])],
    )];
    let and = "{name: a, type: and, and: {and_sub_policy: [{name: e, type: status_code, status_code: {status_codes: [ERROR]}}, {name: s, type: string_attribute, string_attribute: {key: k, values: [v]}}]}}";
    assert_eq!(decide(and, &req), Decision::Sampled);
    let and_no = "{name: a, type: and, and: {and_sub_policy: [{name: e, type: status_code, status_code: {status_codes: [OK]}}, {name: s, type: always_sample}]}}";
    assert_eq!(decide(and_no, &req), Decision::NotSampled);
    let drop = "{name: d, type: drop, drop: {drop_sub_policy: [{name: s, type: string_attribute, string_attribute: {key: k, values: [v]}}]}}";
    assert_eq!(decide(drop, &req), Decision::Dropped);
    let not = "{name: n, type: not, not: {not_sub_policy: {name: s, type: status_code, status_code: {status_codes: [ERROR]}}}}";
    assert_eq!(decide(not, &req), Decision::NotSampled);

    use Decision::*;
    assert_eq!(final_decision([NotSampled, Sampled]), Sampled);
    assert_eq!(final_decision([Sampled, Dropped]), Dropped);
    assert_eq!(final_decision([Sampled, InvertNotSampled]), NotSampled);
    assert_eq!(final_decision([InvertSampled]), Sampled);
    assert_eq!(final_decision([InvertSampled, NotSampled]), NotSampled);
    assert_eq!(final_decision([]), NotSampled);
}

#[test]
fn rate_limiting_and_composite_share_spans_per_second() {
    let now = Instant::now();
    let mut bucket = crate::policy::TokenBucket::new(10.0, now);
    assert!(bucket.take(15.0, now), "burst of twice the rate");
    assert!(!bucket.take(10.0, now));
    assert!(bucket.take(10.0, now + Duration::from_secs(1)));

    let cfg = policy(
        "{name: c, type: composite, composite: {max_total_spans_per_second: 10, policy_order: [err, all], composite_sub_policy: [{name: err, type: status_code, status_code: {status_codes: [ERROR]}}, {name: all, type: always_sample}], rate_allocation: [{policy: err, percent: 50}, {policy: all, percent: 50}]}}",
    );
    cfg.validate(&[], 1).unwrap();
    let mut c = Policy::build(&cfg, now);
    let p = [piece(request(
        vec![],
        (0..3).map(|s| span(1, s, 0, 1, vec![])).collect(),
    ))];
    let id = tid(1);
    let t = TraceData::new(&id, &p, 3);
    let got: Vec<Decision> = (0..3).map(|_| c.evaluate(&t, now).unwrap()).collect();
    assert_eq!(
        got,
        [
            Decision::Sampled,
            Decision::NotSampled,
            Decision::NotSampled
        ],
        "5 spans/s for `all`: one 3-span trace fits"
    );
    assert_eq!(
        c.evaluate(&t, now + Duration::from_secs(1)).unwrap(),
        Decision::Sampled,
        "a new second"
    );
}

#[test]
fn genai_usage_reads_every_convention_once_and_skips_rolled_up_children() {
    let int = any_value::Value::IntValue;
    // Root agent span rolls up 300 tokens (OTel); its two LLM children carry 100 + 200 (OpenInference): counted
    // once, on the root. A second root-level branch: Traceloop 50 + 25, MLflow JSON 1000, cost on both.
    let spans = vec![
        span(
            1,
            0,
            0,
            1,
            vec![
                kv("gen_ai.usage.input_tokens", int(200)),
                kv("gen_ai.usage.output_tokens", int(100)),
            ],
        ),
        span(
            1,
            1,
            0,
            1,
            vec![
                kv("llm.token_count.prompt", int(60)),
                kv("llm.token_count.completion", int(40)),
            ],
        ),
        span(
            1,
            2,
            0,
            1,
            vec![
                kv("llm.token_count.total", int(200)),
                kv("llm.cost.total", any_value::Value::DoubleValue(0.25)),
            ],
        ),
        span(
            1,
            3,
            99,
            1,
            vec![
                kv("gen_ai.usage.prompt_tokens", v_str("50")),
                kv("gen_ai.usage.completion_tokens", int(25)),
                kv(
                    "gen_ai.usage.cost.amount",
                    any_value::Value::DoubleValue(0.5),
                ),
            ],
        ),
        span(
            1,
            4,
            98,
            1,
            vec![kv(
                "mlflow.chat.tokenUsage",
                v_str("{\"input_tokens\": 700, \"output_tokens\": 300, \"total_tokens\": 1000}"),
            )],
        ),
    ];
    // Spans 1 and 2 are children of span 0 (parent id 0 + 1 = root's id).
    let mut spans = spans;
    spans[1].parent_span_id = 1u64.to_be_bytes().to_vec();
    spans[2].parent_span_id = 1u64.to_be_bytes().to_vec();
    let p = [piece(request(vec![], spans))];
    let id = tid(1);
    let t = TraceData::new(&id, &p, 5);
    let u = trace_usage(&t).unwrap();
    assert_eq!(u.total_tokens, 300 + 75 + 1000, "{u:?}");
    assert_eq!(u.input_tokens, 200 + 50 + 700);
    assert!(
        (u.cost - 0.75).abs() < 1e-9,
        "cost of the child counts: the root has none: {u:?}"
    );
    let req: Vec<Vec<u8>> = p.iter().map(|x| x.bytes.to_vec()).collect();
    let g = |extra: &str| format!("{{name: g, type: genai_usage, genai_usage: {{{extra}}}}}");
    assert_eq!(
        decide(&g("min_total_tokens: 1375"), &req),
        Decision::Sampled
    );
    assert_eq!(
        decide(&g("min_total_tokens: 1376"), &req),
        Decision::NotSampled
    );
    assert_eq!(
        decide(&g("min_total_tokens: 99999, min_total_cost: 0.7"), &req),
        Decision::Sampled
    );
}

#[test]
fn genai_usage_reads_a_span_as_genai_metrics_does() {
    let int = any_value::Value::IntValue;
    // One span, three conventions: MLflow's JSON wins, then OpenInference before OTel (MLflow's server order,
    // `spanpipe_genai::usage`), so the 1000 OTel tokens are not the span's.
    let both = span(
        1,
        0,
        0,
        1,
        vec![
            kv("gen_ai.usage.input_tokens", int(1000)),
            kv("llm.token_count.prompt", int(100)),
            kv("llm.token_count.completion", int(1)),
            kv(
                "mlflow.chat.tokenUsage",
                v_str("{\"input_tokens\": 10, \"output_tokens\": 5}"),
            ),
        ],
    );
    // OpenInference before OTel, and its own total kept (not input + output).
    let mut oi = span(
        1,
        1,
        0,
        1,
        vec![
            kv("gen_ai.usage.input_tokens", int(1000)),
            kv("llm.token_count.prompt", int(100)),
            kv("llm.token_count.completion", int(1)),
            kv("llm.token_count.total", int(120)),
        ],
    );
    oi.parent_span_id = 77u64.to_be_bytes().to_vec();
    // A parent-id cycle is never reached from a root: MLflow does not count it.
    let mut cycle = span(1, 4, 0, 1, vec![kv("gen_ai.usage.input_tokens", int(7))]);
    cycle.parent_span_id = 5u64.to_be_bytes().to_vec();
    let p = [piece(request(vec![], vec![both, oi, cycle]))];
    let id = tid(1);
    let u = trace_usage(&TraceData::new(&id, &p, 3)).unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.total_tokens),
        (10 + 100, 5 + 1, 15 + 120),
        "{u:?}"
    );
}

#[test]
fn span_type_and_finish_reason() {
    let llm_error = span(1, 1, 0, 2, vec![kv("mlflow.spanType", v_str("\"LLM\""))]);
    let tool_ok = span(
        1,
        2,
        0,
        1,
        vec![kv("gen_ai.operation.name", v_str("execute_tool"))],
    );
    let req = vec![request(vec![], vec![tool_ok.clone(), llm_error])];
    let st = |extra: &str| format!("{{name: t, type: span_type, span_type: {{{extra}}}}}");
    assert_eq!(
        decide(&st("span_types: [LLM], status_codes: [ERROR]"), &req),
        Decision::Sampled
    );
    assert_eq!(
        decide(&st("span_types: [TOOL], status_codes: [ERROR]"), &req),
        Decision::NotSampled
    );
    assert_eq!(
        decide(&st("span_types: [TOOL]"), &req),
        Decision::Sampled,
        "inferred from gen_ai.operation.name"
    );
    assert_eq!(
        decide(&st("span_types: [AGENT]"), &req),
        Decision::NotSampled
    );

    let array = any_value::Value::ArrayValue(ArrayValue {
        values: vec![
            AnyValue {
                value: Some(v_str("stop")),
            },
            AnyValue {
                value: Some(v_str("length")),
            },
        ],
    });
    let f =
        "{name: f, type: finish_reason, finish_reason: {finish_reasons: [length, content_filter]}}";
    let with = |v| {
        vec![request(
            vec![],
            vec![
                tool_ok.clone(),
                span(1, 3, 0, 1, vec![kv("gen_ai.response.finish_reasons", v)]),
            ],
        )]
    };
    assert_eq!(decide(f, &with(array)), Decision::Sampled);
    assert_eq!(decide(f, &with(v_str("content_filter"))), Decision::Sampled);
    assert_eq!(
        decide(f, &with(v_str("[\"stop\", \"length\"]"))),
        Decision::Sampled
    );
    assert_eq!(decide(f, &with(v_str("stop"))), Decision::NotSampled);
}
