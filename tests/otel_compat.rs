//! OTel Collector options with real behaviour, end to end against the real binary: the `prometheus` exporter's
//! `send_timestamps` and `enable_open_metrics` (checked by `promtool`: `check metrics` for the text format,
//! `tsdb create-blocks-from openmetrics` — Prometheus's strict OpenMetrics parser — for OpenMetrics), and the
//! `otlp` receiver's `http.cors` (a browser's preflight and cross-origin POST), and `filter`'s legacy `metrics` /
//! `logs` sections (a metric dropped by name, log records below a severity).

#[path = "spanmetrics_support.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use prost::Message;
use spanpipe_e2e::otlp::{http_client, http_post};
use spanpipe_e2e::{Spanpipe, free_ports, run_bounded, wait_until};
use support::{block_on, promtool_check};

/// One counter and one histogram, both stamped `time_ns`.
fn metrics_request(time_ns: u64) -> Vec<u8> {
    let counter = Metric {
        name: "agent.calls".into(),
        description: "Calls made".into(),
        unit: "1".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                time_unix_nano: time_ns,
                value: Some(number_data_point::Value::AsInt(7)),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    let histogram = Metric {
        name: "agent.latency".into(),
        description: "Latency".into(),
        unit: "s".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: time_ns,
                count: 6,
                sum: Some(4.5),
                bucket_counts: vec![1, 2, 3],
                explicit_bounds: vec![0.5, 1.0],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![counter, histogram],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// GET `url`: status, content type and body.
fn get(url: &str) -> (u16, String, String) {
    block_on(async {
        match http_client().get(url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let ctype = r
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                (status, ctype, r.text().await.unwrap_or_default())
            }
            Err(_) => (0, String::new(), String::new()),
        }
    })
}

#[test]
fn send_timestamps_and_open_metrics_pass_promtool() {
    let [http, text_port, om_port] = free_ports::<3>();
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
exporters:
  prometheus/text:
    endpoint: 127.0.0.1:{text_port}
    send_timestamps: true
  prometheus/om:
    endpoint: localhost:{om_port}
    send_timestamps: true
    enable_open_metrics: true
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [prometheus/text, prometheus/om] }}
"
        ),
        &[http, text_port, om_port],
    );
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let body = metrics_request(now_ms * 1_000_000);
    let status = block_on(async {
        http_post(
            &http_client(),
            http,
            "/v1/metrics",
            "application/x-protobuf",
            None,
            body,
        )
        .await
        .status()
        .as_u16()
    });
    assert_eq!(status, 200);

    let text_url = format!("http://127.0.0.1:{text_port}/metrics");
    let mut text = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            text = get(&text_url).2;
            text.contains("agent_latency_seconds_count")
        }),
        "text page never showed the metrics:\n{text}\n{}",
        sp.stderr_text()
    );
    let (_, ctype, _) = get(&text_url);
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        text.contains(&format!(
            "agent_calls_total{{otel_scope_name=\"\"}} 7 {now_ms}\n"
        )) || text
            .lines()
            .any(|l| l.starts_with("agent_calls_total") && l.ends_with(&format!(" 7 {now_ms}"))),
        "the counter sample carries its timestamp in ms:\n{text}"
    );
    promtool_check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    let (status, ctype, om) = get(&format!("http://127.0.0.1:{om_port}/metrics"));
    assert_eq!(status, 200);
    assert_eq!(
        ctype,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE agent_calls counter\n"), "{om}");
    let secs = format!(" 7 {}.{:03}\n", now_ms / 1000, now_ms % 1000);
    assert!(
        om.contains(&secs),
        "OpenMetrics timestamps are seconds:\n{om}"
    );

    // Prometheus's own OpenMetrics parser (strict: `# EOF`, counter `_total` samples, timestamps) reads it all.
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("metrics.om");
    std::fs::write(&input, &om).expect("write");
    let out = run_bounded(
        Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(dir.path().join("blocks")),
        Duration::from_secs(60),
    );
    assert_eq!(
        out.code(),
        0,
        "promtool rejected the OpenMetrics page:\n{}{}\n{om}",
        out.stdout,
        out.stderr
    );
    // 1 counter sample + 3 buckets (2 bounds and +Inf) + _sum + _count.
    assert!(
        out.stdout.contains(" 6 ") || out.stdout.contains("\t6\t") || out.stdout.contains(" 6\n"),
        "expected 6 samples in the block:\n{}",
        out.stdout
    );
    sp.stop_gracefully_within(Duration::from_secs(10));
}

