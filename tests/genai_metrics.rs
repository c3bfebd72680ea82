//! `genai_metrics` end to end with real GenAI clients, offline, into a real Prometheus (Debian's `prometheus`):
//! PydanticAI agents on `TestModel` with OpenInference's instrumentation, MLflow's tracing SDK with
//! `mlflow.chat.tokenUsage` spans, and the OTel Python SDK with `gen_ai.usage.*` (agents rolling their calls'
//! usage up) send through spanpipe; Prometheus scrapes the `prometheus` exporter and spanpipe's own metrics.
//!
//! Checked against what the clients recorded (`tests/python/genai_clients.py` prints it; the counts are random):
//! `gen_ai_client_token_usage_sum` per model and token type equals the recorded sums (the rolled-up agents'
//! usage counted once, as MLflow counts it), `gen_ai_client_cost_USD_total` per model equals tokens × this test's
//! price table, and the model missing from the table is counted in `spanpipe_genai_unpriced_spans_total`.

#[path = "spanmetrics_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use spanpipe_e2e::process::run_bounded;
use spanpipe_e2e::prometheus::PrometheusServer;
use spanpipe_e2e::{Spanpipe, free_ports, python_script, tail, venv_python, wait_until};
use support::http_get;

/// This test's prices, USD per 1M tokens: (model, input, output). `mystery-model` has none.
const PRICES: [(&str, f64, f64); 4] = [
    ("pa-test-model", 1.5, 6.0),
    ("mlflow-chat-a", 0.5, 2.0),
    ("mlflow-chat-b", 0.75, 3.0),
    ("otel-gpt", 3.0, 12.0),
];

fn price_table() -> String {
    let mut s = String::from("currency: USD\nprices:\n");
    for (m, i, o) in PRICES {
        // mlflow-chat-* through a regular expression, the others exactly.
        if let Some(suffix) = m.strip_prefix("mlflow-chat-") {
            s += &format!(
                "  - model_regex: 'mlflow-chat-[{suffix}]'\n    input: {i}\n    output: {o}\n"
            );
        } else {
            s += &format!("  - model: {m}\n    input: {i}\n    output: {o}\n");
        }
    }
    s
}

