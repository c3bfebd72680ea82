//! Unit tests: config validation, every policy, how verdicts combine, the trace table's bounds and decision
//! caches, the processor end to end over a collecting consumer, and hostile input.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use spanpipe_core::budget::{Held, MemoryBudget};
use spanpipe_core::{Batch, ConsumeError, Consumer, Metadata, Processor, Signal};

use crate::buffer::{Buffer, Route};
use crate::config::{PolicyConfig, TailSamplingConfig};
use crate::metrics::Metrics;
use crate::policy::{Decision, Policy, final_decision, trace_usage};
use crate::trace::{Piece, TraceData};

// ---------- building spans ----------

fn v_str(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.into())
}

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn tid(n: u64) -> Vec<u8> {
    let mut id = vec![0xab; 8];
    id.extend_from_slice(&n.to_be_bytes());
    id
}

/// A span of trace `t`: id `s`, parent `p` (0: root), status code, attributes.
fn span(t: u64, s: u64, p: u64, code: i32, attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: tid(t),
        span_id: (s + 1).to_be_bytes().to_vec(),
        parent_span_id: if p == 0 {
            vec![]
        } else {
            (p + 1).to_be_bytes().to_vec()
        },
        name: format!("s{s}"),
        start_time_unix_nano: 1_000_000_000 + s * 1_000_000,
        end_time_unix_nano: 1_000_000_000 + s * 1_000_000 + 5_000_000,
        attributes: attrs,
        status: Some(Status {
            code,
            message: String::new(),
        }),
        ..Default::default()
    }
}

