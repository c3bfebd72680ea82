//! Client-side auth for exporters (issue 15): spanpipe A exports with `auth: { authenticator: bearertokenauth/up }`
//! over gRPC (`otlp`), HTTP (`otlp_http`) and `mlflow` (B's OTLP/HTTP receiver stands in for MLflow's `/v1/traces`)
//! to spanpipe B, whose receiver requires the same token through its own `bearertokenauth`. With the right token
//! every span arrives at B once per exporter. With a wrong token B refuses
//! (counted at B in `spanpipe_receiver_auth_failures_total{transport}`, at A in
//! `otelcol_exporter_send_failed_spans_total{exporter}`); once A's token file is rewritten with the right token,
//! A's next spans arrive without a restart.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use spanpipe_e2e::otlp::{CT_PROTOBUF, hex, http_client, http_post, proto_body, span_id, trace_id};
use spanpipe_e2e::{Spanpipe, count_ids, file_exporter_span_ids, free_ports, tail, wait_until};

const TOKEN: &str = "e2e-right-token-7f3a";

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

fn counter(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// B: OTLP on gRPC and HTTP, both requiring `TOKEN`, spans written to `out`.
fn start_b(grpc: u16, http: u16, metrics: u16, out: &Path) -> Spanpipe {
    Spanpipe::start(
        &format!(
            "\
extensions:
  bearertokenauth:
    token: {TOKEN}
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc}, auth: {{ authenticator: bearertokenauth }} }}
      http: {{ endpoint: 127.0.0.1:{http}, auth: {{ authenticator: bearertokenauth }} }}
exporters:
  file: {{ path: {out} }}
service:
  extensions: [bearertokenauth]
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
",
            out = out.display()
        ),
        &[grpc, http],
    )
}

/// A: OTLP/HTTP in; out to B over gRPC and HTTP, both authenticated by `bearertokenauth/up` reading `token_file`.
fn start_a(http: u16, metrics: u16, b_grpc: u16, b_http: u16, token_file: &Path) -> Spanpipe {
    Spanpipe::start(
        &format!(
            "\
extensions:
  bearertokenauth/up:
    filename: {file}
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
exporters:
  otlp:
    endpoint: 127.0.0.1:{b_grpc}
    tls: {{ insecure: true }}
    auth: {{ authenticator: bearertokenauth/up }}
    retry_on_failure: {{ enabled: false }}
  otlp_http:
    endpoint: http://127.0.0.1:{b_http}
    auth: {{ authenticator: bearertokenauth/up }}
    retry_on_failure: {{ enabled: false }}
  # B's OTLP/HTTP receiver stands in for MLflow's /v1/traces: with an experiment id and no routing the exporter
  # makes no REST call, only POST <tracking_uri>/v1/traces.
  mlflow:
    tracking_uri: http://127.0.0.1:{b_http}
    experiment_id: \"0\"
    auth: {{ authenticator: bearertokenauth/up }}
    retry_on_failure: {{ enabled: false }}
service:
  extensions: [bearertokenauth/up]
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp, otlp_http, mlflow] }}
",
            file = token_file.display()
        ),
        &[http],
    )
}

/// Sends `n` single-span traces numbered from `first` to A; returns their span ids (hex).
fn send(port: u16, first: u64, n: u64) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = http_client();
    (first..first + n)
        .map(|i| {
            let sid = span_id(i);
            let body = proto_body(&trace_id(i), std::slice::from_ref(&sid));
            let status = rt.block_on(async {
                http_post(&client, port, "/v1/traces", CT_PROTOBUF, None, body)
                    .await
                    .status()
                    .as_u16()
            });
            assert_eq!(status, 200, "A refused span {i}");
            hex(&sid)
        })
        .collect()
}

#[test]
fn exporters_authenticate_with_a_bearertokenauth_extension_and_follow_its_file() {
    let dir = tempfile::Builder::new()
        .prefix("spanpipe-exporter-auth-")
        .tempdir()
        .expect("tempdir");
    let out = dir.path().join("b.jsonl");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "e2e-wrong-token\n").expect("token file");
    let [b_grpc, b_http, b_metrics, a_http, a_metrics] = free_ports::<5>();
    let b = start_b(b_grpc, b_http, b_metrics, &out);
    let a = start_a(a_http, a_metrics, b_grpc, b_http, &token_file);
    let logs = || {
        format!(
            "A:\n{}\nB:\n{}",
            tail(&a.stderr_text(), 3000),
            tail(&b.stderr_text(), 3000)
        )
    };

    // 1. Wrong token: B refuses on both transports, A counts the spans failed, nothing is written.
    let refused = send(a_http, 1, 5);
    let failed = |exporter: &str| {
        counter(
            &scrape(a_metrics),
            "otelcol_exporter_send_failed_spans",
            &[&format!("exporter=\"{exporter}\"")],
        )
    };
    let counted = wait_until(Duration::from_secs(30), || {
        failed("otlp") >= 5.0 && failed("otlp_http") >= 5.0 && failed("mlflow") >= 5.0 || {
            std::thread::sleep(Duration::from_millis(200));
            false
        }
    });
    assert!(
        counted,
        "A failed: otlp {} otlp_http {} mlflow {}\n{}",
        failed("otlp"),
        failed("otlp_http"),
        failed("mlflow"),
        logs()
    );
    let b_text = scrape(b_metrics);
    let auth_failures = |transport: &str| {
        counter(
            &b_text,
            "spanpipe_receiver_auth_failures_total",
            &[&format!("transport=\"{transport}\"")],
        )
    };
    eprintln!(
        "wrong token: A send_failed otlp {} otlp_http {} mlflow {}; B auth failures grpc {} http {}",
        failed("otlp"),
        failed("otlp_http"),
        failed("mlflow"),
        auth_failures("grpc"),
        auth_failures("http")
    );
    assert!(
        auth_failures("grpc") >= 5.0 && auth_failures("http") >= 10.0,
        "{b_text}"
    );
    let written = if out.exists() {
        file_exporter_span_ids(&out)
    } else {
        Vec::new()
    };
    assert!(
        refused.iter().all(|id| !written.contains(id)),
        "refused spans reached B"
    );
    assert!(!a.stderr_text().contains("e2e-wrong-token"), "token logged");

    // 2. The token file now holds the right token: A uses it within about a second, no restart.
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    std::thread::sleep(Duration::from_millis(2500));
    let ids = send(a_http, 100, 20);
    let mut counts = std::collections::HashMap::new();
    let arrived = wait_until(Duration::from_secs(30), || {
        counts = if out.exists() {
            count_ids(&file_exporter_span_ids(&out))
        } else {
            Default::default()
        };
        ids.iter().all(|id| counts.get(id) == Some(&3)) || {
            std::thread::sleep(Duration::from_millis(200));
            false
        }
    });
    assert!(
        arrived,
        "spans at B (want each three times: otlp, otlp_http, mlflow): {:?}\n{}",
        ids.iter().map(|i| counts.get(i)).collect::<Vec<_>>(),
        logs()
    );
    eprintln!(
        "right token: {} spans arrived at B from each of otlp, otlp_http and mlflow",
        ids.len()
    );
    for log in [a.stderr_text(), b.stderr_text()] {
        assert!(!log.contains(TOKEN), "a token was logged");
    }
}
