//! Issue 13, bounded memory: with the default configuration (no `memory_limiter`, `service.memory_limit` left at
//! its 32 MiB default) three load generators send flat out for 20 s into `batch` → two `otlp` backends, one of
//! which answers every request 10 s late (far slower than the input). The slow backend's queue fills, the byte
//! budget refuses new requests whole (503 / UNAVAILABLE, the clients retry), and:
//! - peak RSS (`VmHWM`) stays ≤ 128 MiB;
//! - the fast backend is never held back by the slow one (its arrival rate is printed);
//! - afterwards every span a client saw acknowledged arrives at both backends exactly once;
//! - refusals are counted in `otelcol_receiver_refused_spans_total`.

#[path = "faults_support.rs"]
mod faults_support;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use faults_support::{Sink, loadgen_bin, loadgen_span_id};
use serde_json::Value;
use spanpipe_e2e::{
    Spanpipe, free_ports, peak_rss_mib, run_bounded, scrape_value, tail, wait_until,
};

const RSS_BOUND_MIB: u64 = 128;
const FLOOD_SECS: u64 = 20;

fn flood(port: u16, seed: u16) -> Value {
    let mut cmd = Command::new(loadgen_bin());
    cmd.args([
        "--threads",
        "1",
        "send",
        "--protocol",
        "grpc",
        "--connections",
        "4",
    ])
    .arg("--endpoint")
    .arg(format!("127.0.0.1:{port}"))
    .args(["--spans-per-request", "500", "--max-retries", "100"])
    .args(["--request-timeout", "10s"])
    .arg("--duration")
    .arg(format!("{FLOOD_SECS}s"))
    .arg("--seed")
    .arg(seed.to_string())
    .args(["--hard-timeout", "120s"]);
    let out = run_bounded(&mut cmd, Duration::from_secs(150));
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
fn a_flood_with_a_slow_backend_stays_under_128_mib_and_loses_nothing_acknowledged() {
    let [grpc, fast_port, slow_port, internal] = free_ports::<4>();
    let fast = Sink::start("grpc", fast_port, &[]);
    let slow = Sink::start_with_args("grpc", slow_port, &[], &["--latency", "10s"]);
    // Defaults everywhere that matters: no memory_limit, default batch, default queues.
    let yaml = format!(
        "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
processors:
  batch:
exporters:
  otlp/fast:
    endpoint: 127.0.0.1:{fast_port}
    tls: {{ insecure: true }}
  otlp/slow:
    endpoint: 127.0.0.1:{slow_port}
    tls: {{ insecure: true }}
    # The backend answers after 10 s: wait for it rather than time out and send again.
    timeout: 60s
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{internal} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp/fast, otlp/slow] }}
"
    );
    let mut sp = Spanpipe::start(&yaml, &[grpc, internal]);
    let pid = sp.pid();
    let baseline = peak_rss_mib(pid);
    let seeds = [201u16, 202, 203];
    let summaries: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = seeds
            .iter()
            .map(|&seed| s.spawn(move || (seed, flood(grpc, seed))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sender thread"))
            .collect()
    });
    sp.assert_running();
    let peak = peak_rss_mib(pid);
    let sum = |k: &str| -> u64 {
        summaries
            .iter()
            .map(|(_, v)| v[k].as_u64().unwrap_or(0))
            .sum()
    };
    let (sent, acked, failed, retries) = (
        sum("sent_spans"),
        sum("acked_spans"),
        sum("failed_spans"),
        sum("retries"),
    );
    let refused = scrape_value(
        internal,
        "otelcol_receiver_refused_spans_total{receiver=\"otlp\",transport=\"grpc\"}",
    );
    println!(
        "memory budget flood: RSS {baseline} MiB at start, peak (VmHWM) {peak} MiB (bound {RSS_BOUND_MIB}); \
         spans sent {sent}, acked {acked}, failed {failed}, client retries {retries}, refused at the receiver {refused}"
    );
    assert!(acked > 0, "nothing was accepted");
    assert!(
        refused > 0 && retries > 0,
        "the budget never refused anything: the test did not load it"
    );
    assert!(
        peak <= RSS_BOUND_MIB,
        "peak RSS {peak} MiB > {RSS_BOUND_MIB} MiB"
    );

    // Both backends end up with every acknowledged span, once.
    let all_sent = |name: &str| {
        scrape_value(
            internal,
            &format!("otelcol_exporter_sent_spans_total{{exporter=\"{name}\"}}"),
        )
    };
    let drained = wait_until(Duration::from_secs(180), || {
        all_sent("otlp/fast") >= acked && all_sent("otlp/slow") >= acked
    });
    sp.assert_running();
    let valid: HashSet<u64> = summaries
        .iter()
        .flat_map(|(seed, v)| {
            let n = v["sent_spans"].as_u64().unwrap_or(0);
            (0..n).map(move |i| loadgen_span_id(*seed, i))
        })
        .collect();
    for (name, sink) in [("fast", fast), ("slow", slow)] {
        let r = sink.finish();
        let unknown = r
            .arrivals
            .iter()
            .filter(|(id, _)| !valid.contains(id))
            .count();
        let (first, last) = (
            r.arrivals.iter().map(|a| a.1).min().unwrap_or(0),
            r.arrivals.iter().map(|a| a.1).max().unwrap_or(0),
        );
        let secs = (last.saturating_sub(first) as f64 / 1000.0).max(0.001);
        println!(
            "  {name} backend: unique {} of {acked} acked, duplicates {}, unknown {unknown}, {:.0} spans/s over {secs:.1} s",
            r.unique(),
            r.duplicates(),
            r.unique() as f64 / secs
        );
        assert_eq!(r.unique(), acked, "{name}: delivered != acknowledged");
        assert_eq!(r.duplicates(), 0, "{name}: duplicates");
        assert_eq!(unknown, 0, "{name}: ids nobody sent");
    }
    assert!(drained, "not everything delivered within 180 s");
}
