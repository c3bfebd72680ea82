//! `tail_sampling` end to end, through the real binary over OTLP/HTTP:
//!
//! - 10,000 three-span agent traces, each sent in two requests (root + LLM span first, the third span in the
//!   next request, traces interleaved): 2% have an ERROR span, 1% use more than the token threshold *in total*
//!   (two LLM spans of 6,000 tokens — OTel `gen_ai.usage.*` on one, MLflow's `mlflow.chat.tokenUsage` JSON on the
//!   other — against a 10,000 threshold; neither alone passes), 1% carry a rolled-up parent
//!   whose children must not be counted twice (6,000 in total: not expensive), the rest are sampled at 10% by the
//!   `probabilistic` policy. At the `file` backend: every error and expensive trace whole, every other trace
//!   whole or absent exactly as the Collector's rule (FNV-1a of the salt and trace id ≤ 10% of 2^64, computed
//!   here independently) says, their count within 4 sigma of the binomial mean, and late spans — sent after the
//!   decisions — present exactly for the kept traces. The processor's own decision counters match. The pipeline
//!   has the documented shape: `mlflow_spanmetrics` in a pipeline before sampling (`forward` into the sampling
//!   one) and its histogram on the `prometheus` scrape counts 100% of the spans, not the kept share.
//! - A real MLflow behind the same policies (300 traces) holds exactly the kept traces, each with all its spans.
//! - Held traces count against `service.memory_limit`: full → 503, accepted again once decided; the span metrics
//!   of the documented shape count only accepted spans.

#[path = "spanmetrics_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use spanpipe_e2e::ids::parse_deep_json;
use spanpipe_e2e::mlflow::{mlflow_server, unique_suffix};
use spanpipe_e2e::otlp::{CT_PROTOBUF, hex, http_client, http_post};
use spanpipe_e2e::{Spanpipe, free_ports, tail, wait_until};
use support::{FAMILY, histograms, http_get, parse_exposition};

const TOKEN_THRESHOLD: u64 = 10_000;
const PERCENT: u64 = 10;
const TRACES_PER_GROUP: usize = 50;

/// What a generated trace is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Error,
    Expensive,
    /// Usage rolled up onto the root (6,000) and also on its children (3,000 + 3,000): 6,000 in total.
    RolledUp,
    Plain,
}

fn class(i: u64) -> Class {
    match (i % 50, i % 100) {
        (7, _) => Class::Error,
        (_, 3) => Class::Expensive,
        (_, 5) => Class::RolledUp,
        _ => Class::Plain,
    }
}

/// splitmix64: spreads trace ids over the hash space like real random ids.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn trace_id(seed: u64, i: u64) -> Vec<u8> {
    let mut id = mix(seed ^ (i << 1)).to_be_bytes().to_vec();
    id.extend_from_slice(&mix(seed.wrapping_add(i) ^ 0x5555).to_be_bytes());
    id
}

fn span_id(i: u64, n: u64) -> Vec<u8> {
    ((i << 8) | (n + 1)).to_be_bytes().to_vec()
}

/// The Collector's `probabilistic` policy, written out independently: FNV-1a 64 of "default-hash-seed" then the
/// trace id, sampled when ≤ u64::MAX × 10 / 100.
fn collector_samples(id: &[u8]) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"default-hash-seed".iter().chain(id) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h <= (u128::from(u64::MAX) * u128::from(PERCENT) / 100) as u64
}

