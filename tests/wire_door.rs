//! Issue 12, "One wire layer, checked at the door", end to end against the real binary.
//!
//! 1. A 12,000-deep `AnyValue` (array and kvlist) as `service.name` and as a span attribute, over gRPC,
//!    HTTP/protobuf and HTTP/JSON, into a pipeline with `filter` (legacy regexp on services and OTTL `IsMatch`),
//!    `attributes` (`convert`, `include.services`), `resource` (`convert`), `redaction`, `mlflow_spanmetrics`
//!    (→ `prometheus`) and `file`: the process stays up, the answer is 400 with a `google.rpc.Status` body /
//!    INVALID_ARGUMENT; values at the limit (32) pass through every processor to `file` and the span-metrics
//!    histogram, 33 is refused; nothing refused comes out.
//! 2. Client A sends 200 valid spans while client B sends one span whose name holds `\xff` and one with a 60-deep
//!    attribute, into the same `batch`: A's 200 spans reach `file`, `otlp_http` (`encoding: json`, to a second
//!    spanpipe's `file`) and a real MLflow, each exactly once by span id; B gets 400 / INVALID_ARGUMENT. With
//!    `on_invalid_span: drop` B gets an OTLP partial success (`rejected_spans` 1, an `error_message`), its valid
//!    span goes on with A's, and `otelcol_receiver_refused_spans_total` counts what was refused. Client C's span
//!    with a 32-deep key-value list (the deepest the door allows) shares the batch and reaches every sink too.
//! 3. Redaction (`allow_all_keys`, presets `credit_card` + `email`) behind receivers with the default and the
//!    largest `max_attribute_depth`: a card number next to an invalid-UTF-8 array element, in a kvlist 34 deep, in
//!    an array 51 deep, an e-mail written `alice\u0040corp.com` in JSON nested 70 levels — each is either refused
//!    at the door or reaches `file` masked, as the test states per case; never in clear.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use spanpipe_e2e::mlflow::{b64_to_hex, mlflow_server, unique_suffix};
use spanpipe_e2e::otlp::{
    CT_JSON, CT_PROTOBUF, RpcStatus, grpc_export_raw, hex, http_client, http_post, span_id,
    trace_id,
};
use spanpipe_e2e::wire::{
    Nest, array_value, deep_json_value, deep_value, key_value, request, service_name, span,
    string_value,
};
use spanpipe_e2e::{IdDiff, Spanpipe, file_exporter_span_ids, free_ports, tail, wait_until};
use tonic::Code;

/// The depth the issue's crash needed (gRPC from ~9,000, HTTP 10–12k).
const CRASH_DEPTH: usize = 12_000;
/// The receiver's default `max_attribute_depth`, which is also the largest it accepts (deeper key-value lists
/// would be past prost's recursion limit in every exporter that decodes).
const DEFAULT_DEPTH: usize = 32;

// ---------------------------------------------------------------------------------------------------------------
// Sending and reading answers
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Grpc,
    HttpProto,
    HttpJson,
}

/// What the receiver answered.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    /// 200 / OK, with the partial success's `rejected_spans` and `error_message` (0 and "" when absent).
    Accepted { rejected: i64, message: String },
    /// HTTP 400 with a `google.rpc.Status` body / gRPC INVALID_ARGUMENT, with its message.
    Refused { message: String },
}

