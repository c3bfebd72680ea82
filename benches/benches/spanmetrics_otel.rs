//! Cost per span of the OTel-compatible `spanmetrics` connector on realistic agent spans (~500 B each, 10
//! attributes): reading each span's dimensions through the wire layer, and reading plus recording into the
//! series (what `consume` does under its lock). Run: `cargo bench -p spanpipe-benches --bench spanmetrics_otel`.

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use spanpipe_benches::agent_request;
use spanpipe_spanmetrics::otel::aggregate::State;
use spanpipe_spanmetrics::otel::config::{OtelSpanMetricsConfig, Settings};
use spanpipe_spanmetrics::otel::read;

const SPANS: u64 = 500;

fn settings(yaml: &str) -> Settings {
    let node = spanpipe_config::load_str("bench.yaml", yaml).expect("yaml");
    let cfg: OtelSpanMetricsConfig = node.deserialize("connectors.spanmetrics").expect("config");
    cfg.validate().expect("valid")
}

fn per_span(c: &mut Criterion) {
    // 50 traces of 10 spans under one resource: ~40 distinct span names, 2 statuses.
    let bytes = agent_request(1, 50, 10).encode_to_vec();
    let mut g = c.benchmark_group("spanmetrics_otel_500_agent_spans");
    g.throughput(Throughput::Elements(SPANS));
    for (name, yaml) in [
        ("default_dimensions", ""),
        (
            "two_dimensions",
            "dimensions: [{name: gen_ai.request.model}, {name: deployment.environment, default: none}]\n",
        ),
    ] {
        let s = settings(yaml);
        g.bench_function(format!("read/{name}"), |b| {
            b.iter(|| read(&s, &bytes).map(|r| r.points.len()))
        });
        let mut state = State::new(0);
        g.bench_function(format!("read_and_record/{name}"), |b| {
            b.iter(|| {
                let batch = read(&s, &bytes).expect("valid");
                state.record(&s, &batch, Instant::now(), 1);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, per_span);
criterion_main!(benches);
