//! Issue 15, "Secrets stay secret, tenants stay in their lane", end to end against the real binary.
//!
//! 1. Custom-header auth (`bearertokenauth` with `header: x-api-token`) + `include_metadata` + an `attributes`
//!    action copying `metadata.x-api-token` (and `cookie`) into every span: over HTTP and gRPC the token and the
//!    cookie reach no exported span, while a plain header (`x-tenant`) still does — so the metadata path works and
//!    only credentials are stripped. A wrong token is refused (401 / UNAUTHENTICATED) and counted in
//!    `spanpipe_receiver_auth_failures_total{receiver,transport}`, and the token never appears in the log.
//! 2. The label bomb: `mlflow_spanmetrics` with the experiment id read from a span attribute and one 18 MB request
//!    of 600 distinct 30 KB ids. Before `max_label_value_length` the `/metrics` page was 326 MB and RSS went
//!    18 → 473 MB; now every value is cut to 256 bytes: the page stays under 6 MiB (~4.3 MiB measured), parses with `promtool`, the
//!    truncations are counted, and peak RSS stays under a stated bound.
//! 3. `print-config` on a config holding every credential kind prints none of them.

#[path = "spanmetrics_support.rs"]
mod support;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use spanpipe_e2e::otlp::{
    RawCodec, TRACE_EXPORT_PATH, grpc_channel, http_client, span_id, trace_id,
};
use spanpipe_e2e::{
    Spanpipe, free_ports, peak_rss_mib, run_spanpipe, tail, time_to_close, wait_until,
};

const TOKEN: &str = "tok-4f1c9e0b7a2d-very-secret";
const COOKIE: &str = "session=cookie-9d8e7f-secret";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// One request of `n` spans of trace `t`, span ids from `first`; `attrs` on every span.
fn request(t: u64, first: u64, n: u64, attrs: &[KeyValue]) -> ExportTraceServiceRequest {
    let spans = (first..first + n)
        .map(|i| Span {
            trace_id: trace_id(t),
            span_id: span_id(i),
            name: format!("span-{i}"),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_005_000_000,
            attributes: attrs.to_vec(),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "hardening")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn http_send(port: u16, body: Vec<u8>, headers: &[(&str, &str)]) -> u16 {
    let mut req = http_client()
        .post(format!("http://127.0.0.1:{port}/v1/traces"))
        .header("content-type", "application/x-protobuf");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(body)
        .send()
        .await
        .expect("HTTP send")
        .status()
        .as_u16()
}

async fn grpc_send(port: u16, body: Vec<u8>, headers: &[(&str, &str)]) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(grpc_channel(port).await);
    let call = async move {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unknown(format!("not ready: {e}")))?;
        let mut req = tonic::Request::new(body);
        for (k, v) in headers {
            let key = tonic::metadata::AsciiMetadataKey::from_bytes(k.as_bytes()).expect("key");
            req.metadata_mut().insert(key, v.parse().expect("value"));
        }
        let path = http::uri::PathAndQuery::from_static(TRACE_EXPORT_PATH);
        grpc.unary(req, path, RawCodec).await
    };
    match tokio::time::timeout(Duration::from_secs(30), call).await {
        Ok(Ok(_)) => tonic::Code::Ok,
        Ok(Err(s)) => s.code(),
        Err(_) => panic!("gRPC call did not complete within 30 s"),
    }
}

fn scrape(port: u16) -> String {
    runtime().block_on(async {
        http_client()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("scrape body")
    })
}

