//! Cost per span of the span-changing processors (`attributes`, `resource`, `filter`) on realistic agent spans,
//! each built from YAML by its real factory and fed a 500-span batch, against a pipeline without them (the batch
//! handed straight to the next consumer). Run: `cargo bench -p spanpipe-benches --bench transform`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use spanpipe_benches::agent_request;
use spanpipe_core::{
    Batch, BuildContext, ConsumeError, Consumer, ProcessorFactory, Registry, Signal,
};

/// The end of the pipeline: takes the batch and drops it.
struct Sink;

#[async_trait]
impl Consumer for Sink {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        std::hint::black_box(batch);
        Ok(())
    }
}

fn processor(registry: &Registry, id: &str, yaml: &str) -> Arc<dyn Consumer> {
    let type_ = id.split('/').next().unwrap_or(id);
    let factory: &Arc<dyn ProcessorFactory> = &registry.processors[type_];
    let node = spanpipe_config::load_str("bench.yaml", yaml).expect("yaml");
    let ctx = BuildContext::new(id.parse().expect("id"), format!("processors.{id}"));
    factory
        .build(&ctx, &node, Signal::Traces, Arc::new(Sink))
        .unwrap_or_else(|e| panic!("{id}: {e}"))
}

const CASES: [(&str, &str, &str); 9] = [
    (
        "attributes/redact_every_span",
        "attributes",
        "actions:\n  - {key: session.id, action: hash}\n  - {key: mlflow.traceRequestId, action: delete}\n  - {key: team, value: ml, action: insert}\n",
    ),
    (
        "attributes/upsert_every_span",
        "attributes",
        "actions:\n  - {key: team, value: ml, action: upsert}\n",
    ),
    (
        "attributes/include_matches_none",
        "attributes",
        "actions:\n  - {key: session.id, action: hash}\ninclude:\n  match_type: strict\n  services: [other]\n",
    ),
    (
        "attributes/no_action_applies",
        "attributes",
        "actions:\n  - {key: absent, value: x, action: update}\n",
    ),
    (
        "resource/upsert_delete",
        "resource",
        "attributes:\n  - {key: deployment.environment, value: prod, action: upsert}\n  - {key: telemetry.sdk.name, action: delete}\n",
    ),
    (
        "filter/ottl_keeps_all",
        "filter",
        "traces:\n  span:\n    - 'attributes[\"gen_ai.system\"] == \"anthropic\" or name == \"health\"'\n",
    ),
    (
        "filter/ottl_drops_errors",
        "filter",
        "traces:\n  span: ['status.code == STATUS_CODE_ERROR']\n",
    ),
    (
        "filter/legacy_exclude_regexp",
        "filter",
        "spans:\n  exclude:\n    match_type: regexp\n    span_names: ['step 1$']\n",
    ),
    (
        "filter/drop_whole_trace",
        "filter",
        "drop_whole_trace: true\ntraces:\n  span: ['status.code == STATUS_CODE_ERROR']\n",
    ),
];

fn transform(c: &mut Criterion) {
    let spans = 500u64;
    let payload = Bytes::from(agent_request(1, 50, 10).encode_to_vec());
    let batch = Batch::new(Signal::Traces, payload, spans as usize);
    let mut registry = Registry::default();
    spanpipe_transform::register(&mut registry);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("transform_500_agent_spans");
    g.throughput(Throughput::Elements(spans));
    let sink: Arc<dyn Consumer> = Arc::new(Sink);
    g.bench_function("baseline_without_processors", |b| {
        b.iter(|| rt.block_on(sink.consume(batch.clone())))
    });
    for (name, type_, yaml) in CASES {
        let p = processor(&registry, type_, yaml);
        g.bench_function(name, |b| b.iter(|| rt.block_on(p.consume(batch.clone()))));
    }
    g.finish();
}

criterion_group!(benches, transform);
criterion_main!(benches);
