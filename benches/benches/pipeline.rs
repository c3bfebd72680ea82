//! The whole pipeline in-process, per span: the receiver's door and delivery (`Ingest::protobuf`, what the OTLP
//! receivers run after unframing) → `batch` → fan-out → two real `otlp` exporters (sending queues, gRPC over
//! loopback to counting sinks) + `mlflow_spanmetrics` → `prometheus`. One iteration is one request; a sample ends
//! when both sinks hold every byte sent. Varied: distinct histogram series (1 k, 10 k, 100 k, via a trace tag)
//! and spans per request (50, 500, 5,000): the cost per span should stay flat.
//! Run: `cargo bench -p spanpipe-benches --bench pipeline`. `batch` uses `timeout: 20ms` (default 200ms) so a
//! sample's last partial batch does not dominate short samples; everything else is default.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use spanpipe_benches::{agent_request, grpc_sink};
use spanpipe_core::component::{Receiver, SignalConsumers};
use spanpipe_core::{
    BuildContext, ComponentError, ConfigError, Metadata, Node, ReceiverFactory, Registry, Service,
    Signal,
};
use spanpipe_otlp::receiver::Door;
use spanpipe_otlp::receiver::Ingest;
use spanpipe_otlp::receiver::OtlpReceiverConfig;

/// Spans in each configuration's pool of distinct requests (trace ids repeat only after this many).
const POOL_SPANS: u64 = 100_000;
const SPANS_PER_TRACE: u64 = 10;
/// Histogram series per distinct `team` tag value: root AGENT + 4 child span types, OK/ERROR statuses.
const SERIES_PER_TEAM: u64 = 10;

/// A receiver with no transport: hands the pipeline's consumers to the bench.
struct BenchSource(Arc<Mutex<Option<SignalConsumers>>>);

#[async_trait]
impl Receiver for BenchSource {
    async fn start(&self, consumers: SignalConsumers) -> Result<(), ComponentError> {
        *self.0.lock().expect("lock") = Some(consumers);
        Ok(())
    }
    async fn shutdown(&self) {}
}

struct BenchSourceFactory(Arc<Mutex<Option<SignalConsumers>>>);

impl ReceiverFactory for BenchSourceFactory {
    fn type_name(&self) -> &'static str {
        "bench_source"
    }
    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }
    fn build(&self, _ctx: &BuildContext, _config: &Node) -> Result<Arc<dyn Receiver>, ConfigError> {
        Ok(Arc::new(BenchSource(self.0.clone())))
    }
}

/// Requests of `spans` spans whose roots carry `mlflow.traceTag.team` = one of `teams` values, in turn.
fn pool(spans: u64, teams: u64) -> Vec<Bytes> {
    let traces = spans / SPANS_PER_TRACE;
    (0..POOL_SPANS / spans)
        .map(|r| {
            let mut req = agent_request(r + 1, traces, SPANS_PER_TRACE);
            for (i, span) in req.resource_spans[0].scope_spans[0]
                .spans
                .iter_mut()
                .enumerate()
            {
                if span.parent_span_id.is_empty() {
                    let trace = r * traces + (i as u64) / SPANS_PER_TRACE;
                    span.attributes.push(KeyValue {
                        key: "mlflow.traceTag.team".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!(
                                "team-{}",
                                trace % teams
                            ))),
                        }),
                        ..Default::default()
                    });
                }
            }
            Bytes::from(req.encode_to_vec())
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Rig {
    ingest: Arc<Ingest>,
    sinks: [grpc_sink::SinkCount; 2],
    sent: u64,
    prometheus: u16,
    service: Service,
}

