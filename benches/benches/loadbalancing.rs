//! Cost per span of the `loadbalancing` exporter's routing on realistic agent spans (~500 B each): a request of 50
//! traces × 10 spans cut into one request per backend over a ring of three (trace id read per span, ring lookup,
//! spans copied under their resource and scope), and a single-trace request (one backend: passed on as is). Then a
//! batch of 16 such requests (8,000 spans, as the `batch` processor hands it over), cut part by part as the
//! exporter does, against joining its parts first as it did before.
//! Run: `cargo bench -p spanpipe-benches --bench loadbalancing`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use spanpipe_benches::agent_request;
use spanpipe_core::Payload;
use spanpipe_core::wire::{SpanCtx, split_payload_by, split_traces_by};
use spanpipe_loadbalancing::config::RoutingKey;
use spanpipe_loadbalancing::ring::Ring;
use spanpipe_loadbalancing::route::span_position;

fn per_span(c: &mut Criterion) {
    let ring = Ring::new(&["10.0.0.1:4317", "10.0.0.2:4317", "10.0.0.3:4317"]);
    let mut g = c.benchmark_group("loadbalancing_route");
    for (name, traces, spans, key) in [
        ("traceid_50x10_three_backends", 50, 10, RoutingKey::TraceId),
        ("service_50x10_three_backends", 50, 10, RoutingKey::Service),
        ("traceid_1x500_one_backend", 1, 500, RoutingKey::TraceId),
    ] {
        let bytes = agent_request(7, traces, spans).encode_to_vec();
        g.throughput(Throughput::Elements(traces * spans));
        g.bench_function(name, |b| {
            b.iter(|| {
                let pieces = split_traces_by(&bytes, |ctx| {
                    Ok(ring.owner(span_position(&key, ctx)?).unwrap_or(0) as u64)
                })
                .expect("splits");
                std::hint::black_box(pieces.len())
            })
        });
    }
    let parts: Vec<bytes::Bytes> = (0..16)
        .map(|i| agent_request(100 + i, 50, 10).encode_to_vec().into())
        .collect();
    let batch = Payload::from_parts(parts);
    let key = RoutingKey::TraceId;
    let route = |ctx: SpanCtx<'_>| Ok(ring.owner(span_position(&key, ctx)?).unwrap_or(0) as u64);
    g.throughput(Throughput::Elements(16 * 500));
    g.bench_function("traceid_batch_16x500_by_part", |b| {
        b.iter(|| std::hint::black_box(split_payload_by(&batch, route).expect("splits").len()))
    });
    g.bench_function("traceid_batch_16x500_joined_first", |b| {
        b.iter(|| {
            let whole = batch.to_bytes();
            std::hint::black_box(split_traces_by(&whole, route).expect("splits").len())
        })
    });
    g.finish();
}

criterion_group!(benches, per_span);
criterion_main!(benches);