/// The value of the first sample line starting with `prefix` (name and labels), 0 when absent.
fn sample(page: &str, prefix: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_custom_auth_header_never_reaches_a_span_on_either_transport() {
    let [grpc, http, metrics] = free_ports::<3>();
    let yaml = format!(
        r#"
extensions:
  bearertokenauth/in:
    header: x-api-token
    scheme: ""
    token: {TOKEN}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
        include_metadata: true
        auth: {{ authenticator: bearertokenauth/in }}
      http:
        endpoint: 127.0.0.1:{http}
        include_metadata: true
        auth: {{ authenticator: bearertokenauth/in }}
processors:
  attributes/leak:
    actions:
      - {{ key: leaked.token, from_context: metadata.x-api-token, action: insert }}
      - {{ key: leaked.cookie, from_context: metadata.cookie, action: insert }}
      - {{ key: leaked.authorization, from_context: metadata.authorization, action: insert }}
      - {{ key: tenant, from_context: metadata.x-tenant, action: insert }}
exporters:
  file: {{ path: out.jsonl }}
service:
  extensions: [bearertokenauth/in]
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [attributes/leak], exporters: [file] }}
"#
    );
    let mut sp = Spanpipe::start(&yaml, &[grpc, http, metrics]);
    let good = [
        ("x-api-token", TOKEN),
        ("cookie", COOKIE),
        ("authorization", "Bearer also-not-for-spans"),
        ("x-tenant", "team-blue"),
    ];
    let bad = [("x-api-token", "wrong-token"), ("x-tenant", "team-red")];
    let rt = runtime();
    let (h_ok, h_bad, g_ok, g_bad) = rt.block_on(async {
        (
            http_send(http, request(1, 1, 5, &[]).encode_to_vec(), &good).await,
            http_send(http, request(2, 100, 5, &[]).encode_to_vec(), &bad).await,
            grpc_send(grpc, request(3, 200, 5, &[]).encode_to_vec(), &good).await,
            grpc_send(grpc, request(4, 300, 5, &[]).encode_to_vec(), &bad).await,
        )
    });
    println!("HTTP good {h_ok} bad {h_bad}; gRPC good {g_ok:?} bad {g_bad:?}");
    assert_eq!((h_ok, h_bad), (200, 401));
    assert_eq!(
        (g_ok, g_bad),
        (tonic::Code::Ok, tonic::Code::Unauthenticated)
    );
    let out = sp.dir().join("out.jsonl");
    let arrived = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.matches("team-blue").count() >= 10)
    });
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        arrived,
        "10 spans with tenant=team-blue expected:\n{}",
        tail(&text, 4000)
    );
    for secret in [TOKEN, "cookie-9d8e7f", "also-not-for-spans"] {
        assert!(!text.contains(secret), "{secret} reached the file exporter");
    }
    assert!(
        !text.contains("leaked."),
        "a credential attribute was inserted"
    );
    assert!(
        !text.contains("team-red"),
        "a refused request's spans came out"
    );
    // Each transport counted its refusal; the log names the failure, never the token.
    let page = scrape(metrics);
    for transport in ["grpc", "http"] {
        let n = sample(
            &page,
            &format!(
                "spanpipe_receiver_auth_failures_total{{receiver=\"otlp\",transport=\"{transport}\"}}"
            ),
        );
        assert_eq!(n, 1.0, "{transport} auth failures:\n{page}");
    }
    sp.stop_gracefully();
    let log = sp.stderr_text();
    assert!(
        log.contains("authentication failed"),
        "{}",
        tail(&log, 3000)
    );
    assert!(
        !log.contains(TOKEN) && !log.contains("wrong-token"),
        "a token was logged"
    );
}

