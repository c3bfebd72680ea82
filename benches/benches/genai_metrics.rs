//! Cost per span of the `genai_metrics` connector (and the `genai_cost` processor) on realistic agent spans
//! (~500 B each, 10 attributes, every span with `gen_ai.usage.*`: a root agent that rolls its children's usage
//! up, so MLflow's rule has work to do). Run: `cargo bench -p spanpipe-benches --bench genai_metrics`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use spanpipe_benches::agent_request;
use spanpipe_core::wire::rewrite_spans;
use spanpipe_core::{Batch, ConsumeError, Consumer, Metadata, Signal};
use spanpipe_genai::extract::extract;
use spanpipe_genai::price::PriceTable;
use spanpipe_genai::price_source::PriceSource;
use spanpipe_genai::processor::CostEditor;
use spanpipe_genai::state::State;
use spanpipe_genai::{GenaiMetricsConfig, GenaiMetricsConnector, Settings};

const SPANS: u64 = 500;
/// Distinct requests cycled through, so traces are new (not late spans of a finished trace) each time.
const REQUESTS: u64 = 64;

const PRICES: &str = "currency: USD
prices:
  - model: gpt-4o-mini
    input: 0.15
    output: 0.60
  - model_regex: 'claude-.*'
    input: 3
    output: 15
";

fn settings(yaml: &str) -> Settings {
    let node = spanpipe_config::load_str("bench.yaml", yaml).expect("yaml");
    let cfg: GenaiMetricsConfig = node
        .deserialize("connectors.genai_metrics")
        .expect("config");
    cfg.validate().expect("valid")
}

struct Discard;

#[async_trait]
impl Consumer for Discard {
    async fn consume(&self, _batch: Batch) -> Result<(), ConsumeError> {
        Ok(())
    }
}

fn per_span(c: &mut Criterion) {
    // 50 traces of 10 spans per request: one AGENT root and LLM / TOOL / RETRIEVER / CHAT_MODEL children.
    let requests: Vec<Vec<u8>> = (0..REQUESTS)
        .map(|seed| agent_request(seed + 1, 50, 10).encode_to_vec())
        .collect();
    let md = Metadata::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prices.yaml");
    std::fs::write(&path, PRICES).expect("write");
    let table = PriceTable::parse("bench", PRICES).expect("prices");
    let mut g = c.benchmark_group("genai_metrics_500_agent_spans");
    g.throughput(Throughput::Elements(SPANS));
    // max_pending_spans bounds the finished traces remembered (a tenth of it) below the traces cycled through.
    for (name, yaml, priced) in [
        ("no_wait", "trace_wait: 0s\n", false),
        ("mlflow_rule", "max_pending_spans: 2000\n", false),
        (
            "mlflow_rule_cost_tags",
            "max_pending_spans: 2000\ntags: [deployment.environment]\nagent_name: true\n",
            true,
        ),
    ] {
        let s = Arc::new(settings(yaml));
        g.bench_function(format!("extract/{name}"), |b| {
            b.iter(|| extract(&s, &requests[0], &md, SPANS as usize).map(|f| f.spans.len()))
        });
        let mut state = State::new(s.clone(), "USD", "bench");
        let t = priced.then_some(&table);
        let mut i = 0usize;
        g.bench_function(format!("extract_and_record/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % requests.len();
                let facts = extract(&s, &requests[i], &md, SPANS as usize).expect("valid");
                state.record_batch(&facts, t, Instant::now(), 1);
            })
        });
        let prices =
            priced.then(|| Arc::new(PriceSource::open(path.clone(), "bench").expect("prices")));
        let connector =
            GenaiMetricsConnector::new("bench".into(), (*s).clone(), prices, Arc::new(Discard));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let batches: Vec<Batch> = requests
            .iter()
            .map(|r| Batch::new(Signal::Traces, Bytes::from(r.clone()), SPANS as usize))
            .collect();
        let mut i = 0usize;
        g.bench_function(format!("consume/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % batches.len();
                rt.block_on(connector.consume(batches[i].clone()))
            })
        });
    }
    g.bench_function("genai_cost_processor_rewrite", |b| {
        b.iter(|| {
            let mut e = CostEditor {
                table: &table,
                mlflow_cost: true,
                unpriced: Vec::new(),
                priced: 0,
            };
            rewrite_spans(&requests[0], &mut e).map(|o| o.payload.map(|p| p.len()))
        })
    });
    g.finish();
}

criterion_group!(benches, per_span);
criterion_main!(benches);
