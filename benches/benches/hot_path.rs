//! Per-stage costs on realistic agent spans: the receiver's door (`check_traces`) vs the structural scan it
//! replaced (`scan_traces`) vs a full decode, batching (append), splitting, JSON, compression.
//! Run: `cargo bench -p spanpipe-benches --bench hot_path`.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use spanpipe_benches::agent_request;
use spanpipe_core::wire::{check_traces, scan_traces, split_traces};
use spanpipe_core::{Batch, Signal};
use spanpipe_otlp::compression::{Compression, compress};

fn stages(c: &mut Criterion) {
    let req = agent_request(1, 50, 10);
    let bytes = req.encode_to_vec();
    let spans = 500u64;
    let mut g = c.benchmark_group("500_agent_spans");
    g.throughput(Throughput::Elements(spans));
    g.bench_function("scan_validate", |b| {
        b.iter(|| scan_traces(&bytes, |_, _| {}).map(|s| s.spans))
    });
    // The receiver's door with its default `max_attribute_depth: 32`: structure, ids, UTF-8 of every string,
    // wire types and the depth of every attribute value. It replaced `scan_validate` on the receive path.
    let report = check_traces(&bytes, 32).expect("agent spans pass the door");
    assert_eq!((report.spans, report.invalid_spans), (500, 0));
    g.bench_function("door_check_traces", |b| {
        b.iter(|| check_traces(&bytes, 32).map(|r| r.spans))
    });
    g.bench_function("prost_decode", |b| {
        b.iter(|| {
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                bytes.as_slice(),
            )
        })
    });
    let part = Batch::new(Signal::Traces, Bytes::from(bytes.clone()), 500);
    g.bench_function("batch_concat_x10", |b| {
        b.iter(|| Batch::concat(vec![part.clone(); 10]))
    });
    g.bench_function("split_at_100", |b| b.iter(|| split_traces(&bytes, 100)));
    g.bench_function("json_encode", |b| {
        b.iter(|| spanpipe_otlp::json::protobuf_to_json(Signal::Traces, &bytes))
    });
    g.bench_function("gzip_fast", |b| {
        b.iter(|| compress(Compression::Gzip, &bytes))
    });
    g.bench_function("zstd_1", |b| b.iter(|| compress(Compression::Zstd, &bytes)));
    g.finish();
    eprintln!("bytes per span: {}", bytes.len() as u64 / spans);
}

criterion_group!(benches, stages);
criterion_main!(benches);