#[test]
fn a_label_bomb_stays_small_on_the_metrics_page() {
    let [http, prom, metrics] = free_ports::<3>();
    let yaml = format!(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{http}
        max_request_body_size: 32MiB
connectors:
  mlflow_spanmetrics:
    experiment_id_from:
      - span_attribute: mlflow.experimentId
    flush_interval: 1s
exporters:
  prometheus: {{ endpoint: 127.0.0.1:{prom} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [mlflow_spanmetrics] }}
    metrics: {{ receivers: [mlflow_spanmetrics], exporters: [prometheus] }}
"#
    );
    let mut sp = Spanpipe::start(&yaml, &[http, prom, metrics]);
    let before = peak_rss_mib(sp.pid());
    // 600 spans, each with its own 30 KB experiment id: one 18 MB request.
    let mut req = request(9, 1, 0, &[]);
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    for i in 0..600u64 {
        let id = format!("{i:04}{}", "7".repeat(30_000));
        spans.push(Span {
            trace_id: trace_id(10_000 + i),
            span_id: span_id(i + 1),
            name: "bomb".into(),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_001_000_000,
            attributes: vec![kv("mlflow.experimentId", &id)],
            ..Default::default()
        });
    }
    let body = req.encode_to_vec();
    let body_mb = body.len() as f64 / 1e6;
    let status = runtime().block_on(http_send(http, body, &[]));
    assert_eq!(status, 200);
    // The histogram appears on the exporter's page after a flush.
    let mut page = String::new();
    let shown = wait_until(Duration::from_secs(20), || {
        page = scrape(prom);
        page.matches(&format!("{}_count{{", support::FAMILY))
            .count()
            >= 600
    });
    assert!(shown, "600 series expected:\n{}", tail(&page, 3000));
    let page_kb = page.len() as f64 / 1024.0;
    let longest_label = page
        .lines()
        .filter_map(|l| l.split("experiment_id=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::len)
        .max()
        .unwrap_or(0);
    let truncated = sample(
        &scrape(metrics),
        "spanpipe_spanmetrics_truncated_label_values_total{connector=\"mlflow_spanmetrics\"}",
    );
    let peak = peak_rss_mib(sp.pid());
    println!(
        "label bomb: request {body_mb:.1} MB, /metrics {page_kb:.0} KiB, longest experiment_id {longest_label} B, \
         truncated {truncated}, peak RSS {before} → {peak} MiB"
    );
    assert_eq!(
        longest_label, 256,
        "values are cut to max_label_value_length"
    );
    // 600 series × 18 lines (15 buckets, +Inf, sum, count) × (a 256-byte label + ~300 bytes of the rest): under
    // 6 MiB, against 326 MB before the limit.
    let bound_kb = 600.0 * 18.0 * (256.0 + 300.0) / 1024.0;
    assert!(
        page_kb < bound_kb,
        "/metrics is {page_kb:.0} KiB (bound {bound_kb:.0})"
    );
    assert!(truncated >= 600.0, "truncations counted: {truncated}");
    // The request itself is 18 MB and is decoded once; before the limit the page alone took ~330 MB.
    assert!(peak < 200, "peak RSS {peak} MiB");
    // The page is valid Prometheus text (only the OTel unit-name lint is tolerated, as elsewhere).
    if let Err(e) = support::promtool_check(&page) {
        panic!("{e}");
    }
    sp.assert_running();
    let started = Instant::now();
    sp.stop_gracefully();
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn print_config_prints_no_credential() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    let yaml = r#"
extensions:
  bearertokenauth/in: { header: x-api-token, scheme: "", tokens: [cred-in-1, cred-in-2] }
receivers:
  otlp:
    protocols:
      http: { endpoint: 127.0.0.1:4318, auth: { authenticator: bearertokenauth/in } }
processors:
  redaction: { allow_all_keys: true, hash_function: hmac-sha256, hmac_key: cred-hmac-3 }
exporters:
  otlp_http:
    endpoint: https://user:cred-url-4@otlp.example.com:4318
    headers: { DD-API-KEY: cred-dd-5, X-Honeycomb-Team: cred-hc-6, space_key: cred-space-7, Cookie: cred-cookie-8 }
  mlflow: { tracking_uri: "http://127.0.0.1:5000", experiment_id: "1", token: cred-mlflow-9 }
service:
  extensions: [bearertokenauth/in]
  pipelines:
    traces: { receivers: [otlp], processors: [redaction], exporters: [otlp_http, mlflow] }
"#;
    std::fs::write(&path, yaml).expect("write config");
    let path = path.to_string_lossy().to_string();
    let out = run_spanpipe(&["--config", &path, "print-config"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    for n in 1..=9 {
        let marker = format!("-{n}");
        let leaked: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.contains("cred-") && l.contains(&marker))
            .collect();
        assert!(leaked.is_empty(), "credential {n} printed: {leaked:?}");
    }
    assert!(!out.stdout.contains("cred-"), "{}", out.stdout);
    assert!(
        out.stdout.matches("[REDACTED]").count() >= 9,
        "{}",
        out.stdout
    );
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn http_status(port: u16, path: &str) -> u16 {
    runtime().block_on(async {
        http_client()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    })
}

/// `health_check`, the `prometheus` scrape endpoint and the internal metrics serve through the receivers' hardened
/// layer: a slowloris is cut after the 10 s header bound, a flood of silent connections holds at most 64 open per
/// endpoint (file descriptors stay bounded), and once the flood is gone every endpoint answers again.
#[test]
fn admin_endpoints_survive_slowloris_and_a_connection_flood() {
    use std::io::Write;
    let [http, health, prom, metrics] = free_ports::<4>();
    let yaml = format!(
        r#"
extensions:
  health_check: {{ endpoint: 127.0.0.1:{health} }}
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
connectors:
  mlflow_spanmetrics:
exporters:
  prometheus: {{ endpoint: 127.0.0.1:{prom} }}
service:
  extensions: [health_check]
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [mlflow_spanmetrics] }}
    metrics: {{ receivers: [mlflow_spanmetrics], exporters: [prometheus] }}
"#
    );
    let mut sp = Spanpipe::start(&yaml, &[http, health, prom, metrics]);
    let admin = [(health, "/"), (prom, "/metrics"), (metrics, "/metrics")];
    for (port, path) in admin {
        assert_eq!(
            http_status(port, path),
            200,
            "{port}{path} before the flood"
        );
    }
    let base_fds = open_fds(sp.pid());
    let connect = |port: u16| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // One slowloris per endpoint (half a request line, then nothing), then 100 silent connections each.
    let mut lorises: Vec<std::net::TcpStream> = admin
        .iter()
        .map(|(port, _)| {
            let mut s = connect(*port);
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAcc")
                .expect("write");
            s
        })
        .collect();
    let flood: Vec<std::net::TcpStream> = admin
        .iter()
        .flat_map(|(port, _)| (0..100).map(move |_| *port))
        .map(connect)
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let flood_fds = open_fds(sp.pid());
    println!(
        "admin endpoints: fds {base_fds} before, {flood_fds} with 3 slowlorises + 300 silent connections"
    );
    assert!(
        flood_fds <= base_fds + 3 * 64 + 8,
        "{flood_fds} fds: the 64-connection cap per endpoint did not hold"
    );
    for (i, loris) in lorises.iter_mut().enumerate() {
        let closed = time_to_close(loris, Duration::from_secs(15));
        println!("slowloris {i} closed after {closed:?}");
        assert!(
            closed.is_some(),
            "slowloris on {:?} still open after 15 s",
            admin[i]
        );
    }
    drop(flood);
    sp.assert_running();
    for (port, path) in admin {
        let ok = wait_until(Duration::from_secs(15), || http_status(port, path) == 200);
        assert!(ok, "{port}{path} does not answer after the flood");
    }
    sp.stop_gracefully();
}
