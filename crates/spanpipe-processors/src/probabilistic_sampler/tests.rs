use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as V};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use spanpipe_core::{BuildContext, ComponentId};

use super::threshold::*;
use super::tracestate::{parse_ot, serialize, split};
use super::*;

fn cfg(yaml: &str) -> (ProbabilisticSamplerConfig, f32) {
    let node = spanpipe_config::load_str("t.yaml", yaml).expect("yaml");
    let c: ProbabilisticSamplerConfig = node
        .deserialize("processors.probabilistic_sampler")
        .expect("config");
    let pct = c.validate().expect("valid");
    (c, pct)
}

fn sampler(yaml: &str) -> Sampler {
    let (c, pct) = cfg(yaml);
    Sampler::new(&c, pct)
}

/// A trace id whose low 56 bits are `r`.
fn tid(hi: u8, r: u64) -> Vec<u8> {
    let mut t = vec![hi; 16];
    t[8..].copy_from_slice(&r.to_be_bytes());
    t[8] = hi;
    t
}

fn span(trace_id: Vec<u8>, ts: &str, attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id,
        span_id: vec![7; 8],
        trace_state: ts.into(),
        name: "s".into(),
        attributes: attrs,
        ..Default::default()
    }
}

fn decide(s: &Sampler, sp: &Span) -> (bool, Option<String>, Policy) {
    let d = s.decide(&sp.encode_to_vec()).expect("valid span");
    let ts = d
        .new_span
        .map(|b| Span::decode(b.as_slice()).expect("span").trace_state);
    (d.keep, ts, d.policy)
}

#[test]
fn thresholds_match_the_spec_examples() {
    let th = |p: f64, prec: u32| {
        encode_th(from_probability(p, prec).expect("in range")).expect("encodable")
    };
    assert_eq!(th(1.0, 4), "0");
    assert_eq!(th(0.5, 4), "8");
    assert_eq!(th(0.25, 4), "c");
    assert_eq!(th(0.1, 4), "e666");
    assert_eq!(th(0.01, 4), "fd70a");
    assert_eq!(th(1.0 / 3.0, 4), "aaab");
    assert_eq!(th(2.0 / 3.0, 4), "5555");
    assert_eq!(from_probability(0.0, 4), None);
    assert_eq!(encode_th(NEVER), None);
    assert_eq!(parse_th("c"), Some(0xc << 52));
    assert_eq!(parse_th("fd70a"), from_probability(0.01, 4));
    assert!(
        parse_th("").is_none() && parse_th("g").is_none() && parse_th("123456789abcdef").is_none()
    );
    assert_eq!(parse_rv("9b8233f7e3a151"), Some(0x9b8233f7e3a151));
    assert!(parse_rv("9b8233f7e3a15").is_none());
    assert_eq!(encode_rv(0x9b8233f7e3a151), "9b8233f7e3a151");
    assert!((probability(0xc << 52) - 0.25).abs() < 1e-12);
    assert_eq!(
        trace_id_randomness(&tid(0xff, 0x00_12_34_56_78_9a_bc_de)),
        0x12_34_56_78_9a_bc_de
    );
}

