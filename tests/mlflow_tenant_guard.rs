//! The mlflow exporter's tenant guard against a real MLflow server (issue 15).
//!
//! 1. `allowed_experiments`: a hostile tenant sends 100 experiment names of its own (10 per request) while tenant B sends
//!    to its allowed experiment. No experiment is created (the REST API lists none of the hostile names, before or
//!    after, and `spanpipe_mlflow_experiments_created_total` stays 0); the hostile spans land in the default
//!    experiment and are counted in `spanpipe_mlflow_routing_refused_total`; every span of B is delivered. B's
//!    per-request latency (from its POST to spanpipe until MLflow acknowledged the spans: the exporter's sending
//!    queue is off, so spanpipe answers after delivery) is measured in alternating blocks without and with the
//!    hostile tenant, and the p99 added by the hostile tenant is printed and bounded by 100 ms.
//! 2. `create_experiments: false`: spans for an unknown name are refused (counted in
//!    `otelcol_exporter_send_failed_spans_total`), the experiment is not created, other spans are delivered.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use serde_json::json;
use spanpipe_e2e::mlflow::{Mlflow, mlflow_server, unique_suffix};
use spanpipe_e2e::otlp::{CT_PROTOBUF, hex, http_client, http_post, proto_request, span_id};
use spanpipe_e2e::{Spanpipe, free_ports, tail, wait_until};

/// B's requests per block; blocks alternate baseline / hostile.
const PER_BLOCK: usize = 50;
const BLOCKS: usize = 4;
const HOSTILE_NAMES: usize = 100;
/// The hostile tenant sends its 100 names once per hostile block, one request each, about this far apart (a
/// block of B lasts ~4 s).
const HOSTILE_PACE: Duration = Duration::from_millis(350);
const NAMES_PER_REQUEST: usize = 10;
/// The bound on the p99 latency the hostile tenant may add to B's requests.
const MAX_ADDED_P99: Duration = Duration::from_millis(100);

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// Unique ids for this process and run: a shared server keeps the traces of earlier runs.
struct Ids {
    base: u64,
    next: AtomicU64,
}

impl Ids {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ids {
            base: nanos ^ (u64::from(std::process::id()) << 44),
            next: AtomicU64::new(1),
        }
    }

    fn trace(&self) -> (Vec<u8>, u64) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = self.base.to_be_bytes().to_vec();
        id.extend_from_slice(&n.to_be_bytes());
        (id, n)
    }
}

/// One trace of `spans` spans from `service`, routed by `mlflow.experiment_name` when `experiment` is set.
fn request(ids: &Ids, service: &str, experiment: Option<&str>, spans: u64) -> (Vec<u8>, Vec<u8>) {
    let (trace, n) = ids.trace();
    let span_ids: Vec<Vec<u8>> = (0..spans).map(|i| span_id(n * 64 + i)).collect();
    let mut req = proto_request(&trace, &span_ids, 0);
    let mut attrs = vec![kv("service.name", service)];
    if let Some(e) = experiment {
        attrs.push(kv("mlflow.experiment_name", e));
    }
    if let Some(r) = req.resource_spans[0].resource.as_mut() {
        r.attributes = attrs;
    }
    (trace, req.encode_to_vec())
}

/// One request of the hostile tenant: one resource per name, each with one single-span trace.
fn hostile_request(ids: &Ids, names: &[String]) -> Vec<u8> {
    let mut all =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::default();
    for name in names {
        let (_, body) = request(ids, "hostile", Some(name), 1);
        let one =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                body.as_slice(),
            )
            .expect("own encoding");
        all.resource_spans.extend(one.resource_spans);
    }
    all.encode_to_vec()
}

/// Posts OTLP/HTTP protobuf to spanpipe on its own runtime (one per thread).
struct Sender {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    port: u16,
}

impl Sender {
    fn new(port: u16) -> Self {
        Sender {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            http: http_client(),
            port,
        }
    }

    fn send(&self, body: Vec<u8>) -> u16 {
        self.rt.block_on(async {
            http_post(&self.http, self.port, "/v1/traces", CT_PROTOBUF, None, body)
                .await
                .status()
                .as_u16()
        })
    }
}

fn visible(mlflow: &Mlflow, trace: &[u8]) -> bool {
    let (status, v) = mlflow.call(
        "GET",
        &format!(
            "/api/3.0/mlflow/traces/batchGet?trace_ids=tr-{}",
            hex(trace)
        ),
        None,
    );
    status == 200 && v["traces"].as_array().is_some_and(|t| !t.is_empty())
}