fn expected_kept(seed: u64, i: u64) -> bool {
    matches!(class(i), Class::Error | Class::Expensive) || collector_samples(&trace_id(seed, i))
}

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn tokens(input: i64, output: i64, openinference: bool) -> Vec<KeyValue> {
    let int = any_value::Value::IntValue;
    if openinference {
        vec![
            kv("llm.token_count.prompt", int(input)),
            kv("llm.token_count.completion", int(output)),
        ]
    } else {
        vec![
            kv("gen_ai.usage.input_tokens", int(input)),
            kv("gen_ai.usage.output_tokens", int(output)),
        ]
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Span `n` of trace `i`: 0 the agent root, 1 an LLM call, 2 a tool (an LLM call in expensive traces), 3 a late
/// span.
fn span(seed: u64, i: u64, n: u64) -> Span {
    let s = |k: &str, v: &str| kv(k, any_value::Value::StringValue(v.into()));
    let c = class(i);
    let mut attributes = match n {
        0 => vec![s("gen_ai.operation.name", "invoke_agent")],
        1 => vec![s("gen_ai.operation.name", "chat")],
        2 if c == Class::Expensive => vec![s("gen_ai.operation.name", "chat")],
        2 => vec![s("gen_ai.operation.name", "execute_tool")],
        _ => vec![s("late", "yes")],
    };
    attributes.push(kv(
        "spanpipe.test.trace_no",
        any_value::Value::IntValue(i as i64),
    ));
    attributes.extend(match (c, n) {
        (Class::Expensive, 1) => tokens(4_000, 2_000, false),
        // MLflow's own attribute: a JSON object, JSON-encoded once more as MLflow's SDK writes every value.
        (Class::Expensive, 2) => vec![s(
            "mlflow.chat.tokenUsage",
            "{\"input_tokens\": 4000, \"output_tokens\": 2000, \"total_tokens\": 6000}",
        )],
        (Class::RolledUp, 0) => tokens(4_000, 2_000, false),
        (Class::RolledUp, 1 | 2) => tokens(2_000, 1_000, true),
        (_, 1) => tokens(200, 100, false),
        _ => vec![],
    });
    let now = now_nanos();
    Span {
        trace_id: trace_id(seed, i),
        span_id: span_id(i, n),
        parent_span_id: if n == 0 { vec![] } else { span_id(i, 0) },
        name: format!("span {n}"),
        kind: 1,
        start_time_unix_nano: now - 5_000_000,
        end_time_unix_nano: now,
        attributes,
        status: Some(Status {
            message: String::new(),
            code: if c == Class::Error && n == 2 { 2 } else { 1 },
        }),
        ..Default::default()
    }
}

fn body(spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue("agent-e2e".into()),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Sends traces `0..n`: per group of 50, one request with every root and LLM span, then one with the third spans.
fn send_traces(port: u16, seed: u64, n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = http_client();
    rt.block_on(async {
        let ids: Vec<u64> = (0..n).collect();
        for group in ids.chunks(TRACES_PER_GROUP) {
            let first: Vec<Span> = group
                .iter()
                .flat_map(|&i| [span(seed, i, 0), span(seed, i, 1)])
                .collect();
            let second: Vec<Span> = group.iter().map(|&i| span(seed, i, 2)).collect();
            for spans in [first, second] {
                post(&client, port, body(spans)).await;
            }
        }
    });
}

/// Sends one late span for each trace of `which`.
fn send_late(port: u16, seed: u64, which: &[u64]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = http_client();
    rt.block_on(async {
        for group in which.chunks(100) {
            let spans = group.iter().map(|&i| span(seed, i, 3)).collect();
            post(&client, port, body(spans)).await;
        }
    });
}

async fn post(client: &reqwest::Client, port: u16, body: Vec<u8>) {
    // A 503 (memory budget, stalled downstream) asks for a retry; bounded.
    for _ in 0..100 {
        let r = http_post(client, port, "/v1/traces", CT_PROTOBUF, None, body.clone()).await;
        match r.status().as_u16() {
            200 => return,
            503 | 429 => tokio::time::sleep(Duration::from_millis(100)).await,
            s => panic!("export answered {s}"),
        }
    }
    panic!("export refused 100 times");
}

/// Trace no → span numbers at the `file` backend; panics on a span received twice.
fn received(path: &Path) -> BTreeMap<u64, BTreeSet<u64>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let complete = text.rfind('\n').map_or("", |e| &text[..e]);
    for line in complete.lines().filter(|l| !l.trim().is_empty()) {
        let v = parse_deep_json(line).expect("OTLP/JSON line");
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let id = s["spanId"].as_str().expect("spanId");
                    let raw = u64::from_str_radix(id, 16).expect("hex span id");
                    let (i, n) = (raw >> 8, (raw & 0xff) - 1);
                    assert!(
                        out.entry(i).or_default().insert(n),
                        "span {n} of trace {i} exported twice"
                    );
                }
            }
        }
    }
    out
}