#[test]
fn tracestate_round_trips_and_puts_ot_first() {
    let (ot, others) =
        split("congo=t61rcWkgMzE, ot=th:8;rv:9b8233f7e3a151;x:y ,rojo=00f067aa0ba902b7");
    assert_eq!(others, vec!["congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"]);
    let st = parse_ot(ot.expect("ot")).expect("valid");
    assert_eq!(st.th, Some(0x8 << 52));
    assert_eq!(st.rv, Some(0x9b8233f7e3a151));
    assert_eq!(
        serialize(&st, &others),
        "ot=rv:9b8233f7e3a151;th:8;x:y,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    );
    for bad in [
        "th",
        "th:xyz",
        "rv:123",
        "Th:8",
        "th:8;",
        &"a:b;".repeat(80),
    ] {
        assert!(parse_ot(bad).is_err(), "{bad}");
    }
}

#[test]
fn proportional_keeps_by_the_trace_ids_low_56_bits_and_records_th() {
    let s = sampler("sampling_percentage: 25\n");
    let (keep, ts, policy) = decide(&s, &span(tid(1, 0xc0_00_00_00_00_00_00), "", vec![]));
    assert_eq!(
        (keep, ts.as_deref(), policy),
        (true, Some("ot=th:c"), Policy::TraceIdW3c)
    );
    let (keep, ts, _) = decide(&s, &span(tid(1, 0xbf_ff_ff_ff_ff_ff_ff), "", vec![]));
    assert_eq!((keep, ts), (false, None));
    // An upstream 50% (th:8) times 25% is 12.5%: th:e.
    let (keep, ts, _) = decide(&s, &span(tid(1, 0xf0 << 48), "ot=th:8;x:1,v=1", vec![]));
    assert_eq!((keep, ts.as_deref()), (true, Some("ot=th:e;x:1,v=1")));
    // rv wins over the trace id.
    let (keep, ts, policy) = decide(&s, &span(tid(1, 0), "ot=rv:ffffffffffffff", vec![]));
    assert_eq!(
        (keep, ts.as_deref(), policy),
        (
            true,
            Some("ot=rv:ffffffffffffff;th:c"),
            Policy::SamplingRandomness
        )
    );
}

#[test]
fn inconsistent_or_missing_randomness_follows_fail_closed() {
    let closed = sampler("sampling_percentage: 100\n");
    let open = sampler("sampling_percentage: 100\nfail_closed: false\n");
    // th:8 claims the span passed a 50% sampler, but its randomness is below 8...: inconsistent.
    let inconsistent = span(tid(1, 0x10 << 48), "ot=th:8", vec![]);
    assert!(!decide(&closed, &inconsistent).0);
    assert!(decide(&open, &inconsistent).0);
    assert_eq!(decide(&open, &inconsistent).1, None, "passed unchanged");
    let zero = span(vec![0; 16], "", vec![]);
    assert_eq!(decide(&closed, &zero).2, Policy::MissingRandomness);
    assert!(!decide(&closed, &zero).0);
    assert!(!decide(&closed, &span(tid(1, 5), "ot=th:zz", vec![])).0);
}

#[test]
fn sampling_priority_overrides_the_decision() {
    let s = sampler("sampling_percentage: 1\n");
    let prio = |v: V| {
        vec![KeyValue {
            key: "sampling.priority".into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }]
    };
    let (keep, ts, policy) = decide(&s, &span(tid(1, 0), "", prio(V::IntValue(1))));
    assert_eq!(
        (keep, ts.as_deref(), policy),
        (true, Some("ot=th:0"), Policy::SamplingPriority)
    );
    let (keep, _, policy) = decide(
        &s,
        &span(tid(1, u64::MAX >> 8), "", prio(V::StringValue("0".into()))),
    );
    assert_eq!((keep, policy), (false, Policy::SamplingPriority));
    assert!(
        decide(
            &s,
            &span(tid(1, u64::MAX >> 8), "", prio(V::DoubleValue(-1.0)))
        )
        .0,
        "negative: decided normally"
    );
}

#[test]
fn equalizing_and_hash_seed_modes() {
    let eq = sampler("sampling_percentage: 25\nmode: equalizing\n");
    // Sampled harder upstream (12.5%, th:e): passes, th unchanged.
    let (keep, ts, _) = decide(&eq, &span(tid(1, 0xf0 << 48), "ot=th:e", vec![]));
    assert_eq!((keep, ts), (true, None));
    let (keep, ts, _) = decide(&eq, &span(tid(1, 0xd0 << 48), "ot=th:8", vec![]));
    assert_eq!((keep, ts.as_deref()), (true, Some("ot=th:c")));

    let (c, _) = cfg("sampling_percentage: 30\nhash_seed: 22\n");
    assert_eq!(c.mode(), SamplerMode::HashSeed);
    let h = sampler("sampling_percentage: 30\nhash_seed: 22\n");
    let mut kept = 0;
    let mut x: u64 = 1;
    for _ in 0..20_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (keep, ts, policy) = decide(&h, &span(tid((x >> 56) as u8 | 1, x), "", vec![]));
        assert_eq!(policy, Policy::TraceIdHash);
        if keep {
            kept += 1;
            let ts = ts.expect("rv and th written");
            assert!(ts.starts_with("ot=rv:") && ts.contains(";th:"), "{ts}");
        }
    }
    assert!((kept as f64 / 20_000.0 - 0.30).abs() < 0.015, "kept {kept}");
    assert!(
        !decide(&h, &span(tid(1, 1), "ot=th:0", vec![])).0,
        "th in use: error, fail closed"
    );
    let never = sampler("sampling_percentage: 0\n");
    assert!(!decide(&never, &span(tid(1, u64::MAX >> 8), "", vec![])).0);
}