impl Answer {
    fn is_clean_ok(&self) -> bool {
        matches!(self, Answer::Accepted { rejected: 0, .. })
    }
    fn is_refused(&self) -> bool {
        matches!(self, Answer::Refused { .. })
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Sends an encoded request (protobuf for gRPC and HTTP/protobuf, OTLP/JSON text for HTTP/JSON) and classifies
/// the answer. Anything else than 200 / 400-with-Status (HTTP) or OK / INVALID_ARGUMENT (gRPC) fails the test.
async fn send(
    client: &reqwest::Client,
    t: Transport,
    grpc: u16,
    http: u16,
    body: Vec<u8>,
    what: &str,
) -> Answer {
    match t {
        Transport::Grpc => match grpc_export_raw(grpc, body, None).await {
            Ok(bytes) => {
                let r = ExportTraceServiceResponse::decode(bytes.as_slice()).unwrap_or_else(|e| {
                    panic!("{what}: OK answer is not an ExportTraceServiceResponse: {e}")
                });
                let p = r.partial_success.unwrap_or_default();
                Answer::Accepted {
                    rejected: p.rejected_spans,
                    message: p.error_message,
                }
            }
            Err(st) => {
                assert_eq!(
                    st.code(),
                    Code::InvalidArgument,
                    "{what}: gRPC answer {st:?}"
                );
                assert!(!st.message().is_empty(), "{what}: status without message");
                Answer::Refused {
                    message: st.message().to_string(),
                }
            }
        },
        Transport::HttpProto | Transport::HttpJson => {
            let json = t == Transport::HttpJson;
            let ct = if json { CT_JSON } else { CT_PROTOBUF };
            let resp = http_post(client, http, "/v1/traces", ct, None, body).await;
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.expect("response body");
            let shown = tail(&String::from_utf8_lossy(&bytes), 400).to_string();
            match (status, json) {
                (200, false) => {
                    let r = ExportTraceServiceResponse::decode(bytes.as_ref()).unwrap_or_else(|e| {
                        panic!("{what}: 200 body is not an ExportTraceServiceResponse ({e}): {shown:?}")
                    });
                    let p = r.partial_success.unwrap_or_default();
                    Answer::Accepted {
                        rejected: p.rejected_spans,
                        message: p.error_message,
                    }
                }
                (200, true) => {
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                        panic!("{what}: 200 body is not JSON ({e}): {shown:?}")
                    });
                    let p = &v["partialSuccess"];
                    let rejected = match &p["rejectedSpans"] {
                        serde_json::Value::Null => 0,
                        serde_json::Value::String(s) => s.parse().expect("rejectedSpans int64"),
                        n => n.as_i64().expect("rejectedSpans number"),
                    };
                    Answer::Accepted {
                        rejected,
                        message: p["errorMessage"].as_str().unwrap_or("").to_string(),
                    }
                }
                (400, false) => {
                    let st = RpcStatus::decode(bytes.as_ref()).unwrap_or_else(|e| {
                        panic!(
                            "{what}: 400 body is not a protobuf google.rpc.Status ({e}): {shown:?}"
                        )
                    });
                    assert_ne!(st.code, 0, "{what}: Status code OK in a 400: {st:?}");
                    assert!(!st.message.is_empty(), "{what}: Status without message");
                    Answer::Refused {
                        message: st.message,
                    }
                }
                (400, true) => {
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                        panic!("{what}: 400 body is not a JSON google.rpc.Status ({e}): {shown:?}")
                    });
                    let message = v["message"].as_str().unwrap_or("").to_string();
                    assert!(
                        !message.is_empty(),
                        "{what}: JSON Status without message: {v}"
                    );
                    if let Some(code) = v.get("code") {
                        assert!(
                            code.as_i64().is_some_and(|c| c != 0),
                            "{what}: Status code must be a non-OK integer: {v}"
                        );
                    }
                    Answer::Refused { message }
                }
                (other, _) => panic!("{what}: HTTP {other}, want 200 or 400: {shown:?}"),
            }
        }
    }
}

/// Scrapes `http://127.0.0.1:{port}/metrics` (empty on any error).
fn scrape(port: u16) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// Sum of the samples of `family` (exact name, any labels) whose label set contains every one of `labels`.
fn metric_sum(text: &str, family: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn work_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir")
}

/// Waits (bounded) until `path` holds every id of `want`, lets stragglers arrive, then returns what it holds.
fn wait_for_ids(path: &Path, want: &BTreeSet<String>, timeout: Duration) -> Vec<String> {
    wait_until(timeout, || {
        let got: BTreeSet<String> = file_exporter_span_ids(path).into_iter().collect();
        want.is_subset(&got)
    });
    std::thread::sleep(Duration::from_millis(500));
    file_exporter_span_ids(path)
}

fn assert_exact(sink: &str, want: &BTreeSet<String>, got: &[String], sp: &Spanpipe) -> IdDiff {
    let want: Vec<String> = want.iter().cloned().collect();
    let diff = IdDiff::compute(&want, got);
    assert!(
        diff.is_exact(),
        "{sink}: {diff}\nspanpipe stderr:\n{}",
        tail(&sp.stderr_text(), 4000)
    );
    diff
}