fn request(resource: Vec<KeyValue>, spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn piece(bytes: Vec<u8>) -> Piece {
    let spans = spanpipe_core::wire::scan_traces(&bytes, |_, _| {})
        .map(|s| s.spans)
        .unwrap_or(1);
    Piece {
        bytes: Bytes::from(bytes),
        spans,
        metadata: Metadata::default(),
        held: Held::none(),
    }
}

fn policy(yaml: &str) -> PolicyConfig {
    let node = spanpipe_config::load_str("p.yaml", yaml).expect("yaml");
    node.deserialize::<PolicyConfig>("p")
        .expect("policy config")
}

fn config(yaml: &str) -> Result<TailSamplingConfig, String> {
    let node = spanpipe_config::load_str("c.yaml", yaml).map_err(|e| e.to_string())?;
    let cfg: TailSamplingConfig = node.deserialize("c").map_err(|e| e.to_string())?;
    cfg.validate().map_err(|e| {
        let keys: Vec<String> = e.keys.iter().map(|k| format!("{k:?}")).collect();
        format!("{} at {}", e.message, keys.join("."))
    })?;
    Ok(cfg)
}

/// The decision of policy `yaml` on one trace made of `pieces`.
fn decide(yaml: &str, pieces: &[Vec<u8>]) -> Decision {
    let cfg = policy(yaml);
    cfg.validate(&[], 1).expect("valid policy");
    let pieces: Vec<Piece> = pieces.iter().cloned().map(piece).collect();
    let spans = pieces.iter().map(|p| p.spans).sum();
    let t = TraceData {
        trace_id: &tid(1),
        pieces: &pieces,
        span_count: spans,
    };
    Policy::build(&cfg, Instant::now())
        .evaluate(&t, Instant::now())
        .expect("readable")
}

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
    let exact = (u128::from(u64::MAX) * 0x1999_9999_9999_9a_u128) >> 56;
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
    let t = TraceData {
        trace_id: &tid(1),
        pieces: &p,
        span_count: 3,
    };
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
    let t = TraceData {
        trace_id: &tid(1),
        pieces: &p,
        span_count: 5,
    };
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

// ---------- the trace table ----------

fn table(yaml: &str) -> Buffer {
    let cfg = config(yaml).unwrap();
    let names: Vec<String> = cfg.policies.iter().map(|p| p.name.clone()).collect();
    Buffer::new(
        crate::limits(&cfg),
        crate::sampler(&cfg, Instant::now()),
        Arc::new(Metrics::new("tail_sampling/test", &names)),
        0,
    )
}

fn one(t: u64, s: u64, code: i32) -> Piece {
    piece(request(vec![], vec![span(t, s, 0, code, vec![])]))
}

const ERRORS: &str =
    "policies: [{name: e, type: status_code, status_code: {status_codes: [ERROR]}}]";

#[test]
fn traces_wait_for_their_decision_and_late_spans_follow_it() {
    let mut b = table(&format!("decision_wait: 1s\n{ERRORS}"));
    let t0 = Instant::now();
    assert_eq!(b.accept(&tid(1), one(1, 0, 1), t0), Route::Buffered);
    assert_eq!(b.accept(&tid(1), one(1, 1, 2), t0), Route::Buffered);
    assert_eq!(b.accept(&tid(2), one(2, 0, 1), t0), Route::Buffered);
    assert_eq!(b.decide_due(t0 + Duration::from_millis(999)), 0);
    assert_eq!(b.decide_due(t0 + Duration::from_secs(1)), 2);
    assert_eq!(b.outbox.len(), 2, "both pieces of the error trace");
    assert_eq!(b.traces(), 0);
    assert_eq!(b.bytes(), 0);
    // Late spans follow: trace 1 kept, trace 2 dropped (remembered among the last num_traces decisions).
    let later = t0 + Duration::from_secs(5);
    assert_eq!(b.accept(&tid(1), one(1, 2, 1), later), Route::Released);
    assert_eq!(
        b.accept(&tid(2), one(2, 1, 2), later),
        Route::Dropped,
        "an error arriving late does not revive it"
    );
    assert_eq!(b.outbox.len(), 3);
}

#[test]
fn past_num_traces_the_oldest_is_decided_early_never_lost() {
    let mut b = table(&format!("num_traces: 3\n{ERRORS}"));
    let t0 = Instant::now();
    for t in 1..=5 {
        b.accept(&tid(t), one(t, 0, 2), t0);
    }
    assert_eq!(b.traces(), 3);
    assert_eq!(b.outbox.len(), 2, "traces 1 and 2 decided (kept) early");
    // Their late spans still follow.
    assert_eq!(b.accept(&tid(1), one(1, 1, 1), t0), Route::Released);
    b.decide_all(t0, false);
    assert_eq!((b.traces(), b.outbox.len()), (0, 6));
}

#[test]
fn byte_bounds_decide_early() {
    let big = one(1, 0, 2).bytes.len();
    let mut b = table(&format!("max_buffered_bytes: {}\n{ERRORS}", big * 2));
    let t0 = Instant::now();
    for t in 1..=4 {
        b.accept(&tid(t), one(t, 0, 2), t0);
    }
    assert!(b.bytes() <= big * 2, "{}", b.bytes());
    assert_eq!(b.outbox.len(), 2);
    let mut b = table(&format!("maximum_trace_size_bytes: {}\n{ERRORS}", big + 1));
    assert_eq!(b.accept(&tid(1), one(1, 0, 2), t0), Route::Buffered);
    assert_eq!(b.outbox.len(), 0);
    b.accept(&tid(1), one(1, 1, 2), t0);
    assert_eq!(
        (b.traces(), b.outbox.len()),
        (0, 2),
        "decided as soon as it passed the bound"
    );
}

#[test]
fn decision_caches_outlive_the_recent_table() {
    let mut b = table(&format!(
        "num_traces: 1\ndecision_cache: {{sampled_cache_size: 10, non_sampled_cache_size: 10}}\n{ERRORS}"
    ));
    let t0 = Instant::now();
    for t in 1..=4 {
        b.accept(&tid(t), one(t, 0, (t % 2 + 1) as i32), t0);
    }
    b.decide_all(t0, false);
    // Trace 1 (error, kept) and 2 (ok, dropped) were pushed out of the 1-entry table by later decisions.
    assert_eq!(b.accept(&tid(1), one(1, 9, 1), t0), Route::Released);
    assert_eq!(b.accept(&tid(2), one(2, 9, 2), t0), Route::Dropped);
}

#[test]
fn shutdown_can_drop_pending_traces_and_counts_them() {
    let mut b = table(ERRORS);
    let t0 = Instant::now();
    b.accept(&tid(1), one(1, 0, 2), t0);
    b.decide_all(t0, true);
    assert_eq!((b.traces(), b.outbox.len()), (0, 0));
}

// ---------- the processor ----------

/// Collects what reaches it; refuses while `refuse` is set.
#[derive(Default)]
struct Sink {
    got: Mutex<Vec<Batch>>,
    refuse: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Consumer for Sink {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ConsumeError::Refused {
                reason: "full".into(),
                retry_after: Duration::from_millis(10),
            });
        }
        self.got.lock().unwrap().push(batch);
        Ok(())
    }
}

