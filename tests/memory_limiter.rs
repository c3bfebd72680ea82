//! Issue 5, test 4: a flood beyond capacity into a spanpipe whose only backend is down, with `memory_limiter`
//! first in the pipeline and a sending queue large enough that memory, not the queue, is the limit.
//! Several `spanpipe-loadgen send` processes (gRPC and HTTP) send flat out. Checked: the collector's peak RSS
//! (`VmHWM`) stays under `limit_mib`, clients are refused (UNAVAILABLE / 503, counted by the load generators as
//! retries or failures) and the limiter says so in the log, the process survives; then, with the backend up,
//! every span a client saw acknowledged arrives at the sink exactly once (counted by span id).

#[path = "faults_support.rs"]
mod faults_support;

use std::process::Command;
use std::time::Duration;

use faults_support::{Sink, loadgen_bin, loadgen_span_id};
use serde_json::Value;
use spanpipe_e2e::{
    Spanpipe, free_ports, peak_rss_mib, run_bounded, scrape_value, tail, wait_until,
};

const LIMIT_MIB: u64 = 160;

/// One flat-out sender for `secs`; returns its JSON summary.
fn flood(protocol: &str, port: u16, seed: u16, secs: u64) -> Value {
    let mut cmd = Command::new(loadgen_bin());
    cmd.args([
        "--threads",
        "1",
        "send",
        "--protocol",
        protocol,
        "--connections",
        "6",
    ])
    .arg("--endpoint")
    .arg(format!("127.0.0.1:{port}"))
    .args([
        "--spans-per-request",
        "1000",
        "--max-retries",
        "2",
        "--request-timeout",
        "10s",
    ])
    .arg("--duration")
    .arg(format!("{secs}s"))
    .arg("--seed")
    .arg(seed.to_string())
    .args(["--hard-timeout", "60s"]);
    let out = run_bounded(&mut cmd, Duration::from_secs(90));
    let json = out.stdout.lines().last().unwrap_or("");
    serde_json::from_str(json).unwrap_or_else(|e| {
        panic!(
            "loadgen summary {json:?} ({e}), exit {}: {}",
            out.status,
            tail(&out.stderr, 3000)
        )
    })
}

#[test]
fn flood_with_a_dead_backend_stays_under_the_limit_and_loses_nothing_accepted() {
    let [grpc, http, backend, internal] = free_ports::<4>();
    // The backend is down for the first 20 s, then healthy.
    let sink = Sink::start("grpc", backend, &["down:20s"]);
    let yaml = format!(
        "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  memory_limiter: {{ check_interval: 50ms, limit_mib: {LIMIT_MIB}, spike_limit_mib: 60 }}
exporters:
  otlp:
    endpoint: 127.0.0.1:{backend}
    tls: {{ insecure: true }}
    compression: none
    sending_queue: {{ queue_size: 100000, num_consumers: 4 }}
    retry_on_failure: {{ initial_interval: 500ms, max_interval: 1s, max_elapsed_time: 300s }}
service:
  # This suite tests the RSS-based limiter: the byte budget (service.memory_limit) would refuse first.
  memory_limit: 0
  telemetry: {{ metrics: {{ address: 127.0.0.1:{internal} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [memory_limiter], exporters: [otlp] }}
"
    );
    let mut sp = Spanpipe::start(&yaml, &[grpc, http]);
    let pid = sp.pid();
    let baseline = peak_rss_mib(pid);

    let senders = [
        ("grpc", grpc, 101u16),
        ("grpc", grpc, 102),
        ("http", http, 103),
    ];
    let summaries: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = senders
            .iter()
            .map(|&(protocol, port, seed)| s.spawn(move || (seed, flood(protocol, port, seed, 8))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sender thread"))
            .collect()
    });
    sp.assert_running();
    let peak = peak_rss_mib(pid);

    let acked: u64 = summaries
        .iter()
        .map(|(_, v)| v["acked_spans"].as_u64().unwrap_or(0))
        .sum();
    let sent: u64 = summaries
        .iter()
        .map(|(_, v)| v["sent_spans"].as_u64().unwrap_or(0))
        .sum();
    let failed: u64 = summaries
        .iter()
        .map(|(_, v)| v["failed_spans"].as_u64().unwrap_or(0))
        .sum();
    let retries: u64 = summaries
        .iter()
        .map(|(_, v)| v["retries"].as_u64().unwrap_or(0))
        .sum();
    let logs = sp.stderr_text();
    println!(
        "memory_limiter flood: baseline RSS {baseline} MiB, peak RSS (VmHWM) {peak} MiB, limit {LIMIT_MIB} MiB; \
         spans sent {sent}, acked {acked}, failed {failed}, client retries {retries}"
    );
    for (seed, v) in &summaries {
        println!("  sender {seed}: {v}");
    }
    assert!(
        peak < LIMIT_MIB,
        "peak RSS {peak} MiB >= limit {LIMIT_MIB} MiB"
    );
    assert!(acked > 0, "nothing was accepted");
    assert!(failed + retries > 0, "no client was ever refused");
    assert!(
        logs.contains("memory use is above the soft limit; refusing data"),
        "{}",
        tail(&logs, 3000)
    );

    // With the backend up, every acknowledged span arrives, once.
    let refused = scrape_value(
        internal,
        "otelcol_processor_refused_spans_total{processor=\"memory_limiter\"}",
    );
    println!("otelcol_processor_refused_spans_total: {refused}");
    assert!(refused > 0, "the limiter counted no refused spans");
    let delivered = wait_until(Duration::from_secs(120), || {
        scrape_value(
            internal,
            "otelcol_exporter_sent_spans_total{exporter=\"otlp\"}",
        ) >= acked
    });
    sp.assert_running();
    let result = sink.finish();
    let valid: std::collections::HashSet<u64> = summaries
        .iter()
        .flat_map(|(seed, v)| {
            let n = v["sent_spans"].as_u64().unwrap_or(0);
            (0..n).map(move |i| loadgen_span_id(*seed, i))
        })
        .collect();
    let unknown = result
        .arrivals
        .iter()
        .filter(|(id, _)| !valid.contains(id))
        .count();
    println!(
        "delivered: unique {} of {acked} acked, duplicates {}, unknown ids {unknown}",
        result.unique(),
        result.duplicates()
    );
    assert!(delivered, "not everything delivered within 120 s");
    assert_eq!(result.unique(), acked, "delivered != acknowledged");
    assert_eq!(result.duplicates(), 0);
    assert_eq!(unknown, 0);
}