/// Runs one client of `genai_clients.py`; returns its recorded usage as (model, input, output).
fn run_client(client: &str, endpoint: &str, seed: u64) -> Vec<(String, u64, u64)> {
    let out = run_bounded(
        Command::new(venv_python())
            .arg(python_script("genai_clients.py"))
            .args(["--client", client, "--endpoint", endpoint, "--runs", "6"])
            .args(["--seed", &seed.to_string()]),
        Duration::from_secs(180),
    );
    assert_eq!(
        out.code(),
        0,
        "{client} client failed:\n{}",
        tail(&out.stderr, 6000)
    );
    let line = out.stdout.lines().last().unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{client}: no JSON summary ({e}): {}", out.stdout));
    let usage: Vec<(String, u64, u64)> = doc["usage"]
        .as_array()
        .expect("usage")
        .iter()
        .map(|u| {
            (
                u["model"].as_str().unwrap_or_default().to_string(),
                u["input"].as_u64().unwrap_or(0),
                u["output"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(!usage.is_empty(), "{client} recorded no usage");
    usage
}

#[test]
fn token_usage_and_cost_from_three_real_clients_reach_prometheus_exactly() {
    let [http, scrape, telemetry, prom] = free_ports::<4>();
    let dir = tempfile::tempdir().expect("tempdir");
    let prices = dir.path().join("prices.yaml");
    std::fs::write(&prices, price_table()).expect("write prices");
    let prometheus = PrometheusServer::start(prom, &[scrape, telemetry], false);
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
connectors:
  genai_metrics:
    flush_interval: 1s
    trace_wait: 10s
    cost: {{ price_table: {} }}
exporters:
  prometheus:
    endpoint: 127.0.0.1:{scrape}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{telemetry} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [genai_metrics] }}
    metrics: {{ receivers: [genai_metrics], exporters: [prometheus] }}
",
            prices.display()
        ),
        &[http, scrape, telemetry],
    );
    let endpoint = format!("http://127.0.0.1:{http}");
    let seed = std::process::id() as u64;
    let mut recorded = Vec::new();
    for client in ["pydantic", "mlflow", "otel"] {
        recorded.extend(run_client(client, &endpoint, seed));
    }

    // Expected from what the clients recorded.
    let mut tokens: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut cost: BTreeMap<String, f64> = BTreeMap::new();
    let mut unpriced: BTreeMap<String, f64> = BTreeMap::new();
    for (model, i, o) in &recorded {
        *tokens.entry((model.clone(), "input".into())).or_default() += *i as f64;
        *tokens.entry((model.clone(), "output".into())).or_default() += *o as f64;
        match PRICES.iter().find(|(m, _, _)| m == model) {
            Some((_, pi, po)) => {
                *cost.entry(model.clone()).or_default() += (*i as f64 * pi + *o as f64 * po) / 1e6
            }
            None => *unpriced.entry(model.clone()).or_default() += 1.0,
        }
    }
    assert!(
        unpriced.contains_key("mystery-model") || recorded.iter().all(|r| r.0 != "mystery-model")
    );

    let tokens_q =
        "sum by (gen_ai_request_model, gen_ai_token_type) (gen_ai_client_token_usage_sum)";
    let cost_q = "sum by (gen_ai_request_model) (gen_ai_client_cost_USD_total)";
    let unpriced_q = "sum by (model) (spanpipe_genai_unpriced_spans_total)";
    let (mut got_tokens, mut got_cost, mut got_unpriced) = Default::default();
    let matches = |got: &BTreeMap<BTreeMap<String, String>, f64>,
                   keys: &[&str],
                   want: &BTreeMap<Vec<String>, f64>,
                   tol: f64| {
        let got: BTreeMap<Vec<String>, f64> = got
            .iter()
            .map(|(l, v)| {
                (
                    keys.iter()
                        .map(|k| l.get(*k).cloned().unwrap_or_default())
                        .collect(),
                    *v,
                )
            })
            .collect();
        got.len() == want.len()
            && want.iter().all(|(k, w)| {
                got.get(k)
                    .is_some_and(|g| (g - w).abs() <= tol * w.abs().max(1e-12))
            })
    };
    let want_tokens: BTreeMap<Vec<String>, f64> = tokens
        .iter()
        .map(|((m, t), v)| (vec![m.clone(), t.clone()], *v))
        .collect();
    let want_cost: BTreeMap<Vec<String>, f64> =
        cost.iter().map(|(m, v)| (vec![m.clone()], *v)).collect();
    let want_unpriced: BTreeMap<Vec<String>, f64> = unpriced
        .iter()
        .map(|(m, v)| (vec![m.clone()], *v))
        .collect();
    let arrived = wait_until(Duration::from_secs(90), || {
        got_tokens = prometheus.sums(tokens_q);
        got_cost = prometheus.sums(cost_q);
        got_unpriced = prometheus.sums(unpriced_q);
        matches(
            &got_tokens,
            &["gen_ai_request_model", "gen_ai_token_type"],
            &want_tokens,
            0.0,
        ) && matches(&got_cost, &["gen_ai_request_model"], &want_cost, 1e-9)
            && matches(&got_unpriced, &["model"], &want_unpriced, 0.0)
    });
    assert!(
        arrived,
        "Prometheus does not hold what the clients recorded\n tokens want {want_tokens:?}\n got {got_tokens:?}\n \
         cost want {want_cost:?}\n got {got_cost:?}\n unpriced want {want_unpriced:?}\n got {got_unpriced:?}\nspanpipe:\n{}",
        tail(&sp.stderr_text(), 4000)
    );
    eprintln!("token sums (model, type): {want_tokens:?}");
    eprintln!("cost USD by model: {want_cost:?}; unpriced spans: {want_unpriced:?}");

    // The rolled-up agents' calls were not counted again, and every call still has a duration.
    // spanpipe's own counters are scraped from another target, on their own schedule: wait for them too.
    let mut rolled = BTreeMap::new();
    let seen = wait_until(Duration::from_secs(20), || {
        rolled = prometheus.sums("sum(spanpipe_genai_rolled_up_spans_total)");
        rolled.values().sum::<f64>() > 0.0
    });
    assert!(seen, "no rolled-up span seen: {rolled:?}");
    let calls = prometheus.sums("sum(gen_ai_client_operation_duration_seconds_count)");
    let want_calls = recorded.len() as f64;
    assert!(
        calls.values().sum::<f64>() >= want_calls,
        "durations: {calls:?} < {want_calls}"
    );
    let tools =
        prometheus.sums("sum by (gen_ai_tool_name) (gen_ai_execute_tool_duration_seconds_count)");
    assert!(
        tools
            .keys()
            .any(|l| l.get("gen_ai_tool_name").is_some_and(|t| t == "add")),
        "{tools:?}"
    );

    let status = sp.stop_gracefully();
    assert!(status.success(), "spanpipe exited with {status}");
}