impl Sink {
    /// Span ids (first byte of trace id's last byte, span id) received.
    fn spans(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for b in self.got.lock().unwrap().iter() {
            // Per resource: garbage passed on unread (hostile-input test) is not counted.
            for part in spanpipe_core::wire::resource_parts(&b.payload).unwrap_or_default() {
                let mut ids = Vec::new();
                let scan = spanpipe_core::wire::scan_traces(&part, |_, s| {
                    let t = u64::from_be_bytes(s.trace_id[8..16].try_into().unwrap_or([0; 8]));
                    let id = u64::from_be_bytes(s.span_id.try_into().unwrap_or([0; 8]));
                    ids.push((t, id.wrapping_sub(1)));
                });
                if scan.is_ok() {
                    out.extend(ids);
                }
            }
        }
        out.sort();
        out
    }
}

fn processor(yaml: &str, sink: Arc<Sink>, budget: Arc<MemoryBudget>) -> crate::TailSampling {
    let cfg = config(yaml).unwrap();
    crate::build("tail_sampling/test", &cfg, sink, budget)
}

fn batch(bytes: Vec<u8>, budget: &Arc<MemoryBudget>) -> Batch {
    let items = spanpipe_core::wire::scan_traces(&bytes, |_, _| {})
        .unwrap()
        .spans;
    let mut b = Batch::new(Signal::Traces, Bytes::from(bytes), items);
    b.held = budget.try_reserve(b.payload.len()).unwrap();
    b
}