/// Experiments whose name starts with `prefix` (active or deleted).
fn experiments_named(mlflow: &Mlflow, prefix: &str) -> Vec<String> {
    let v = mlflow
        .call(
            "POST",
            "/api/2.0/mlflow/experiments/search",
            Some(json!({
                "filter": format!("name LIKE '{prefix}%'"),
                "max_results": 1000,
                "view_type": "ALL",
            })),
        )
        .1;
    v["experiments"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn scrape(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// The sum of a counter's samples whose line contains every one of `labels`.
fn counter(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Nearest-rank percentile.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(name: &str, mut lat: Vec<Duration>) -> Duration {
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
    eprintln!(
        "{name}: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    p99
}

fn config(http: u16, metrics: u16, uri: &str, default_id: &str, guard: &str) -> String {
    format!(
        "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
exporters:
  mlflow:
    tracking_uri: {uri}
    experiment_id: \"{default_id}\"
    routing:
      - {{ from: resource_attribute, attribute: mlflow.experiment_name, as: experiment_name }}
{guard}
    sending_queue: {{ enabled: false }}
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 1s }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [mlflow] }}
"
    )
}

#[test]
fn hostile_names_create_nothing_and_add_no_delay_for_an_allowed_tenant() {
    let server = mlflow_server();
    let mlflow = server.client();
    let run = unique_suffix();
    let b_name = format!("guard-team-b-{run}");
    let hostile_prefix = format!("guard-hostile-{run}-");
    let b_id = mlflow.create_experiment(&b_name);
    let default_id = mlflow.create_experiment(&format!("guard-default-{run}"));
    let before = experiments_named(&mlflow, &hostile_prefix);
    let [http, metrics] = free_ports::<2>();
    let guard = "    allowed_experiments: ['guard-team-[a-z]-[0-9-]+']\n";
    let sp = Spanpipe::start(
        &config(http, metrics, &server.uri, &default_id, guard),
        &[http],
    );
    let ids = Arc::new(Ids::new());
    let b = Sender::new(http);

    // B's first request resolves its name (once); after that B is "already resolved".
    let (warm, body) = request(&ids, "team-b", Some(&b_name), 2);
    assert_eq!(b.send(body), 200);
    assert!(
        wait_until(Duration::from_secs(60), || visible(&mlflow, &warm) || {
            std::thread::sleep(Duration::from_millis(50));
            false
        }),
        "B's first trace never arrived:\n{}",
        tail(&sp.stderr_text(), 3000)
    );

    let hostile_on = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let hostile_sent = Arc::new(AtomicU64::new(0));
    let hostile = {
        let (ids, on, stop, sent) = (
            ids.clone(),
            hostile_on.clone(),
            stop.clone(),
            hostile_sent.clone(),
        );
        let prefix = hostile_prefix.clone();
        std::thread::spawn(move || {
            let s = Sender::new(http);
            let deadline = Instant::now() + Duration::from_secs(300);
            // Each hostile block: the 100 names once, spread over the block.
            let mut next_name = 0usize;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if !on.load(Ordering::Relaxed) {
                    next_name = 0;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                if next_name == HOSTILE_NAMES {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                // A client batching its spans: NAMES_PER_REQUEST resources (one span, one name each) per request.
                let names: Vec<String> = (next_name..next_name + NAMES_PER_REQUEST)
                    .map(|i| format!("{prefix}{i}"))
                    .collect();
                assert_eq!(
                    s.send(hostile_request(&ids, &names)),
                    200,
                    "hostile request refused"
                );
                sent.fetch_add(NAMES_PER_REQUEST as u64, Ordering::Relaxed);
                next_name += NAMES_PER_REQUEST;
                std::thread::sleep(HOSTILE_PACE);
            }
        })
    };

    let (mut baseline, mut with_hostile) = (Vec::new(), Vec::new());
    for block in 0..BLOCKS {
        let on = block % 2 == 1;
        hostile_on.store(on, Ordering::Relaxed);
        if on {
            std::thread::sleep(Duration::from_millis(200));
        }
        for _ in 0..PER_BLOCK {
            // With the sending queue off, spanpipe answers once MLflow acknowledged the spans: the answer's latency
            // is the request's time to MLflow, measured without polling MLflow.
            let (_, body) = request(&ids, "team-b", Some(&b_name), 2);
            let t0 = Instant::now();
            assert_eq!(b.send(body), 200);
            let took = t0.elapsed();
            if on { &mut with_hostile } else { &mut baseline }.push(took);
            std::thread::sleep(Duration::from_millis(50));
        }
        if on {
            // The block ends once the hostile tenant has sent every name (bounded).
            let want = (block / 2 + 1) as u64 * HOSTILE_NAMES as u64;
            wait_until(Duration::from_secs(60), || {
                hostile_sent.load(Ordering::Relaxed) >= want || {
                    std::thread::sleep(Duration::from_millis(20));
                    false
                }
            });
        }
        hostile_on.store(false, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    hostile.join().expect("hostile thread");
    let sent = hostile_sent.load(Ordering::Relaxed) as usize;
    assert_eq!(
        sent,
        HOSTILE_NAMES * BLOCKS / 2,
        "the hostile tenant sent {sent} spans"
    );
    eprintln!(
        "hostile requests: {sent} (each of the {HOSTILE_NAMES} names once per hostile block)"
    );

    // Every span of B is in B's experiment; every hostile span went to the default experiment.
    let b_spans = 2 * (1 + BLOCKS * PER_BLOCK);
    assert_eq!(
        mlflow.wait_for_spans(&b_id, b_spans, Duration::from_secs(120)),
        b_spans,
        "B's spans"
    );
    assert_eq!(
        mlflow.wait_for_spans(&default_id, sent, Duration::from_secs(120)),
        sent,
        "hostile spans in the default experiment"
    );
    let after = experiments_named(&mlflow, &hostile_prefix);
    eprintln!(
        "experiments named {hostile_prefix}*: before {}, after {} ({sent} hostile spans over {HOSTILE_NAMES} names)",
        before.len(),
        after.len()
    );
    assert!(before.is_empty() && after.is_empty(), "created: {after:?}");
    let text = scrape(metrics);
    let exporter = "exporter=\"mlflow\"";
    let refused = counter(&text, "spanpipe_mlflow_routing_refused_total", &[exporter]);
    let created = counter(
        &text,
        "spanpipe_mlflow_experiments_created_total",
        &[exporter],
    );
    eprintln!(
        "spanpipe_mlflow_routing_refused_total {refused}, spanpipe_mlflow_experiments_created_total {created}"
    );
    assert!(refused >= sent as f64, "refused {refused} < sent {sent}");
    assert_eq!(created, 0.0);

    let p99_base = summary("B without the hostile tenant", baseline);
    let p99_hostile = summary("B with the hostile tenant", with_hostile);
    let added = p99_hostile.saturating_sub(p99_base);
    eprintln!(
        "p99 added by the hostile tenant: {:.1} ms (bound {} ms)",
        added.as_secs_f64() * 1e3,
        MAX_ADDED_P99.as_millis()
    );
    assert!(
        added <= MAX_ADDED_P99,
        "the hostile tenant added {added:?} to B's p99"
    );
}

#[test]
fn without_creation_an_unknown_name_is_refused_and_not_created() {
    let server = mlflow_server();
    let mlflow = server.client();
    let run = unique_suffix();
    let known = format!("guard-known-{run}");
    let unknown = format!("guard-unknown-{run}");
    let known_id = mlflow.create_experiment(&known);
    let default_id = mlflow.create_experiment(&format!("guard-default2-{run}"));
    let [http, metrics] = free_ports::<2>();
    let sp = Spanpipe::start(
        &config(
            http,
            metrics,
            &server.uri,
            &default_id,
            "    create_experiments: false\n",
        ),
        &[http],
    );
    let ids = Ids::new();
    let s = Sender::new(http);
    for (exp, spans) in [
        (Some(unknown.as_str()), 3),
        (Some(known.as_str()), 2),
        (None, 1),
    ] {
        // One request at a time, each its own batch: the refusal concerns only the unknown name's spans.
        let (_, body) = request(&ids, "svc", exp, spans);
        assert_eq!(s.send(body), 200);
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(
        mlflow.wait_for_spans(&known_id, 2, Duration::from_secs(60)),
        2
    );
    assert_eq!(
        mlflow.wait_for_spans(&default_id, 1, Duration::from_secs(60)),
        1
    );
    let failed_name = "otelcol_exporter_send_failed_spans";
    let mut failed = 0.0;
    let counted = wait_until(Duration::from_secs(30), || {
        failed = counter(&scrape(metrics), failed_name, &["exporter=\"mlflow\""]);
        failed >= 3.0 || {
            std::thread::sleep(Duration::from_millis(200));
            false
        }
    });
    assert!(
        counted && failed == 3.0,
        "{failed_name}: {failed}\n{}",
        tail(&sp.stderr_text(), 3000)
    );
    assert_eq!(mlflow.experiment_id(&unknown), None, "not created");
    assert!(experiments_named(&mlflow, &unknown).is_empty());
    let log = sp.stderr_text();
    assert!(
        log.contains("does not exist and create_experiments is false"),
        "{}",
        tail(&log, 3000)
    );
}
