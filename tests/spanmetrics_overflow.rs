//! Cardinality bounds: 100,000 traces, each tagged with a distinct `team`, into a connector with
//! `max_series: 1000` — the scrape shows exactly 1,000 tagged series plus the `otel_metric_overflow="true"`
//! series holding the other 99,000 spans, and spanpipe's resident memory stays bounded. A second run with
//! `max_series: 10000` and 10,000 distinct teams reports the peak memory with 10,000 live series.

#[path = "spanmetrics_support.rs"]
mod support;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use spanpipe_e2e::otlp::{http_client, http_post};
use spanpipe_e2e::{Spanpipe, free_ports, tail};
use support::{FAMILY, block_on, histograms, http_get, memory_kib, parse_exposition};

const PER_REQUEST: u64 = 500;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// Root spans `first..first+n`, span `i` of trace `i` tagged `team-i`.
fn request(first: u64, n: u64) -> Vec<u8> {
    let spans = (first..first + n)
        .map(|i| {
            let mut trace_id = [7u8; 16];
            trace_id[8..].copy_from_slice(&i.to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: (i + 1).to_be_bytes().to_vec(),
                name: "agent".into(),
                start_time_unix_nano: 1_700_000_000_000_000_000,
                end_time_unix_nano: 1_700_000_000_000_000_000 + (i % 50) * 1_000_000,
                attributes: vec![
                    kv("mlflow.spanType", "\"AGENT\""),
                    kv("mlflow.traceTag.team", &format!("team-{i}")),
                ],
                status: Some(Status {
                    code: 1,
                    message: String::new(),
                }),
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn config(http: u16, scrape: u16, max_series: usize) -> String {
    format!(
        "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
connectors:
  mlflow_spanmetrics:
    tags: [team]
    max_series: {max_series}
    flush_interval: 500ms
exporters:
  prometheus:
    endpoint: 127.0.0.1:{scrape}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [mlflow_spanmetrics] }}
    metrics: {{ receivers: [mlflow_spanmetrics], exporters: [prometheus] }}
"
    )
}

/// Sends `traces` tagged root spans; returns (baseline, peak) `VmHWM` in KiB and the last scrape.
fn run(max_series: usize, traces: u64) -> (u64, u64, String) {
    let [http, scrape] = free_ports::<2>();
    let mut sp = Spanpipe::start(&config(http, scrape, max_series), &[http, scrape]);
    let (baseline, _) = memory_kib(sp.pid());
    let started = Instant::now();
    block_on(async {
        let client = http_client();
        let mut first = 0;
        while first < traces {
            let n = PER_REQUEST.min(traces - first);
            let r = http_post(
                &client,
                http,
                "/v1/traces",
                "application/x-protobuf",
                None,
                request(first, n),
            )
            .await;
            assert_eq!(r.status().as_u16(), 200, "request at {first}");
            first += n;
        }
    });
    eprintln!("sent {traces} spans in {:.2?}", started.elapsed());
    // Each scrape of 10,000 histograms is ~30 MiB of text: poll gently.
    let url = format!("http://127.0.0.1:{scrape}/metrics");
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = http_get(&url).1;
        let counted: f64 = histograms(&parse_exposition(&text), FAMILY)
            .values()
            .map(|h| h.count)
            .sum();
        if counted >= traces as f64 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the scrape never counted {traces} spans:\n{}",
            tail(&text, 3000)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let (peak, rss) = memory_kib(sp.pid());
    eprintln!(
        "max_series {max_series}, {traces} distinct tags: VmHWM {baseline} KiB at start, {peak} KiB peak, {rss} KiB now, scrape {} KiB",
        text.len() / 1024
    );
    let status = sp.stop_gracefully();
    assert!(status.success(), "spanpipe exited with {status}");
    (baseline, peak, text)
}

#[test]
fn distinct_tags_past_max_series_go_to_the_overflow_series_in_bounded_memory() {
    let (baseline, peak, text) = run(1000, 100_000);
    let series = histograms(&parse_exposition(&text), FAMILY);
    let tagged = series
        .keys()
        .filter(|l| l.contains_key("tags_team"))
        .count();
    let overflow: Vec<_> = series
        .iter()
        .filter(|(l, _)| l.get("otel_metric_overflow").map(String::as_str) == Some("true"))
        .collect();
    assert_eq!(tagged, 1000);
    assert_eq!(overflow.len(), 1, "one overflow series");
    assert_eq!(
        overflow[0].0.len(),
        1,
        "the overflow series has no other label"
    );
    assert_eq!(overflow[0].1.count, 99_000.0);
    assert_eq!(series.len(), 1001);
    // 1,000 series and 100,000 spans must not cost more than a few tens of MiB over the idle process.
    assert!(
        peak - baseline < 64 * 1024,
        "memory grew by {} KiB",
        peak - baseline
    );
}

#[test]
fn peak_memory_with_ten_thousand_live_series() {
    let (baseline, peak, text) = run(10_000, 10_000);
    let series = histograms(&parse_exposition(&text), FAMILY);
    assert_eq!(series.len(), 10_000);
    assert!(
        !series
            .keys()
            .any(|l| l.contains_key("otel_metric_overflow"))
    );
    eprintln!(
        "PEAK MEMORY: 10,000 live series: VmHWM {peak} KiB ({} KiB over the idle process)",
        peak - baseline
    );
    assert!(
        peak - baseline < 128 * 1024,
        "memory grew by {} KiB",
        peak - baseline
    );
}