async fn rig() -> Rig {
    let (p1, c1) = grpc_sink::start().await.expect("sink 1");
    let (p2, c2) = grpc_sink::start().await.expect("sink 2");
    let prometheus = free_port();
    let yaml = format!(
        "receivers:\n  bench_source: {{}}\nprocessors:\n  batch: {{ timeout: 20ms }}\n\
         exporters:\n  otlp/sink1: {{ endpoint: '127.0.0.1:{p1}', tls: {{ insecure: true }}, compression: none }}\n\
         \x20 otlp/sink2: {{ endpoint: '127.0.0.1:{p2}', tls: {{ insecure: true }}, compression: none }}\n\
         \x20 prometheus: {{ endpoint: '127.0.0.1:{prometheus}' }}\n\
         connectors:\n  mlflow_spanmetrics: {{ tags: [team], max_series: 300000 }}\n\
         service:\n  telemetry: {{ metrics: {{ address: '' }} }}\n  pipelines:\n\
         \x20   traces: {{ receivers: [bench_source], processors: [batch], exporters: [otlp/sink1, otlp/sink2, mlflow_spanmetrics] }}\n\
         \x20   metrics: {{ receivers: [mlflow_spanmetrics], exporters: [prometheus] }}\n"
    );
    let slot = Arc::new(Mutex::new(None));
    let mut registry = Registry::default();
    spanpipe_otlp::register(&mut registry);
    spanpipe_processors::register(&mut registry);
    spanpipe_spanmetrics::register(&mut registry);
    spanpipe_prometheus::register(&mut registry);
    registry.receiver(BenchSourceFactory(slot.clone()));
    let node = spanpipe_config::load_str("pipeline-bench.yaml", &yaml).expect("yaml");
    let (cfg, _) = spanpipe_config::CollectorConfig::from_node(&node).expect("config");
    let service = Service::build(&cfg, &registry).expect("graph");
    service.start().await.expect("start");
    let consumers = slot.lock().expect("lock").take().expect("receiver started");
    let door = Door::new(&OtlpReceiverConfig::default());
    Rig {
        ingest: Ingest::new(consumers, "bench_source", "inproc", door),
        sinks: [c1, c2],
        sent: 0,
        prometheus,
        service,
    }
}

impl Rig {
    /// Sends `n` requests from `pool` (retrying while the memory budget refuses), then waits until both sinks
    /// hold everything sent so far (bounded: 120 s).
    async fn run(&mut self, pool: &[Bytes], n: u64) -> Duration {
        let start = Instant::now();
        for i in 0..n {
            let req = &pool[(i as usize) % pool.len()];
            for _ in 0..100_000 {
                match self
                    .ingest
                    .protobuf(Signal::Traces, req.clone(), Metadata::default())
                    .await
                {
                    Ok(_) => break,
                    Err(_) => tokio::time::sleep(Duration::from_micros(200)).await,
                }
            }
            self.sent += req.len() as u64;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.sinks.iter().any(|s| s.bytes() < self.sent) {
            assert!(
                Instant::now() < deadline,
                "sinks did not receive everything"
            );
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        start.elapsed()
    }

    /// Histogram series on the prometheus page (`_count` lines).
    async fn series(&self) -> usize {
        let url = format!("127.0.0.1:{}", self.prometheus);
        let Ok(mut s) = tokio::net::TcpStream::connect(&url).await else {
            return 0;
        };
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = s
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let mut body = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut body)).await;
        String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.starts_with("mlflow_trace_span_duration_milliseconds_count"))
            .count()
    }
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    for series in [1_000u64, 10_000, 100_000] {
        for spans in [50u64, 500, 5_000] {
            let requests = pool(spans, series / SERIES_PER_TEAM);
            let mut rig = rt.block_on(rig());
            g.throughput(Throughput::Elements(spans));
            g.bench_with_input(
                BenchmarkId::new(
                    format!("{series}_series"),
                    format!("{spans}_spans_per_request"),
                ),
                &requests,
                |b, requests| b.iter_custom(|n| rt.block_on(rig.run(requests, n))),
            );
            // Flushes the histograms (every 15 s by default) so the page shows the series they reached.
            rt.block_on(rig.service.shutdown());
            let seen = rt.block_on(rig.series());
            eprintln!(
                "{series} series asked, {spans} spans/request: {seen} series on the prometheus page"
            );
        }
    }
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