/// `gen_ai_client_cost_USD_total` summed per `gen_ai_request_model` from the exporter's `/metrics` page.
fn scraped_cost(port: u16) -> BTreeMap<String, f64> {
    let page = http_get(&format!("http://127.0.0.1:{port}/metrics")).1;
    let mut out = BTreeMap::new();
    for s in support::parse_exposition(&page) {
        if s.name == "gen_ai_client_cost_USD_total"
            && let Some(m) = s.labels.get("gen_ai_request_model")
        {
            *out.entry(m.clone()).or_default() += s.value;
        }
    }
    out
}

#[test]
fn the_price_table_is_read_again_on_sighup() {
    let [http, scrape] = free_ports::<2>();
    let dir = tempfile::tempdir().expect("tempdir");
    let prices = dir.path().join("prices.yaml");
    std::fs::write(&prices, price_table()).expect("write prices");
    // A check interval far beyond the test: only SIGHUP can make the new price count.
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
connectors:
  genai_metrics:
    flush_interval: 200ms
    trace_wait: 0s
    cost: {{ price_table: {}, reload_interval: 1h }}
exporters:
  prometheus:
    endpoint: 127.0.0.1:{scrape}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [genai_metrics] }}
    metrics: {{ receivers: [genai_metrics], exporters: [prometheus] }}
",
            prices.display()
        ),
        &[http, scrape],
    );
    let endpoint = format!("http://127.0.0.1:{http}");
    let first = run_client("otel", &endpoint, 7);
    let seen = wait_until(Duration::from_secs(30), || {
        scraped_cost(scrape).contains_key("otel-gpt")
    });
    assert!(seen, "no cost for otel-gpt: {:?}", scraped_cost(scrape));
    assert!(
        !scraped_cost(scrape).contains_key("mystery-model"),
        "mystery-model has no price yet"
    );
    assert!(
        first.iter().any(|r| r.0 == "mystery-model"),
        "seed 7 sends mystery-model"
    );

    // mystery-model gets a price; SIGHUP; the same client again.
    let mystery = (0.25, 1.0);
    std::fs::write(
        &prices,
        format!(
            "{}  - model: mystery-model\n    input: {}\n    output: {}\n",
            price_table(),
            mystery.0,
            mystery.1
        ),
    )
    .expect("rewrite prices");
    sp.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    let second = run_client("otel", &endpoint, 7);
    let want: f64 = second
        .iter()
        .filter(|r| r.0 == "mystery-model")
        .map(|(_, i, o)| (*i as f64 * mystery.0 + *o as f64 * mystery.1) / 1e6)
        .sum();
    let mut got = BTreeMap::new();
    let priced = wait_until(Duration::from_secs(30), || {
        got = scraped_cost(scrape);
        got.get("mystery-model")
            .is_some_and(|g| (g - want).abs() <= 1e-9 * want)
    });
    assert!(
        priced,
        "after SIGHUP mystery-model should cost {want}: {got:?}\n{}",
        tail(&sp.stderr_text(), 3000)
    );
    assert!(
        sp.stderr_text().contains("price table loaded"),
        "the reload is logged"
    );
    let status = sp.stop_gracefully();
    assert!(status.success(), "spanpipe exited with {status}");
}
