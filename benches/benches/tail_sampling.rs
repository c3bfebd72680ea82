//! Cost per span of the `tail_sampling` processor on realistic agent spans (~500 B each, 50 traces of 10 spans
//! per request): `split` (cutting the request per trace, `wire::split_by_trace`), `buffer` (split + filing every
//! piece in the trace table), `decide` (the policies of configs/tail-sampling.yaml over every buffered trace:
//! status code, total tokens / cost, finish reason, span type + status, latency, 10% probabilistic), and
//! `buffer_decide_release` (all of it plus joining the kept pieces into the batch handed downstream).
//! Run: `cargo bench -p spanpipe-benches --bench tail_sampling`.

use std::sync::Arc;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use spanpipe_benches::agent_request;
use spanpipe_core::budget::Held;
use spanpipe_core::wire::split_by_trace;
use spanpipe_core::{Batch, Metadata, Signal};
use spanpipe_tailsampling::TailSamplingConfig;
use spanpipe_tailsampling::buffer::Buffer;
use spanpipe_tailsampling::metrics::Metrics;
use spanpipe_tailsampling::trace::Piece;

const TRACES: u64 = 50;
const SPANS_PER_TRACE: u64 = 10;
const SPANS: u64 = TRACES * SPANS_PER_TRACE;

const POLICIES: &str = "\
decision_wait: 1h
policies:
  - { name: errors, type: status_code, status_code: { status_codes: [ERROR] } }
  - { name: expensive, type: genai_usage, genai_usage: { min_total_tokens: 50000, min_total_cost: 0.5 } }
  - { name: truncated, type: finish_reason, finish_reason: { finish_reasons: [length, content_filter] } }
  - { name: failed-llm, type: span_type, span_type: { span_types: [LLM, CHAT_MODEL], status_codes: [ERROR] } }
  - { name: slow, type: latency, latency: { threshold_ms: 60000 } }
  - { name: baseline, type: probabilistic, probabilistic: { sampling_percentage: 10 } }
";

fn config() -> TailSamplingConfig {
    let node = spanpipe_config::load_str("bench.yaml", POLICIES).expect("yaml");
    let cfg: TailSamplingConfig = node
        .deserialize("processors.tail_sampling")
        .expect("config");
    cfg.validate().expect("valid");
    cfg
}

fn table(cfg: &TailSamplingConfig) -> Buffer {
    let names: Vec<String> = cfg.policies.iter().map(|p| p.name.clone()).collect();
    Buffer::new(
        spanpipe_tailsampling::limits(cfg),
        spanpipe_tailsampling::sampler(cfg, Instant::now()),
        Arc::new(Metrics::new("tail_sampling/bench", &names)),
        TRACES as usize,
    )
}

/// Cuts and files one request; returns the table.
fn buffer(cfg: &TailSamplingConfig, bytes: &[u8], now: Instant) -> Buffer {
    let mut b = table(cfg);
    for t in split_by_trace(bytes).expect("valid") {
        let piece = Piece {
            bytes: t.request.into_owned().into(),
            spans: t.spans,
            metadata: Metadata::default(),
            held: Held::none(),
        };
        b.accept(&t.trace_id, piece, now);
    }
    b
}

fn per_span(c: &mut Criterion) {
    let cfg = config();
    // Trace ids spread over the hash space, as real random ids are; one trace in 25 has an error span.
    let mut req = agent_request(1, TRACES, SPANS_PER_TRACE);
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            for s in &mut ss.spans {
                let t = u64::from_be_bytes(s.trace_id[8..16].try_into().expect("16 bytes"));
                if let Some(status) = s.status.as_mut() {
                    status.code = if t % 25 == 3 && status.code == 2 {
                        2
                    } else {
                        1
                    };
                }
                s.trace_id[8..]
                    .copy_from_slice(&t.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
            }
        }
    }
    let bytes = req.encode_to_vec();
    let now = Instant::now();
    {
        let mut b = buffer(&cfg, &bytes, now);
        b.decide_all(now, false);
        let kept: usize = b.outbox.iter().map(|p| p.spans).sum();
        eprintln!(
            "tail_sampling bench: {} bytes/span; keeps {kept} of {SPANS} spans",
            bytes.len() as u64 / SPANS
        );
    }
    let mut g = c.benchmark_group("tail_sampling_500_agent_spans");
    g.throughput(Throughput::Elements(SPANS));
    g.bench_function("split", |b| {
        b.iter(|| split_by_trace(&bytes).map(|t| t.len()))
    });
    // A request of one trace of 500 spans comes back as itself: only the trace ids are read.
    let one = agent_request(2, 1, SPANS).encode_to_vec();
    g.bench_function("split_one_trace", |b| {
        b.iter(|| split_by_trace(&one).map(|t| t.len()))
    });
    g.bench_function("buffer", |b| {
        b.iter_batched(|| (), |()| buffer(&cfg, &bytes, now), BatchSize::SmallInput)
    });
    g.bench_function("decide", |b| {
        b.iter_batched(
            || buffer(&cfg, &bytes, now),
            |mut t| {
                t.decide_all(now, false);
                t
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("buffer_decide_release", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut t = buffer(&cfg, &bytes, now);
                t.decide_all(now, false);
                let parts: Vec<Batch> = std::mem::take(&mut t.outbox)
                    .into_iter()
                    .map(|p| Batch {
                        signal: Signal::Traces,
                        payload: p.bytes,
                        items: p.spans,
                        metadata: p.metadata,
                        held: p.held,
                    })
                    .collect();
                (Batch::concat(parts).map(|b| b.items), t)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, per_span);
criterion_main!(benches);
