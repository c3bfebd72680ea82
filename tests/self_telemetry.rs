//! spanpipe's own metrics, scraped over HTTP after an end-to-end run whose counts are known: 30 spans accepted over
//! gRPC and 20 over HTTP, a `batch` processor, one exporter to a live backend (a second spanpipe writing a file) and
//! one to a port nobody listens on with retries off. Every `otelcol_*` series is compared exactly by name and
//! labels, with the OTel Collector's names (`_total` once), HELP/TYPE lines, and `promtool check metrics`.

#[path = "spanmetrics_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use spanpipe_e2e::otlp::{
    CT_PROTOBUF, grpc_export_raw, hex, http_client, http_post, proto_body, span_id, trace_id,
};
use spanpipe_e2e::{Spanpipe, file_exporter_span_ids, free_ports, wait_until};
use support::{Sample, block_on, http_get, parse_exposition, promtool_check};

const GRPC_REQUESTS: u64 = 3;
const GRPC_SPANS_EACH: u64 = 10;
const HTTP_REQUESTS: u64 = 4;
const HTTP_SPANS_EACH: u64 = 5;
const TOTAL: u64 = GRPC_REQUESTS * GRPC_SPANS_EACH + HTTP_REQUESTS * HTTP_SPANS_EACH;

fn scrape(port: u16) -> (String, Vec<Sample>) {
    let (status, text) = http_get(&format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(status, 200, "GET /metrics");
    let samples = parse_exposition(&text);
    (text, samples)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

/// A series and its value: metric name, labels.
type Expected = (&'static str, Vec<(&'static str, &'static str)>, f64);

/// Span ids of request `r` (unique across the run).
fn ids(r: u64, n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| span_id(r * 1000 + i + 1)).collect()
}

#[test]
fn scraped_counts_equal_the_known_counts() {
    let [backend_grpc, grpc, http, metrics, dead] = free_ports::<5>();
    let backend = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{backend_grpc} }}
exporters:
  file: {{ path: spans.jsonl }}
service:
  telemetry: {{ metrics: {{ address: \"\" }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
"
        ),
        &[backend_grpc],
    );
    let sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ timeout: 100ms }}
exporters:
  otlp/good:
    endpoint: 127.0.0.1:{backend_grpc}
    tls: {{ insecure: true }}
  otlp/dead:
    endpoint: 127.0.0.1:{dead}
    tls: {{ insecure: true }}
    timeout: 2s
    retry_on_failure: {{ enabled: false }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp/good, otlp/dead] }}