/// The response's value of header `name`, or "".
fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn cors_preflight_and_cross_origin_post() {
    let [http] = free_ports::<1>();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = out_dir.path().join("spans.json");
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{http}
        cors:
          allowed_origins: [\"https://app.example.com\", \"http://*.localhost:3000\"]
          allowed_headers: [x-tenant]
          max_age: 7200
exporters:
  file: {{ path: {} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
",
            out.display()
        ),
        &[http],
    );
    let client = http_client();
    let url = format!("http://127.0.0.1:{http}/v1/traces");
    block_on(async {
        // A browser's preflight for a JSON POST with a custom header.
        let pre = client
            .request(reqwest::Method::OPTIONS, &url)
            .header("Origin", "http://ui.localhost:3000")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type,x-tenant")
            .send()
            .await
            .expect("preflight");
        assert_eq!(pre.status().as_u16(), 204);
        assert_eq!(
            header(&pre, "access-control-allow-origin"),
            "http://ui.localhost:3000"
        );
        assert_eq!(header(&pre, "access-control-allow-methods"), "POST");
        assert_eq!(
            header(&pre, "access-control-allow-headers"),
            "content-type, x-tenant"
        );
        assert_eq!(header(&pre, "access-control-max-age"), "7200");
        assert_eq!(header(&pre, "access-control-allow-credentials"), "true");
        assert!(header(&pre, "vary").contains("Origin"));

        // From an origin not listed: answered, but nothing allowed.
        let denied = client
            .request(reqwest::Method::OPTIONS, &url)
            .header("Origin", "https://evil.example")
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .expect("preflight");
        assert_eq!(header(&denied, "access-control-allow-origin"), "");

        // The cross-origin POST itself: accepted, and its answer readable by the page.
        let body = spanpipe_e2e::otlp::json_request(
            "0102030405060708090a0b0c0d0e0f10",
            &["0102030405060708"],
        );
        let post = client
            .post(&url)
            .header("Origin", "https://app.example.com")
            .header("Content-Type", "application/json")
            .header("x-tenant", "t1")
            .body(body.to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(post.status().as_u16(), 200);
        assert_eq!(
            header(&post, "access-control-allow-origin"),
            "https://app.example.com"
        );
        assert_eq!(header(&post, "access-control-allow-credentials"), "true");
        assert!(header(&post, "vary").contains("Origin"));

        // Same request from another origin: still served (CORS is the browser's check), without the headers.
        let other = client
            .post(&url)
            .header("Origin", "https://evil.example")
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(other.status().as_u16(), 200);
        assert_eq!(header(&other, "access-control-allow-origin"), "");
    });
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(&out)
            .is_ok_and(|t| t.lines().count() >= 2)),
        "both POSTs reach the exporter\n{}",
        sp.stderr_text()
    );
    sp.stop_gracefully_within(Duration::from_secs(10));
}

#[test]
fn filter_drops_metrics_by_name_and_logs_by_severity() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    let [http, scrape] = free_ports::<2>();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let logs_out = out_dir.path().join("logs.json");
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  filter/metrics:
    metrics:
      exclude:
        match_type: regexp
        metric_names: ['^agent\\.calls$']
  filter/logs:
    logs:
      include:
        severity_number: {{ min: WARN }}
exporters:
  prometheus:
    endpoint: 127.0.0.1:{scrape}
  file:
    path: {}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp], processors: [filter/metrics], exporters: [prometheus] }}
    logs: {{ receivers: [otlp], processors: [filter/logs], exporters: [file] }}
",
            logs_out.display()
        ),
        &[http, scrape],
    );
    let record = |severity: i32, body: &str| LogRecord {
        severity_number: severity,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        ..Default::default()
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    record(9, "info: fine"),
                    record(17, "error: boom"),
                    record(13, "warn: hm"),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    block_on(async {
        let client = http_client();
        let m = http_post(
            &client,
            http,
            "/v1/metrics",
            "application/x-protobuf",
            None,
            metrics_request(1),
        )
        .await;
        assert_eq!(m.status().as_u16(), 200);
        let l = http_post(
            &client,
            http,
            "/v1/logs",
            "application/x-protobuf",
            None,
            logs,
        )
        .await;
        assert_eq!(l.status().as_u16(), 200);
    });
    let url = format!("http://127.0.0.1:{scrape}/metrics");
    let mut text = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            text = get(&url).2;
            text.contains("agent_latency_seconds_count")
        }),
        "{text}\n{}",
        sp.stderr_text()
    );
    assert!(!text.contains("agent_calls"), "excluded by name:\n{text}");
    let mut written = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            written = std::fs::read_to_string(&logs_out).unwrap_or_default();
            !written.is_empty()
        }),
        "no logs written\n{}",
        sp.stderr_text()
    );
    assert!(
        written.contains("error: boom") && written.contains("warn: hm"),
        "{written}"
    );
    assert!(
        !written.contains("info: fine"),
        "below WARN is dropped: {written}"
    );
    sp.stop_gracefully_within(Duration::from_secs(10));
}