fn assert_no_crash(sp: &mut Spanpipe) {
    sp.assert_running();
    let err = sp.stderr_text();
    assert!(
        !err.contains("panicked") && !err.contains("overflowed its stack"),
        "collector panicked:\n{}",
        tail(&err, 4000)
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Request builders
// ---------------------------------------------------------------------------------------------------------------

/// Where the deep value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    ServiceName,
    SpanAttribute,
}

/// One span (id `sid`, trace `tid`) with a deep value at `place`, encoded for `t`.
fn deep_request(
    t: Transport,
    nest: Nest,
    depth: usize,
    place: Place,
    tid: &[u8],
    sid: &[u8],
) -> Vec<u8> {
    if t == Transport::HttpJson {
        let value = deep_json_value(nest, depth, r#"{"stringValue":"deep-leaf"}"#);
        let (resource, attr) = match place {
            Place::ServiceName => (
                format!(r#"{{"key":"service.name","value":{value}}}"#),
                r#"{"key":"a","value":{"stringValue":"flat"}}"#.to_string(),
            ),
            Place::SpanAttribute => (
                r#"{"key":"service.name","value":{"stringValue":"wire-door"}}"#.to_string(),
                format!(r#"{{"key":"a","value":{value}}}"#),
            ),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{resource}]}},"scopeSpans":[{{"scope":{{"name":"spanpipe.e2e.wire"}},"spans":[{{"traceId":"{tid}","spanId":"{sid}","name":"deep json","kind":1,"startTimeUnixNano":"{start}","endTimeUnixNano":"{now}","attributes":[{attr}]}}]}}]}}]}}"#,
            tid = hex(tid),
            sid = hex(sid),
            start = now - 1_000_000,
        )
        .into_bytes();
    }
    let value = deep_value(nest, depth, &string_value(b"deep-leaf"));
    let (resource, attr) = match place {
        Place::ServiceName => (
            key_value("service.name", &value),
            key_value("a", &string_value(b"flat")),
        ),
        Place::SpanAttribute => (service_name("wire-door"), key_value("a", &value)),
    };
    request(&[resource], &[span(tid, sid, None, b"deep proto", &[attr])])
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Deep values at the door
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn a_12000_deep_value_is_refused_on_every_transport_and_the_collector_keeps_serving() {
    let [grpc, http, scrape_port] = free_ports::<3>();
    let work = work_dir("spanpipe-wire-door-deep-");
    let out = work.path().join("spans.jsonl");
    let mut sp = Spanpipe::start(
        &format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  filter/legacy:
    spans:
      exclude:
        match_type: regexp
        services: ["^noisy-"]
  filter/ottl:
    traces:
      span:
        - 'IsMatch(attributes["a"], "^drop-me$")'
  attributes:
    include:
      match_type: regexp
      services: [".*"]
    actions:
      - {{ key: a, action: convert, converted_type: string }}
  resource:
    attributes:
      - {{ key: service.name, action: convert, converted_type: string }}
  redaction:
    allow_all_keys: true
    blocked_value_presets: [email, credit_card]
connectors:
  mlflow_spanmetrics:
    tags_wait: 0s
    flush_interval: 200ms
exporters:
  file: {{ path: {out} }}
  prometheus: {{ endpoint: 127.0.0.1:{scrape_port} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [filter/legacy, filter/ottl, attributes, resource, redaction]
      exporters: [file, mlflow_spanmetrics]
    metrics: {{ receivers: [mlflow_spanmetrics], exporters: [prometheus] }}
"#,
            out = out.display()
        ),
        &[grpc, http, scrape_port],
    );
    let rt = runtime();
    let client = http_client();
    let transports = [Transport::Grpc, Transport::HttpProto, Transport::HttpJson];
    let mut n = 0u64;
    let mut next_ids = || {
        n += 1;
        (trace_id(0x1200_0000 + n), span_id(0x1200_0000 + n))
    };
    let mut refused_ids = BTreeSet::new();
    let mut accepted_ids = BTreeSet::new();
    let mut table: Vec<String> = Vec::new();
    let started = Instant::now();
    for (depth, expect_refused) in [
        (CRASH_DEPTH, true),
        (DEFAULT_DEPTH + 1, true),
        (DEFAULT_DEPTH, false),
    ] {
        for nest in [Nest::Array, Nest::Kvlist] {
            for place in [Place::ServiceName, Place::SpanAttribute] {
                for t in transports {
                    let (tid, sid) = next_ids();
                    let body = deep_request(t, nest, depth, place, &tid, &sid);
                    let what = format!(
                        "{depth}-deep {nest:?} as {place:?} over {t:?} ({} bytes)",
                        body.len()
                    );
                    let answer = rt.block_on(send(&client, t, grpc, http, body, &what));
                    assert_no_crash(&mut sp);
                    if expect_refused {
                        assert!(
                            answer.is_refused(),
                            "{what}: want 400 / INVALID_ARGUMENT, got {answer:?}"
                        );
                        refused_ids.insert(hex(&sid));
                    } else {
                        assert!(
                            answer.is_clean_ok(),
                            "{what}: want a clean 200 / OK, got {answer:?}"
                        );
                        accepted_ids.insert(hex(&sid));
                    }
                    table.push(format!("{what}: {answer:?}"));
                }
            }
        }
    }
    // OTLP/JSON nested right at and past the JSON reader's bound (4 × 32 + 16 = 144 levels), in shapes no OTLP
    // value has: the parser may go that deep on the receiver's stack, and must answer 400, not crash.
    for levels in [143, 144, 145, 100_000] {
        for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
            let body = format!(
                r#"{{"resourceSpans":{}0{}}}"#,
                open.repeat(levels - 1),
                close.repeat(levels - 1)
            );
            let what = format!("JSON nested {levels} levels ({open}…)");
            let answer = rt.block_on(send(
                &client,
                Transport::HttpJson,
                grpc,
                http,
                body.into_bytes(),
                &what,
            ));
            assert!(answer.is_refused(), "{what}: {answer:?}");
            assert_no_crash(&mut sp);
            table.push(format!("{what}: {answer:?}"));
        }
    }
    // Still serving plain requests on every transport, after all of that.
    for t in transports {
        let (tid, sid) = next_ids();
        let body = deep_request(t, Nest::Array, 1, Place::SpanAttribute, &tid, &sid);
        let answer = rt.block_on(send(
            &client,
            t,
            grpc,
            http,
            body,
            "plain request afterwards",
        ));
        assert!(
            answer.is_clean_ok(),
            "plain request over {t:?} afterwards: {answer:?}"
        );
        accepted_ids.insert(hex(&sid));
    }
    assert_no_crash(&mut sp);
    println!("{}", table.join("\n"));

    let got = wait_for_ids(&out, &accepted_ids, Duration::from_secs(30));
    let diff = assert_exact("file", &accepted_ids, &got, &sp);
    assert!(refused_ids.iter().all(|id| !got.contains(id)));
    println!(
        "file: {} refused requests, {} accepted spans sent, {} delivered ({diff}) in {:.1?}",
        refused_ids.len(),
        accepted_ids.len(),
        got.len(),
        started.elapsed()
    );
    // The accepted 32-deep values went through every processor (the attributes processor converted `a` to a
    // string) and into the span-metrics connector: its histogram counts every accepted span.
    let family = "mlflow_trace_span_duration_milliseconds_count";
    let mut text = String::new();
    let counted = wait_until(Duration::from_secs(20), || {
        text = scrape(scrape_port);
        metric_sum(&text, family, &[]) >= accepted_ids.len() as f64
    });
    assert!(
        counted && metric_sum(&text, family, &[]) == accepted_ids.len() as f64,
        "{family} should sum to {} accepted spans:\n{}",
        accepted_ids.len(),
        tail(&text, 3000)
    );
    assert_no_crash(&mut sp);
    assert!(sp.stop_gracefully().success());
}