"
        ),
        &[grpc, http, metrics],
    );

    let mut sent_ids = Vec::new();
    block_on(async {
        for r in 0..GRPC_REQUESTS {
            let spans = ids(r, GRPC_SPANS_EACH);
            sent_ids.extend(spans.iter().map(|s| hex(s)));
            let body = proto_body(&trace_id(r), &spans);
            grpc_export_raw(grpc, body, None)
                .await
                .unwrap_or_else(|e| panic!("gRPC request {r}: {e}"));
        }
        let client = http_client();
        for r in 0..HTTP_REQUESTS {
            let spans = ids(100 + r, HTTP_SPANS_EACH);
            sent_ids.extend(spans.iter().map(|s| hex(s)));
            let body = proto_body(&trace_id(100 + r), &spans);
            let resp = http_post(&client, http, "/v1/traces", CT_PROTOBUF, None, body).await;
            assert_eq!(resp.status().as_u16(), 200, "HTTP request {r}");
        }
    });

    // Both exporters reach a final outcome for every span (delivered, or failed without retry).
    let sent = |s: &[Sample], e: &str, what: &str| {
        value(
            s,
            &format!("otelcol_exporter_{what}_spans_total"),
            &[("exporter", e)],
        )
    };
    let settled = wait_until(Duration::from_secs(30), || {
        let (_, s) = scrape(metrics);
        sent(&s, "otlp/good", "sent") == Some(TOTAL as f64)
            && sent(&s, "otlp/dead", "send_failed") == Some(TOTAL as f64)
    });
    let (text, samples) = scrape(metrics);
    assert!(settled, "exporters did not settle; /metrics:\n{text}");

    let t = TOTAL as f64;
    let (g, h) = (
        (GRPC_REQUESTS * GRPC_SPANS_EACH) as f64,
        (HTTP_REQUESTS * HTTP_SPANS_EACH) as f64,
    );
    let recv = |tr: &'static str| [("receiver", "otlp"), ("transport", tr)];
    let exp = |e: &'static str| [("exporter", e)];
    let proc_labels = [("otel_signal", "traces"), ("processor", "batch")];
    let expected: Vec<Expected> = vec![
        (
            "otelcol_receiver_accepted_spans_total",
            recv("grpc").to_vec(),
            g,
        ),
        (
            "otelcol_receiver_accepted_spans_total",
            recv("http").to_vec(),
            h,
        ),
        (
            "otelcol_receiver_refused_spans_total",
            recv("grpc").to_vec(),
            0.0,
        ),
        (
            "otelcol_receiver_refused_spans_total",
            recv("http").to_vec(),
            0.0,
        ),
        (
            "otelcol_receiver_accepted_metric_points_total",
            recv("grpc").to_vec(),
            0.0,
        ),
        (
            "otelcol_receiver_accepted_log_records_total",
            recv("http").to_vec(),
            0.0,
        ),
        (
            "otelcol_processor_incoming_items_total",
            proc_labels.to_vec(),
            t,
        ),
        (
            "otelcol_processor_outgoing_items_total",
            proc_labels.to_vec(),
            t,
        ),
        (
            "otelcol_exporter_sent_spans_total",
            exp("otlp/good").to_vec(),
            t,
        ),
        (
            "otelcol_exporter_sent_spans_total",
            exp("otlp/dead").to_vec(),
            0.0,
        ),
        (
            "otelcol_exporter_send_failed_spans_total",
            exp("otlp/good").to_vec(),
            0.0,
        ),
        (
            "otelcol_exporter_send_failed_spans_total",
            exp("otlp/dead").to_vec(),
            t,
        ),
        (
            "otelcol_exporter_enqueue_failed_spans_total",
            exp("otlp/good").to_vec(),
            0.0,
        ),
        (
            "otelcol_exporter_enqueue_failed_spans_total",
            exp("otlp/dead").to_vec(),
            0.0,
        ),
        (
            "otelcol_exporter_sent_metric_points_total",
            exp("otlp/good").to_vec(),
            0.0,
        ),
        (
            "otelcol_exporter_sent_log_records_total",
            exp("otlp/good").to_vec(),
            0.0,
        ),
    ];
    for (name, labels, want) in &expected {
        assert_eq!(
            value(&samples, name, labels),
            Some(*want),
            "{name}{labels:?}; /metrics:\n{text}"
        );
    }
    // Exactly these series for the span counters: no stray label sets (e.g. a transport-less receiver series).
    for family in [
        "otelcol_receiver_accepted_spans_total",
        "otelcol_exporter_sent_spans_total",
        "otelcol_processor_incoming_items_total",
    ] {
        let n_expected = expected.iter().filter(|(n, _, _)| n == &family).count();
        let n_scraped = samples.iter().filter(|s| s.name == family).count();
        assert_eq!(
            n_scraped, n_expected,
            "series of {family}; /metrics:\n{text}"
        );
    }

    // Every family is described and typed; counters end in `_total` exactly once, gauges do not; a summary
    // (request durations) has its `_sum` and `_count` series besides the quantiles.
    for s in &samples {
        assert!(!s.name.contains("_total_total"), "{}", s.name);
        let summary_of = |base: &str| text.contains(&format!("# TYPE {base} summary\n"));
        let family = ["_sum", "_count"]
            .iter()
            .filter_map(|suffix| s.name.strip_suffix(suffix))
            .find(|base| summary_of(base))
            .unwrap_or(&s.name);
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
        let typed = ["counter", "gauge", "summary"]
            .iter()
            .find(|t| text.contains(&format!("# TYPE {family} {t}\n")))
            .unwrap_or_else(|| panic!("no TYPE for {family}"));
        match *typed {
            "summary" => assert!(family.ends_with("_seconds"), "{family}"),
            t => assert_eq!(t == "counter", family.ends_with("_total"), "{family}"),
        }
    }
    let uptime = value(&samples, "otelcol_process_uptime_seconds_total", &[]);
    assert!(uptime.is_some(), "uptime missing; /metrics:\n{text}");
    let rss = value(&samples, "otelcol_process_memory_rss_bytes", &[]).unwrap_or(0.0);
    assert!(rss > f64::from(1u32 << 20), "rss {rss}");
    promtool_check(&text).unwrap_or_else(|e| panic!("{e}\n/metrics:\n{text}"));

    // The live backend holds exactly the spans the counters say were sent.
    let path = backend.dir().join("spans.jsonl");
    let ok = wait_until(Duration::from_secs(10), || {
        file_exporter_span_ids(&path).len() == sent_ids.len()
    });
    assert!(
        ok,
        "backend file has {} spans",
        file_exporter_span_ids(&path).len()
    );
    let mut got = file_exporter_span_ids(&path);
    got.sort();
    sent_ids.sort();
    assert_eq!(got, sent_ids);
    drop(sp);
}