#[tokio::test(start_paused = true)]
async fn keeps_error_traces_whole_and_releases_them_after_decision_wait() {
    let sink = Arc::new(Sink::default());
    let budget = MemoryBudget::new(0);
    let p = processor(
        &format!("decision_wait: 2s\n{ERRORS}"),
        sink.clone(),
        budget.clone(),
    );
    p.start().await.unwrap();
    // One request mixing two traces: 1 has an error, 2 not.
    let spans = vec![
        span(1, 0, 0, 1, vec![]),
        span(2, 0, 0, 1, vec![]),
        span(1, 1, 0, 2, vec![]),
    ];
    p.consume(batch(request(vec![], spans), &budget))
        .await
        .unwrap();
    p.consume(batch(
        request(vec![], vec![span(1, 2, 0, 1, vec![])]),
        &budget,
    ))
    .await
    .unwrap();
    assert_eq!(p.pending_traces(), 2);
    assert!(budget.used() > 0, "held pieces count against the budget");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sink.spans().is_empty(), "nothing before decision_wait");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.spans(), vec![(1, 0), (1, 1), (1, 2)]);
    // A late span of trace 1 follows at once; of trace 2 is dropped.
    p.consume(batch(
        request(
            vec![],
            vec![span(1, 7, 0, 1, vec![]), span(2, 7, 0, 2, vec![])],
        ),
        &budget,
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(sink.spans(), vec![(1, 0), (1, 1), (1, 2), (1, 7)]);
    assert_eq!(p.metrics().late_sampled.get(), 1);
    assert_eq!(p.metrics().late_not_sampled.get(), 1);
    assert_eq!(p.metrics().global.get(Decision::Sampled).get(), 1);
    assert_eq!(p.metrics().global.get(Decision::NotSampled).get(), 1);
    sink.got.lock().unwrap().clear();
    assert_eq!(budget.used(), 0, "everything released");
    p.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_budget_refuses_whole_requests_and_keeps_nothing() {
    let sink = Arc::new(Sink::default());
    let budget = MemoryBudget::new(1);
    let p = processor(ERRORS, sink.clone(), budget.clone());
    p.start().await.unwrap();
    let _other = budget.try_reserve(1).unwrap();
    let spans = vec![span(1, 0, 0, 2, vec![]), span(2, 0, 0, 2, vec![])];
    let b = Batch::new(Signal::Traces, Bytes::from(request(vec![], spans)), 2);
    let err = p.consume(b).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Refused { .. }), "{err:?}");
    assert_eq!(p.pending_traces(), 0);
    p.shutdown().await;
    assert!(sink.spans().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_refusing_pipeline_stalls_intake_until_it_takes_the_kept_traces() {
    let sink = Arc::new(Sink::default());
    let budget = MemoryBudget::new(0);
    let p = processor(
        &format!("decision_wait: 1s\n{ERRORS}"),
        sink.clone(),
        budget.clone(),
    );
    p.start().await.unwrap();
    sink.refuse
        .store(true, std::sync::atomic::Ordering::Relaxed);
    p.consume(batch(
        request(vec![], vec![span(1, 0, 0, 2, vec![])]),
        &budget,
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = p
        .consume(batch(
            request(vec![], vec![span(3, 0, 0, 2, vec![])]),
            &budget,
        ))
        .await;
    assert!(matches!(refused, Err(ConsumeError::Refused { .. })));
    sink.refuse
        .store(false, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.spans(), vec![(1, 0)]);
    p.consume(batch(
        request(vec![], vec![span(3, 0, 0, 2, vec![])]),
        &budget,
    ))
    .await
    .unwrap();
    p.shutdown().await;
    assert_eq!(
        sink.spans(),
        vec![(1, 0), (3, 0)],
        "shutdown decides and delivers what is pending"
    );
}

// ---------- hostile input ----------

#[tokio::test(start_paused = true)]
async fn hostile_bytes_never_panic_and_nothing_is_lost() {
    let sink = Arc::new(Sink::default());
    let budget = MemoryBudget::new(0);
    let p = processor(
        "decision_wait: 1s\npolicies: [{name: all, type: always_sample}, {name: g, type: genai_usage, genai_usage: {min_total_tokens: 1}}, {name: f, type: finish_reason, finish_reason: {finish_reasons: [length]}}, {name: t, type: span_type, span_type: {span_types: [LLM]}}, {name: s, type: trace_state, trace_state: {key: a, values: [b]}}]",
        sink.clone(),
        budget,
    );
    p.start().await.unwrap();
    let good = request(
        vec![kv("service.name", v_str("x"))],
        vec![span(
            1,
            0,
            0,
            2,
            vec![
                kv(
                    "mlflow.chat.tokenUsage",
                    v_str("{\"input_tokens\": -5, \"output_tokens\": 1e400}"),
                ),
                kv("gen_ai.response.finish_reasons", v_str("[[[[\"length\"")),
                kv("llm.token_count.prompt", v_str("not a number")),
            ],
        )],
    );
    // Every truncation and a stream of bit flips: each is cut per trace or passed on unread; never a panic.
    let mut inputs: Vec<Vec<u8>> = (0..good.len()).map(|c| good[..c].to_vec()).collect();
    let mut x: u32 = 7;
    for _ in 0..500 {
        let mut m = good.clone();
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let i = (x as usize) % m.len();
        m[i] ^= (x >> 16) as u8 | 1;
        inputs.push(m);
    }
    let mut sent = 0;
    for bytes in inputs {
        let b = Batch::new(Signal::Traces, Bytes::from(bytes), 1);
        if p.consume(b).await.is_ok() {
            sent += 1;
        }
    }
    assert!(sent > 0);
    p.consume(Batch::new(Signal::Traces, Bytes::from(good), 1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    p.shutdown().await;
    assert!(
        sink.spans().contains(&(1, 0)),
        "the readable trace is kept (always_sample)"
    );
}

#[test]
fn usage_numbers_from_hostile_values_are_ignored_not_wrapped() {
    use crate::usage::count;
    use spanpipe_core::wire::AnyValueRef;
    assert_eq!(count(AnyValueRef::Int(-1)), None);
    assert_eq!(count(AnyValueRef::Double(f64::NAN)), None);
    assert_eq!(count(AnyValueRef::Double(-3.0)), None);
    assert_eq!(count(AnyValueRef::Str("12")), Some(12));
    assert_eq!(count(AnyValueRef::Str("\"12\"")), Some(12));
    assert_eq!(count(AnyValueRef::Str("x")), None);
    assert_eq!(count(AnyValueRef::Kvlist(b"\xff")), None);
}