/// Lines of spanpipe's `/metrics` page that start with `name` and contain every one of `labels`.
fn scrape(port: u16, name: &str, labels: &[&str]) -> u64 {
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

const PROCESSORS: &str = "\
processors:
  tail_sampling:
    decision_wait: 1s
    num_traces: 20000
    policies:
      - { name: errors, type: status_code, status_code: { status_codes: [ERROR] } }
      - { name: expensive, type: genai_usage, genai_usage: { min_total_tokens: 10000 } }
      - { name: baseline, type: probabilistic, probabilistic: { sampling_percentage: 10 } }
  batch: { timeout: 100ms }
";

fn receivers(http: u16) -> String {
    format!("receivers:\n  otlp:\n    protocols:\n      http: {{ endpoint: 127.0.0.1:{http} }}\n")
}

#[test]
fn thresholds_in_the_config_match_the_test() {
    assert!(PROCESSORS.contains(&format!("min_total_tokens: {TOKEN_THRESHOLD} ")));
    assert!(PROCESSORS.contains(&format!("sampling_percentage: {PERCENT} ")));
}

#[test]
fn ten_thousand_traces_keep_errors_and_expensive_whole_and_sample_the_rest() {
    const N: u64 = 10_000;
    const SEED: u64 = 0x7a11;
    let started = Instant::now();
    let [http, metrics, scrape_port] = free_ports::<3>();
    let dir = tempfile::Builder::new()
        .prefix("spanpipe-tail-sampling-")
        .tempdir()
        .expect("tempdir");
    let out = dir.path().join("kept.jsonl");
    // The documented shape: span metrics from every span, then sampling for the backends.
    let yaml = format!(
        "{receivers}{PROCESSORS}\
connectors:
  mlflow_spanmetrics: {{ flush_interval: 300ms, tags_wait: 1s }}
  forward:
exporters:
  file: {{ path: {out} }}
  prometheus: {{ endpoint: 127.0.0.1:{scrape_port} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces/all: {{ receivers: [otlp], exporters: [forward, mlflow_spanmetrics] }}
    traces/sampled: {{ receivers: [forward], processors: [tail_sampling, batch], exporters: [file] }}
    metrics: {{ receivers: [mlflow_spanmetrics], exporters: [prometheus] }}
",
        receivers = receivers(http),
        out = out.display()
    );
    let mut sp = Spanpipe::start(&yaml, &[http, metrics, scrape_port]);
    send_traces(http, SEED, N);
    let sent_at = started.elapsed();

    let kept: BTreeSet<u64> = (0..N).filter(|&i| expected_kept(SEED, i)).collect();
    let want_spans = kept.len() * 3;
    let done = wait_until(Duration::from_secs(30), || {
        received(&out).values().map(BTreeSet::len).sum::<usize>() >= want_spans
    });
    assert!(
        done,
        "{} of {want_spans} kept spans at the backend; spanpipe:\n{}",
        received(&out).values().map(BTreeSet::len).sum::<usize>(),
        tail(&sp.stderr_text(), 3000)
    );
    // Every trace is decided by now (the last one 1 s after it was sent): late spans follow the decisions.
    let late: Vec<u64> = (0..N)
        .filter(|i| i % 20 == 0 || class(*i) == Class::Error)
        .collect();
    send_late(http, SEED, &late);
    let late_kept = late.iter().filter(|i| kept.contains(i)).count();
    wait_until(Duration::from_secs(10), || {
        received(&out).values().map(BTreeSet::len).sum::<usize>() >= want_spans + late_kept
    });
    let decided = |d: &str| {
        scrape(
            metrics,
            "spanpipe_processor_tail_sampling_global_count_traces_sampled_total",
            &[&format!("decision=\"{d}\"")],
        )
    };
    let (sampled, not_sampled) = (decided("sampled"), decided("not_sampled"));
    let late_counted = scrape(
        metrics,
        "spanpipe_processor_tail_sampling_early_releases_from_cache_decision_total",
        &[],
    );
    // The span metrics saw every span sent, kept or not.
    let all_spans = (N * 3) as f64 + late.len() as f64;
    let url = format!("http://127.0.0.1:{scrape_port}/metrics");
    let mut measured = 0.0;
    wait_until(Duration::from_secs(15), || {
        let text = http_get(&url).1;
        measured = histograms(&parse_exposition(&text), FAMILY)
            .values()
            .map(|h| h.count)
            .sum();
        measured >= all_spans
    });
    assert_eq!(
        measured, all_spans,
        "mlflow_spanmetrics before tail_sampling counts every span"
    );
    assert!(sp.stop_gracefully().success());

    let got = received(&out);
    let mut problems = Vec::new();
    for i in 0..N {
        let mut want: BTreeSet<u64> = BTreeSet::new();
        if kept.contains(&i) {
            want.extend([0, 1, 2]);
            if late.contains(&i) {
                want.insert(3);
            }
        }
        let have = got.get(&i).cloned().unwrap_or_default();
        if have != want {
            problems.push(format!(
                "trace {i} ({:?}): spans {have:?}, want {want:?}",
                class(i)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} traces differ, e.g.:\n{}",
        problems.len(),
        problems[..problems.len().min(10)].join("\n")
    );
    // The baseline share is binomial: within 4 sigma of 10% of the traces no other policy keeps.
    let baseline: Vec<u64> = (0..N)
        .filter(|&i| matches!(class(i), Class::Plain | Class::RolledUp))
        .collect();
    let n = baseline.len() as f64;
    let p = PERCENT as f64 / 100.0;
    let k = baseline.iter().filter(|i| kept.contains(i)).count() as f64;
    let sigma = (n * p * (1.0 - p)).sqrt();
    assert!(
        (k - n * p).abs() <= 4.0 * sigma,
        "baseline kept {k} of {n}: mean {}, sigma {sigma:.1}",
        n * p
    );
    let rolled_up_kept = (0..N)
        .filter(|&i| class(i) == Class::RolledUp && kept.contains(&i))
        .count();
    assert!(
        rolled_up_kept < 30,
        "rolled-up traces (6,000 tokens, not 12,000) are sampled only by the baseline: {rolled_up_kept} of 100"
    );
    assert_eq!(
        (sampled, not_sampled),
        (kept.len() as u64, N - kept.len() as u64),
        "global_count_traces_sampled_total"
    );
    assert_eq!(late_counted, late.len() as u64, "late spans counted");
    eprintln!(
        "tail_sampling: {N} traces ({} spans) sent in {sent_at:.1?}; kept {} (errors {}, expensive {}, baseline {k} \
         of {n}: {:.2}%), {late_kept} of {} late spans followed; total {:.1?}",
        N * 3,
        kept.len(),
        (0..N).filter(|&i| class(i) == Class::Error).count(),
        (0..N).filter(|&i| class(i) == Class::Expensive).count(),
        100.0 * k / n,
        late.len(),
        started.elapsed()
    );
}

#[test]
fn mlflow_holds_exactly_the_kept_traces() {
    const N: u64 = 300;
    const SEED: u64 = 0x3f1e;
    let server = mlflow_server();
    let mlflow = server.client();
    let experiment = format!("tail-sampling-{}", unique_suffix());
    let experiment_id = mlflow.create_experiment(&experiment);
    let [http, metrics] = free_ports::<2>();
    let dir = tempfile::Builder::new()
        .prefix("spanpipe-tail-sampling-mlflow-")
        .tempdir()
        .expect("tempdir");
    let out = dir.path().join("kept.jsonl");
    let exporters = format!(
        "  mlflow:\n    tracking_uri: {}\n    experiment_id: \"{experiment_id}\"\n    retry_on_failure: {{ initial_interval: 200ms, max_interval: 2s }}\n  file: {{ path: {} }}",
        server.uri,
        out.display()
    );
    let yaml = format!(
        "{receivers}{PROCESSORS}exporters:\n{exporters}\nservice:\n  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}\n  pipelines:\n    traces: {{ receivers: [otlp], processors: [tail_sampling, batch], exporters: [mlflow, file] }}\n",
        receivers = receivers(http)
    );
    let mut sp = Spanpipe::start(&yaml, &[http]);
    send_traces(http, SEED, N);
    let kept: BTreeSet<u64> = (0..N).filter(|&i| expected_kept(SEED, i)).collect();
    assert!(kept.len() > 10, "a meaningful sample: {}", kept.len());
    let done = wait_until(Duration::from_secs(30), || {
        received(&out).values().map(BTreeSet::len).sum::<usize>() >= kept.len() * 3
    });
    assert!(
        done,
        "file backend incomplete; spanpipe:\n{}",
        tail(&sp.stderr_text(), 3000)
    );
    let complete =
        mlflow.wait_for_complete_traces(&experiment_id, kept.len(), Duration::from_secs(90));
    assert!(sp.stop_gracefully().success(), "spanpipe exit");
    assert_eq!(complete, kept.len(), "complete traces in MLflow");

    let want: BTreeSet<String> = kept
        .iter()
        .map(|&i| format!("tr-{}", hex(&trace_id(SEED, i))))
        .collect();
    let traces = mlflow.traces(&experiment_id);
    let have: BTreeSet<String> = traces
        .iter()
        .filter_map(|t| t["trace_info"]["trace_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(have, want, "MLflow holds exactly the kept traces");
    for t in &traces {
        let spans = t["spans"].as_array().map_or(0, Vec::len);
        assert_eq!(
            spans, 3,
            "trace {} whole in MLflow",
            t["trace_info"]["trace_id"]
        );
    }
    eprintln!(
        "tail_sampling → MLflow: {} of {N} traces kept, all {} spans in experiment {experiment_id}",
        kept.len(),
        kept.len() * 3
    );
}

/// A trace of one span carrying `pad` bytes of attribute.
fn padded_trace(i: u64, pad: usize) -> Vec<u8> {
    let mut s = span(0xb0d9, i, 0);
    s.attributes.push(kv(
        "padding",
        any_value::Value::StringValue("x".repeat(pad)),
    ));
    body(vec![s])
}

#[test]
fn held_traces_count_against_the_memory_budget_503_then_accepted_after_decisions() {
    const PAD: usize = 64 * 1024;
    let [http, metrics, scrape_port] = free_ports::<3>();
    let dir = tempfile::Builder::new()
        .prefix("spanpipe-tail-sampling-budget-")
        .tempdir()
        .expect("tempdir");
    let out = dir.path().join("kept.jsonl");
    let yaml = format!(
        "{receivers}\
processors:
  tail_sampling:
    decision_wait: 2s
    policies: [{{ name: all, type: always_sample }}]
connectors:
  mlflow_spanmetrics: {{ flush_interval: 200ms, tags_wait: 100ms }}
  forward:
exporters:
  file: {{ path: {out} }}
  prometheus: {{ endpoint: 127.0.0.1:{scrape_port} }}
service:
  memory_limit: 1MiB
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces/all: {{ receivers: [otlp], exporters: [forward, mlflow_spanmetrics] }}
    traces/sampled: {{ receivers: [forward], processors: [tail_sampling], exporters: [file] }}
    metrics: {{ receivers: [mlflow_spanmetrics], exporters: [prometheus] }}
",
        receivers = receivers(http),
        out = out.display()
    );
    let mut sp = Spanpipe::start(&yaml, &[http, metrics, scrape_port]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = http_client();
    let status = |i: u64| {
        rt.block_on(http_post(
            &client,
            http,
            "/v1/traces",
            CT_PROTOBUF,
            None,
            padded_trace(i, PAD),
        ))
        .status()
        .as_u16()
    };
    // Traces are held for 2 s: ~16 of 64 KiB fill the 1 MiB budget, then requests are refused whole.
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..64 {
        match status(i) {
            200 => accepted.push(i),
            503 => refused += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    let used = scrape(metrics, "spanpipe_memory_budget_used_bytes", &[]);
    assert!(
        refused > 0,
        "the budget never refused ({} accepted)",
        accepted.len()
    );
    assert!(
        accepted.len() <= 17,
        "{} traces of 64 KiB accepted under a 1 MiB budget",
        accepted.len()
    );
    assert!(
        used <= 1 << 20,
        "budget in use {used} bytes while traces are held"
    );
    // Decided after decision_wait, delivered, released: accepted again.
    let decided = wait_until(Duration::from_secs(10), || {
        received(&out).len() >= accepted.len()
    });
    assert!(decided, "held traces were not delivered");
    let again = wait_until(Duration::from_secs(10), || status(1000) == 200);
    assert!(
        again,
        "requests still refused after the held traces were released"
    );
    // The span metrics counted each accepted span once and no refused one (here the receiver itself refuses: the
    // held traces' reservations fill the budget before a request reaches the pipeline).
    let url = format!("http://127.0.0.1:{scrape_port}/metrics");
    let want_count = (accepted.len() + 1) as f64;
    let mut counted = 0.0;
    wait_until(Duration::from_secs(10), || {
        counted = histograms(&parse_exposition(&http_get(&url).1), FAMILY)
            .values()
            .map(|h| h.count)
            .sum();
        counted >= want_count
    });
    assert!(sp.stop_gracefully().success());
    assert_eq!(
        counted, want_count,
        "span metrics count refused requests' retries once"
    );
    let got: BTreeSet<u64> = received(&out).keys().copied().collect();
    let want: BTreeSet<u64> = accepted.iter().copied().chain([1000]).collect();
    assert_eq!(got, want, "every accepted trace delivered, none refused");
    eprintln!(
        "tail_sampling budget: {} of 64 traces of 64 KiB accepted under 1 MiB, {refused} refused with 503",
        accepted.len()
    );
}
