//! Cost per span of the `mlflow_spanmetrics` connector on realistic agent spans (~500 B each, 10 attributes):
//! the scan that reads each span's value and labels, recording into the histograms, the whole `consume`, and a
//! flush of 10,000 series. Run: `cargo bench -p spanpipe-benches --bench spanmetrics`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use spanpipe_benches::agent_request;
use spanpipe_core::{Batch, ConsumeError, Consumer, Metadata, Signal};
use spanpipe_spanmetrics::emit::export_request;
use spanpipe_spanmetrics::extract::extract;
use spanpipe_spanmetrics::state::State;
use spanpipe_spanmetrics::{Settings, SpanMetricsConfig, SpanMetricsConnector};

const SPANS: u64 = 500;

fn settings(yaml: &str) -> Settings {
    let node = spanpipe_config::load_str("bench.yaml", yaml).expect("yaml");
    let cfg: SpanMetricsConfig = node
        .deserialize("connectors.mlflow_spanmetrics")
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
    // 50 traces of 10 spans: one AGENT root and LLM / TOOL / RETRIEVER / CHAT_MODEL children each.
    let bytes = agent_request(1, 50, 10).encode_to_vec();
    let md = Metadata::default();
    let mut g = c.benchmark_group("spanmetrics_500_agent_spans");
    g.throughput(Throughput::Elements(SPANS));
    for (name, yaml) in [
        ("no_tags", ""),
        (
            "tags_and_metadata",
            "tags: [deployment.environment, team]\nmetadata: [mlflow.trace.session, mlflow.trace_schema.version]\n",
        ),
    ] {
        let s = Arc::new(settings(yaml));
        g.bench_function(format!("extract/{name}"), |b| {
            b.iter(|| extract(&s, &bytes, &md, SPANS as usize).map(|f| f.spans.len()))
        });
        let mut state = State::new(s.clone());
        g.bench_function(format!("extract_and_record/{name}"), |b| {
            b.iter(|| {
                let facts = extract(&s, &bytes, &md, SPANS as usize).expect("valid");
                state.record_batch(&facts, Instant::now(), 1);
            })
        });
        let connector = SpanMetricsConnector::new("bench".into(), (*s).clone(), Arc::new(Discard));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let batch = Batch::new(Signal::Traces, Bytes::from(bytes.clone()), SPANS as usize);
        g.bench_function(format!("consume/{name}"), |b| {
            b.iter(|| rt.block_on(connector.consume(batch.clone())))
        });
    }
    g.finish();
}

fn flush(c: &mut Criterion) {
    // 10,000 live series: 10,000 single-span traces whose roots carry distinct `team` tags.
    let s = Arc::new(settings("tags: [team]\nmax_series: 10000\n"));
    let mut state = State::new(s.clone());
    let md = Metadata::default();
    for seed in 0..20u64 {
        let mut req = agent_request(seed + 10, 500, 1);
        for (i, span) in req.resource_spans[0].scope_spans[0]
            .spans
            .iter_mut()
            .enumerate()
        {
            span.attributes.push(KeyValue {
                key: "mlflow.traceTag.team".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(format!(
                        "t-{}",
                        seed * 500 + i as u64
                    ))),
                }),
                ..Default::default()
            });
        }
        let bytes = req.encode_to_vec();
        let facts = extract(&s, &bytes, &md, 500).expect("valid");
        state.record_batch(&facts, Instant::now(), 1);
    }
    eprintln!("series for the flush bench: {}", state.series().len());
    let mut g = c.benchmark_group("spanmetrics_flush");
    g.throughput(Throughput::Elements(state.series().len() as u64 + 1));
    g.bench_function("encode_10k_series", |b| {
        b.iter(|| export_request(&s, state.series(), 2).map(|e| e.bytes.len()))
    });
    g.finish();
}

criterion_group!(benches, per_span, flush);
criterion_main!(benches);