// ---------------------------------------------------------------------------------------------------------------
// 2. One bad client, many good ones, one batch
// ---------------------------------------------------------------------------------------------------------------

/// Client A's traffic: `traces` traces of 5 spans (a root and 4 children), `per_request` traces per request, in
/// hand-built protobuf. Returns (requests, span ids in hex).
fn client_a(base: u64, traces: u64, per_request: u64) -> (Vec<Vec<u8>>, BTreeSet<String>) {
    let mut requests = Vec::new();
    let mut ids = BTreeSet::new();
    let mut spans = Vec::new();
    for t in 0..traces {
        let tid = trace_id(base + t);
        let root = span_id(base + t * 8);
        spans.push(span(
            &tid,
            &root,
            None,
            format!("agent {t}").as_bytes(),
            &[key_value("mlflow.spanType", &string_value(br#""AGENT""#))],
        ));
        ids.insert(hex(&root));
        for c in 1..5 {
            let sid = span_id(base + t * 8 + c);
            spans.push(span(
                &tid,
                &sid,
                Some(&root),
                format!("llm {t}.{c}").as_bytes(),
                &[key_value("mlflow.spanType", &string_value(br#""LLM""#))],
            ));
            ids.insert(hex(&sid));
        }
        if (t + 1) % per_request == 0 || t + 1 == traces {
            requests.push(request(
                &[service_name("client-a")],
                &std::mem::take(&mut spans),
            ));
        }
    }
    (requests, ids)
}

/// One of client B's spans: its own trace, no parent.
fn b_span(n: u64, name: &[u8], attrs: &[Vec<u8>]) -> (Vec<u8>, String) {
    let sid = span_id(n);
    (span(&trace_id(n), &sid, None, name, attrs), hex(&sid))
}

fn batch_mates(policy: &str) {
    let t0 = Instant::now();
    let server = mlflow_server();
    let mlflow = server.client();
    let experiment = format!("wire-door-{policy}-{}", unique_suffix());
    let work = work_dir("spanpipe-wire-door-batch-");
    let out_a = work.path().join("a.jsonl");
    let out_b = work.path().join("b.jsonl");
    let [b_http, grpc, http, telemetry] = free_ports::<4>();
    let backend = Spanpipe::start(
        &format!(
            "
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{b_http} }}
exporters:
  file: {{ path: {out} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
",
            out = out_b.display()
        ),
        &[b_http],
    );
    let mut sp = Spanpipe::start(
        &format!(
            "
receivers:
  otlp:
    on_invalid_span: {policy}
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ timeout: 1s, send_batch_size: 100000 }}
exporters:
  file: {{ path: {out} }}
  otlp_http/json:
    endpoint: http://127.0.0.1:{b_http}
    encoding: json
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 1s }}
  mlflow:
    tracking_uri: {uri}
    experiment_name: {experiment}
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 2s }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{telemetry} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [file, otlp_http/json, mlflow] }}
",
            out = out_a.display(),
            uri = server.uri
        ),
        &[grpc, http, telemetry],
    );
    let drop = policy == "drop";
    // Ids unique per run: a shared MLflow server (MLFLOW_TEST_URI) keeps traces of earlier runs, and a trace id
    // seen before would land in the earlier run's experiment.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 20);
    let base = ((run & 0xff_ffff_ffff) << 20) | if drop { 0x0_0000 } else { 0x8_0000 };
    // A: 40 traces × 5 spans in 4 requests of 50, two over gRPC and two over HTTP/protobuf.
    let (a_requests, a_ids) = client_a(base, 40, 10);
    assert_eq!(a_ids.len(), 200);
    // B: a span named "bad \xff name" and a span with a 60-deep attribute (past prost's recursion limit), each
    // in its own request; with `drop` each request also carries one valid span that must go on.
    let deep60 = key_value("deep", &deep_value(Nest::Kvlist, 60, &string_value(b"x")));
    let (bad_utf8, bad_utf8_id) = b_span(base + 0x1_0000, b"bad \xff name", &[]);
    let (bad_deep, bad_deep_id) = b_span(base + 0x1_0001, b"deep attribute", &[deep60]);
    let (ok1, ok1_id) = b_span(base + 0x1_0002, b"b valid 1", &[]);
    let (ok2, ok2_id) = b_span(base + 0x1_0003, b"b valid 2", &[]);
    let b_requests = [
        (
            "invalid UTF-8 span name over HTTP",
            Transport::HttpProto,
            request(&[service_name("client-b")], &[bad_utf8, ok1]),
        ),
        (
            "60-deep attribute over gRPC",
            Transport::Grpc,
            request(&[service_name("client-b")], &[ok2, bad_deep]),
        ),
    ];
    let b_valid: BTreeSet<String> = [ok1_id, ok2_id].into();
    // C: a valid span as deep as the door allows (a 32-deep key-value list, in the costliest shape), in the same
    // batch. Every sink must take it: the JSON one too (OTLP/JSON nests it 135 levels, past serde_json's default
    // limit of 128 — a spanpipe behind `otlp_http` json used to refuse the whole batch for it).
    let (c_span, c_id) = b_span(
        base + 0x2_0000,
        b"client C, deepest legal attribute",
        &[key_value(
            "deep",
            &deep_value(Nest::Kvlist, DEFAULT_DEPTH, &string_value(b"x")),
        )],
    );
    let c_request = request(&[service_name("client-c")], &[c_span]);
    let b_invalid: BTreeSet<String> = [bad_utf8_id, bad_deep_id].into();

    // Everything at once, well inside one batch timeout: A's four requests and B's two, concurrently.
    let rt = runtime();
    let (a_answers, b_answers) = rt.block_on(async {
        let client = http_client();
        let a = a_requests.into_iter().enumerate().map(|(i, body)| {
            let client = client.clone();
            let t = if i % 2 == 0 {
                Transport::Grpc
            } else {
                Transport::HttpProto
            };
            tokio::spawn(async move {
                send(
                    &client,
                    t,
                    grpc,
                    http,
                    body,
                    &format!("client A request {i} over {t:?}"),
                )
                .await
            })
        });
        let b = b_requests.into_iter().map(|(what, t, body)| {
            let client = client.clone();
            tokio::spawn(async move { (what, send(&client, t, grpc, http, body, what).await) })
        });
        let c = {
            let client = client.clone();
            tokio::spawn(async move {
                send(
                    &client,
                    Transport::HttpProto,
                    grpc,
                    http,
                    c_request,
                    "client C",
                )
                .await
            })
        };
        let (a, b): (Vec<_>, Vec<_>) = (a.collect(), b.collect());
        let mut a_answers = Vec::new();
        for h in a {
            a_answers.push(h.await.expect("client A task"));
        }
        let mut b_answers = Vec::new();
        for h in b {
            b_answers.push(h.await.expect("client B task"));
        }
        let c_answer = c.await.expect("client C task");
        assert!(c_answer.is_clean_ok(), "client C: {c_answer:?}");
        (a_answers, b_answers)
    });
    for (i, a) in a_answers.iter().enumerate() {
        assert!(a.is_clean_ok(), "client A request {i}: {a:?}");
    }
    for (what, answer) in &b_answers {
        println!("client B, {what}, on_invalid_span {policy}: {answer:?}");
        if drop {
            match answer {
                Answer::Accepted { rejected, message } => {
                    assert_eq!(*rejected, 1, "{what}: one span rejected");
                    assert!(
                        !message.is_empty(),
                        "{what}: partial success without error_message"
                    );
                }
                other => panic!("{what}: with drop want 200 + partial success, got {other:?}"),
            }
        } else {
            assert!(
                answer.is_refused(),
                "{what}: want 400 / INVALID_ARGUMENT, got {answer:?}"
            );
        }
    }
    assert_no_crash(&mut sp);

    let mut want = a_ids.clone();
    want.insert(c_id);
    if drop {
        want.extend(b_valid.iter().cloned());
    }
    // file (A's own) and otlp_http json → spanpipe B's file.
    let got_file = wait_for_ids(&out_a, &want, Duration::from_secs(60));
    let d_file = assert_exact("file", &want, &got_file, &sp);
    let got_json = wait_for_ids(&out_b, &want, Duration::from_secs(60));
    let d_json = assert_exact(
        "otlp_http json → spanpipe → file",
        &want,
        &got_json,
        &backend,
    );
    // MLflow, by span id.
    let mut exp_id = None;
    assert!(
        wait_until(Duration::from_secs(60), || {
            exp_id = mlflow.experiment_id(&experiment);
            exp_id.is_some()
        }),
        "experiment {experiment} never created; spanpipe:\n{}",
        tail(&sp.stderr_text(), 4000)
    );
    let exp_id = exp_id.unwrap_or_default();
    let n = mlflow.wait_for_spans(&exp_id, want.len(), Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    let stored: Vec<String> = mlflow
        .traces(&exp_id)
        .iter()
        .flat_map(|t| t["spans"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["span_id"].as_str().map(b64_to_hex))
        .collect();
    let d_mlflow = assert_exact("MLflow", &want, &stored, &sp);
    for (sink, got) in [
        ("file", &got_file),
        ("otlp_http json", &got_json),
        ("MLflow", &stored),
    ] {
        assert!(
            b_invalid.iter().all(|id| !got.contains(id)),
            "{sink} holds one of client B's invalid spans"
        );
    }
    println!(
        "on_invalid_span {policy}: A sent 200 spans, B sent {} valid + {} invalid, C 1 (32-deep kvlist)",
        if drop { 2 } else { 0 },
        b_invalid.len()
    );
    println!("  file: {d_file}");
    println!("  otlp_http json → spanpipe file: {d_json}");
    println!("  MLflow ({n} spans seen while waiting): {d_mlflow}");

    // Refused spans are counted: all 4 spans of B's requests under `reject`, the 2 invalid ones under `drop`.
    let refused_want = if drop { 2.0 } else { 4.0 };
    let family = "otelcol_receiver_refused_spans_total";
    let mut text = String::new();
    wait_until(Duration::from_secs(10), || {
        text = scrape(telemetry);
        metric_sum(&text, family, &["receiver=\"otlp\""]) >= refused_want
    });
    let refused = metric_sum(&text, family, &["receiver=\"otlp\""]);
    let accepted = metric_sum(
        &text,
        "otelcol_receiver_accepted_spans_total",
        &["receiver=\"otlp\""],
    );
    println!("  {family} = {refused}, otelcol_receiver_accepted_spans_total = {accepted}");
    assert_eq!(refused, refused_want, "{family}:\n{}", tail(&text, 3000));
    assert_eq!(
        accepted,
        want.len() as f64,
        "accepted spans:\n{}",
        tail(&text, 3000)
    );
    let err = sp.stderr_text();
    assert!(!err.contains("panicked"), "spanpipe:\n{}", tail(&err, 3000));
    assert!(sp.stop_gracefully().success());
    println!("  done in {:.1?}", t0.elapsed());
}

#[test]
fn an_invalid_span_is_refused_and_its_batch_mates_reach_every_sink() {
    batch_mates("reject");
}

#[test]
fn with_drop_an_invalid_span_is_a_partial_success_and_the_rest_reaches_every_sink() {
    batch_mates("drop");
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Redaction: refused or masked, never in clear
// ---------------------------------------------------------------------------------------------------------------

const CARD: &str = "4111111111111111";
const CARD_SPACED: &str = "4111 1111 1111 1111";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Invalid at the door: 400 / INVALID_ARGUMENT (`reject`), or a partial success with the span removed
    /// (`drop`). Never reaches a processor.
    Refused,
    /// Accepted; at the sink the secret is gone and `****` is in its place.
    Masked,
}

struct RedactionCase {
    what: &'static str,
    /// Encoded `AnyValue` of the span attribute `payload`.
    value: Vec<u8>,
    fate: Fate,
}

fn redaction_cases() -> Vec<RedactionCase> {
    let card = string_value(format!("card {CARD_SPACED} on file").as_bytes());
    let bare_card = string_value(CARD.as_bytes());
    // An e-mail with its `@` as a JSON escape, in a JSON string nested 70 objects deep (the JSON path parses 64).
    let mut json = String::new();
    for _ in 0..70 {
        json.push_str(r#"{"a":"#);
    }
    json.push_str(r#""mail alice\u0040corp.com""#);
    for _ in 0..70 {
        json.push('}');
    }
    let case = |what, value, fate| RedactionCase { what, value, fate };
    vec![
        case("control: card in a flat string", card.clone(), Fate::Masked),
        case(
            "control: card in a 3-deep array",
            deep_value(Nest::Array, 3, &bare_card),
            Fate::Masked,
        ),
        case(
            "card in an array that also holds an invalid-UTF-8 element",
            array_value(&[bare_card.clone(), string_value(b"oops \xff\xfe")]),
            Fate::Refused,
        ),
        case(
            "card in a kvlist nested 32 deep (the deepest the door lets in)",
            deep_value(Nest::Kvlist, DEFAULT_DEPTH, &card),
            Fate::Masked,
        ),
        case(
            "card in an array nested 32 deep (the deepest the door lets in)",
            deep_value(Nest::Array, DEFAULT_DEPTH, &bare_card),
            Fate::Masked,
        ),
        case(
            "card in a kvlist nested 34 deep",
            deep_value(Nest::Kvlist, 35, &card),
            Fate::Refused,
        ),
        case(
            "card in an array nested 51 deep",
            deep_value(Nest::Array, 52, &bare_card),
            Fate::Refused,
        ),
        case(
            "e-mail with its @ as a \\u0040 escape in a JSON string nested 70 levels",
            string_value(json.as_bytes()),
            Fate::Masked,
        ),
    ]
}

/// Secrets that must never appear in a sink's output, in any spelling the test used.
const SECRETS: [&str; 5] = [CARD, CARD_SPACED, "alice", "corp.com", "1111 1111"];

/// The `payload` attribute of span `sid` in the file exporter's output (as OTLP/JSON), if the span is there.
fn payload_of(path: &Path, sid: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v = spanpipe_e2e::ids::parse_deep_json(line).ok()?;
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    if s["spanId"]
                        .as_str()
                        .is_some_and(|id| id.eq_ignore_ascii_case(sid))
                    {
                        return s["attributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .find(|a| a["key"] == "payload")
                            .map(|a| a["value"].clone());
                    }
                }
            }
        }
    }
    None
}