#[test]
fn kept_fraction_is_close_to_the_setting_and_decisions_are_monotonic() {
    let pcts = [1.0f32, 10.0, 25.0, 50.0, 90.0];
    let samplers: Vec<Sampler> = pcts
        .iter()
        .map(|p| sampler(&format!("sampling_percentage: {p}\n")))
        .collect();
    let mut kept = [0u32; 5];
    let mut x: u64 = 99;
    let n = 50_000;
    for _ in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let sp = span(tid(3, x), "", vec![]).encode_to_vec();
        let mut prev = true;
        for (i, s) in samplers.iter().enumerate().rev() {
            let k = s.decide(&sp).expect("ok").keep;
            // Consistency: a span kept at a lower percentage is kept at every higher one.
            assert!(prev || !k);
            prev = k;
            kept[i] += u32::from(k);
        }
    }
    for (p, k) in pcts.iter().zip(kept) {
        let frac = f64::from(k) / f64::from(n);
        assert!((frac - f64::from(*p) / 100.0).abs() < 0.01, "{p}%: {frac}");
    }
}

fn request(traces: &[(u64, usize)]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: traces
            .iter()
            .map(|&(r, n)| ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..n).map(|_| span(tid(1, r), "", vec![])).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

#[test]
fn filtering_drops_empty_resources_and_keeps_whole_traces() {
    let s = sampler("sampling_percentage: 50\n");
    let req = request(&[(0x90 << 48, 3), (0x10 << 48, 2), (0xa0 << 48, 1)]);
    let mut counts = Counts::default();
    let Filtered::Changed(out) =
        ProbabilisticSampler::filter(&s, &req.encode_to_vec(), &mut counts).expect("ok")
    else {
        panic!("changed")
    };
    let out = ExportTraceServiceRequest::decode(out.as_slice()).expect("decodes");
    assert_eq!(out.resource_spans.len(), 2);
    assert_eq!(counts.kept, 4);
    assert_eq!(counts.by_policy[Policy::TraceIdW3c as usize], [2, 4]);
    for rs in &out.resource_spans {
        for sp in &rs.scope_spans[0].spans {
            assert_eq!(sp.trace_state, "ot=th:8");
        }
    }
    let all = sampler("sampling_percentage: 100\nfail_closed: false\n");
    let mut c = Counts::default();
    let bad = request(&[(0, 0)]);
    assert!(
        matches!(ProbabilisticSampler::filter(&all, &bad.encode_to_vec(), &mut c), Ok(Filtered::Changed(ref b)) if b.is_empty())
    );
    assert!(ProbabilisticSampler::filter(&all, b"\x0a\xff", &mut c).is_err());
}

struct Capture(Mutex<Vec<Batch>>);

#[async_trait]
impl Consumer for Capture {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.0.lock().expect("lock").push(batch);
        Ok(())
    }
}

fn build(yaml: &str, next: Arc<dyn Consumer>) -> Result<Arc<dyn Processor>, ConfigError> {
    let node = spanpipe_config::load_str("c.yaml", yaml).expect("yaml");
    let id: ComponentId = "probabilistic_sampler".parse().expect("id");
    let ctx = BuildContext::new(id, "processors.probabilistic_sampler".into());
    ProbabilisticSamplerFactory.build(&ctx, &node, Signal::Traces, next)
}

#[tokio::test]
async fn the_processor_updates_counts_and_forwards_nothing_when_all_dropped() {
    let cap = Arc::new(Capture(Mutex::new(Vec::new())));
    let p = build("sampling_percentage: 50\n", cap.clone()).expect("builds");
    let keep = request(&[(0x90 << 48, 3), (0x10 << 48, 2)]).encode_to_vec();
    p.consume(Batch::new(Signal::Traces, bytes::Bytes::from(keep), 5))
        .await
        .expect("ok");
    let drop = request(&[(0x10 << 48, 2)]).encode_to_vec();
    p.consume(Batch::new(Signal::Traces, bytes::Bytes::from(drop), 2))
        .await
        .expect("ok");
    let got = cap.0.lock().expect("lock");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].items, 3);
}

#[test]
fn config_errors_point_at_the_key() {
    let next: Arc<dyn Consumer> = Arc::new(Capture(Mutex::new(Vec::new())));
    for (yaml, key) in [
        ("hash_seed: 1\n", "sampling_percentage"),
        ("sampling_percentage: -1\n", "sampling_percentage"),
        (
            "sampling_percentage: 10\nsampling_precision: 15\n",
            "sampling_precision",
        ),
        ("sampling_percentage: 10\nmode: random\n", "mode"),
        (
            "sampling_percentage: 10\nattribute_source: record\n",
            "attribute_source",
        ),
    ] {
        let err = build(yaml, next.clone()).err().expect("error").to_string();
        assert!(err.contains(key), "{yaml}: {err}");
    }
    assert_eq!(
        cfg("sampling_percentage: 10\n").0.mode(),
        SamplerMode::Proportional
    );
}
