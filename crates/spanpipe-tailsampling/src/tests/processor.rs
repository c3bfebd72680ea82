//! The processor over a collecting consumer, memory budget, backpressure, hostile input.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use spanpipe_core::budget::MemoryBudget;
use spanpipe_core::{Batch, ConsumeError, Consumer, Processor, Signal};

use super::table::ERRORS;
use super::*;
use crate::policy::Decision;

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
            for part in
                spanpipe_core::wire::resource_parts(&b.payload.to_bytes()).unwrap_or_default()
            {
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
async fn a_batch_of_several_requests_is_cut_part_by_part() {
    let sink = Arc::new(Sink::default());
    let budget = MemoryBudget::new(0);
    let p = processor(
        &format!("decision_wait: 1s\n{ERRORS}"),
        sink.clone(),
        budget.clone(),
    );
    p.start().await.unwrap();
    let part = |spans| batch(request(vec![], spans), &budget);
    // Trace 1 spans three requests (its error in the one that holds only it); traces 2 and 3 share requests
    // with it.
    let mixed = Batch::concat(vec![
        part(vec![span(1, 0, 0, 1, vec![]), span(2, 0, 0, 1, vec![])]),
        part(vec![span(1, 1, 0, 2, vec![])]),
        part(vec![span(3, 0, 0, 1, vec![]), span(1, 2, 0, 1, vec![])]),
    ])
    .unwrap();
    assert_eq!(mixed.payload.parts().len(), 3);
    p.consume(mixed).await.unwrap();
    // Trace 4 alone, over two requests: held as it came.
    let one = Batch::concat(vec![
        part(vec![span(4, 0, 0, 2, vec![])]),
        part(vec![span(4, 1, 0, 1, vec![])]),
    ])
    .unwrap();
    p.consume(one).await.unwrap();
    assert_eq!(p.pending_traces(), 4);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(sink.spans(), vec![(1, 0), (1, 1), (1, 2), (4, 0), (4, 1)]);
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
    use crate::policy::trace_usage;
    use crate::trace::TraceData;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let hostile = [
        ("gen_ai.usage.input_tokens", Value::IntValue(-1)),
        ("gen_ai.usage.output_tokens", Value::DoubleValue(f64::NAN)),
        ("llm.token_count.prompt", Value::DoubleValue(-3.0)),
        ("llm.token_count.completion", v_str("x")),
        ("gen_ai.usage.prompt_tokens", Value::DoubleValue(1e300)),
        (
            "gen_ai.usage.cost.amount",
            Value::DoubleValue(f64::INFINITY),
        ),
        ("llm.cost.total", v_str("-0.5")),
        ("mlflow.llm.cost", v_str("{\"total_cost\": -1}")),
    ];
    let attrs = hostile.into_iter().map(|(k, v)| kv(k, v)).collect();
    let p = [piece(request(vec![], vec![span(1, 0, 0, 1, attrs)]))];
    let id = tid(1);
    let u = trace_usage(&TraceData::new(&id, &p, 1)).unwrap();
    assert_eq!(u, crate::facts::TraceUsage::default());
    // Counts read as strings (MLflow JSON-encodes values) are counts.
    let attrs = vec![
        kv("gen_ai.usage.input_tokens", v_str("12")),
        kv("gen_ai.usage.output_tokens", v_str("\"3\"")),
    ];
    let p = [piece(request(vec![], vec![span(1, 0, 0, 1, attrs)]))];
    let u = trace_usage(&TraceData::new(&id, &p, 1)).unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.total_tokens),
        (12, 3, 15)
    );
}