/// The innermost string of a (possibly nested) OTLP/JSON `AnyValue`, walked iteratively along first elements.
fn innermost_string(v: &serde_json::Value) -> Option<String> {
    let mut cur = v;
    for _ in 0..100 {
        if let Some(s) = cur["stringValue"].as_str() {
            return Some(s.to_string());
        }
        cur = if let Some(a) = cur["arrayValue"]["values"].get(0) {
            a
        } else if let Some(kv) = cur["kvlistValue"]["values"].get(0) {
            &kv["value"]
        } else {
            return None;
        };
    }
    None
}

#[test]
fn redaction_cases_are_refused_at_the_door_or_arrive_masked_never_in_clear() {
    let work = work_dir("spanpipe-wire-door-redaction-");
    let mut report: Vec<String> = Vec::new();
    let rt = runtime();
    let client = http_client();
    let cases = redaction_cases();
    let mut n = 0x00c0_0000u64;
    for policy in ["reject", "drop"] {
        let [grpc, http] = free_ports::<2>();
        let out = work.path().join(format!("{policy}.jsonl"));
        let mut sp = Spanpipe::start(
            &format!(
                "
receivers:
  otlp:
    max_attribute_depth: {DEFAULT_DEPTH}
    on_invalid_span: {policy}
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  redaction:
    allow_all_keys: true
    blocked_value_presets: [credit_card, email]
exporters:
  file: {{ path: {out} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [redaction], exporters: [file] }}
",
                out = out.display()
            ),
            &[grpc, http],
        );
        let mut masked: Vec<(String, String)> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        for case in &cases {
            for t in [Transport::Grpc, Transport::HttpProto] {
                n += 1;
                let sid = span_id(n);
                let attrs = [
                    key_value("payload", &case.value),
                    key_value("case", &string_value(case.what.as_bytes())),
                ];
                let body = request(
                    &[service_name("redaction-e2e")],
                    &[span(&trace_id(n), &sid, None, b"redact me", &attrs)],
                );
                let what = format!("on_invalid_span {policy}: {} over {t:?}", case.what);
                let answer = rt.block_on(send(&client, t, grpc, http, body, &what));
                let seen = match (case.fate, policy, &answer) {
                    (Fate::Refused, "reject", Answer::Refused { .. }) => {
                        "refused (400 / INVALID_ARGUMENT)"
                    }
                    (
                        Fate::Refused,
                        "drop",
                        Answer::Accepted {
                            rejected: 1,
                            message,
                        },
                    ) if !message.is_empty() => "refused (partial success, rejected_spans 1)",
                    (Fate::Masked, _, a) if a.is_clean_ok() => "accepted",
                    _ => panic!("{what}: want {:?}, got {answer:?}", case.fate),
                };
                match case.fate {
                    Fate::Refused => refused.push(hex(&sid)),
                    Fate::Masked => masked.push((hex(&sid), what.clone())),
                }
                report.push(format!("{what}: {seen}"));
            }
        }
        // A sentinel last; then everything accepted must be there, and nothing refused.
        n += 1;
        let sentinel = span_id(n);
        let body = request(
            &[service_name("redaction-e2e")],
            &[span(&trace_id(n), &sentinel, None, b"sentinel", &[])],
        );
        let answer = rt.block_on(send(
            &client,
            Transport::HttpProto,
            grpc,
            http,
            body,
            "sentinel",
        ));
        assert!(answer.is_clean_ok(), "sentinel: {answer:?}");
        let mut want: BTreeSet<String> = masked.iter().map(|(id, _)| id.clone()).collect();
        want.insert(hex(&sentinel));
        let got = wait_for_ids(&out, &want, Duration::from_secs(30));
        assert_exact(&format!("file ({policy})"), &want, &got, &sp);
        assert!(
            refused.iter().all(|id| !got.contains(id)),
            "a refused span reached the sink"
        );
        // Never in clear, anywhere in the sink's output.
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        for secret in SECRETS {
            assert!(
                !text.contains(secret),
                "{policy}: {secret:?} reached the sink in clear:\n{}",
                tail(&text, 3000)
            );
        }
        // Each accepted case arrived, masked: its payload is there with the mask where the secret was.
        for (sid, what) in &masked {
            let payload = payload_of(&out, sid)
                .unwrap_or_else(|| panic!("{what}: span or its payload missing at the sink"));
            let leaf = innermost_string(&payload).unwrap_or_default();
            assert!(
                leaf.contains("****"),
                "{what}: payload not masked: {}",
                tail(&payload.to_string(), 500)
            );
            let how = if payload["stringValue"] == "****" {
                "masked whole"
            } else {
                "masked in place"
            };
            report.push(format!(
                "{what}: at the sink {how}: innermost value {leaf:?}"
            ));
        }
        assert_no_crash(&mut sp);
        println!(
            "on_invalid_span {policy}: {} requests refused, {} accepted and masked",
            refused.len(),
            masked.len()
        );
        assert!(sp.stop_gracefully().success());
    }
    println!("{}", report.join("\n"));
}

/// `max_attribute_depth` is capped at 32: past it a key-value list would be past prost's recursion limit.
#[test]
fn max_attribute_depth_above_the_cap_is_a_config_error() {
    let dir = work_dir("spanpipe-wire-door-config-");
    for (depth, ok) in [
        (DEFAULT_DEPTH, true),
        (DEFAULT_DEPTH + 1, false),
        (40, false),
        (0, false),
    ] {
        let path = dir.path().join(format!("d{depth}.yaml"));
        std::fs::write(
            &path,
            format!(
                "receivers:\n  otlp:\n    max_attribute_depth: {depth}\n    protocols:\n      grpc:\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [debug] }}\n"
            ),
        )
        .expect("write config");
        let out =
            spanpipe_e2e::run_spanpipe(&["validate", "--config", &path.display().to_string()]);
        if ok {
            assert_eq!(out.code(), 0, "depth {depth}: {}", out.stderr);
        } else {
            assert_eq!(
                out.code(),
                1,
                "depth {depth} must be refused: {}",
                out.stderr
            );
            assert!(
                out.stderr.contains("max_attribute_depth")
                    && out.stderr.contains("between 1 and 32"),
                "depth {depth}: {}",
                out.stderr
            );
        }
    }
}
