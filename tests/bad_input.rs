//! The OTLP receiver's answers to bad input, over HTTP (status codes, `google.rpc.Status` bodies) and gRPC
//! (status codes), and its refusal when every exporter queue is full. After the bad requests the collector must
//! still be running and still accept valid requests — and only the valid requests' spans may come out.

use std::path::PathBuf;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use spanpipe_e2e::otlp::{
    CT_JSON, CT_PROTOBUF, RpcStatus, deflate, grpc_export_raw, gzip, gzip_bomb, hex, http_client,
    http_post, json_request, json_request_snake, proto_body, proto_request, span_id, trace_id,
    zstd,
};
use spanpipe_e2e::{IdDiff, Spanpipe, file_exporter_span_ids, free_ports, tail, wait_until};
use tonic::Code;
use tonic::codec::CompressionEncoding;

/// A collector with an OTLP receiver (gRPC limit 1 MiB, HTTP body limit 1 MiB) feeding a `file` exporter.
struct Target {
    sp: Spanpipe,
    grpc: u16,
    http: u16,
    out: PathBuf,
    _out_dir: tempfile::TempDir,
}

const LIMIT: usize = 1 << 20;

fn start_target() -> Target {
    let [grpc, http] = free_ports::<2>();
    let out_dir = tempfile::Builder::new()
        .prefix("spanpipe-out-")
        .tempdir()
        .expect("tempdir");
    let out = out_dir.path().join("spans.jsonl");
    let yaml = format!(
        "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc}, max_recv_msg_size_mib: 1 }}
      http: {{ endpoint: 127.0.0.1:{http}, max_request_body_size: 1MiB }}
exporters:
  file: {{ path: {out} }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
  telemetry: {{ logs: {{ level: info }} }}
",
        out = out.display()
    );
    let sp = Spanpipe::start(&yaml, &[grpc, http]);
    Target {
        sp,
        grpc,
        http,
        out,
        _out_dir: out_dir,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Span ids are unique per test: `base` + index.
fn ids(base: u64, n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| span_id(base + i)).collect()
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// 200 with an `ExportTraceServiceResponse` in the request's encoding and no rejected spans.
async fn expect_ok(resp: reqwest::Response, json: bool, what: &str) {
    let status = resp.status();
    let ct = content_type(&resp);
    let body = resp.bytes().await.expect("response body");
    assert_eq!(
        status.as_u16(),
        200,
        "{what}: body {:?}",
        String::from_utf8_lossy(&body)
    );
    if json {
        assert!(
            ct.starts_with(CT_JSON),
            "{what}: response content-type {ct:?}, want {CT_JSON}"
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{what}: response is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&body)
            )
        });
        assert!(
            v.is_object(),
            "{what}: response must be an ExportTraceServiceResponse object: {v}"
        );
        let rejected = v
            .get("partialSuccess")
            .and_then(|p| p.get("rejectedSpans"))
            .map(|r| r.to_string().trim_matches('"').to_string());
        assert!(
            rejected.is_none() || rejected.as_deref() == Some("0"),
            "{what}: spans rejected: {v}"
        );
    } else {
        assert!(
            ct.starts_with(CT_PROTOBUF),
            "{what}: response content-type {ct:?}, want {CT_PROTOBUF}"
        );
        let r = ExportTraceServiceResponse::decode(body.as_ref()).unwrap_or_else(|e| {
            panic!("{what}: response is not an ExportTraceServiceResponse: {e}")
        });
        let rejected = r.partial_success.map_or(0, |p| p.rejected_spans);
        assert_eq!(rejected, 0, "{what}: spans rejected");
    }
}

/// 400 with a `google.rpc.Status` body in the request's encoding.
async fn expect_400_status(resp: reqwest::Response, json: bool, what: &str) {
    let status = resp.status();
    let body = resp.bytes().await.expect("response body");
    let shown = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status.as_u16(), 400, "{what}: body {shown:?}");
    if json {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!("{what}: 400 body is not a JSON google.rpc.Status ({e}): {shown:?}")
        });
        let msg = v.get("message").and_then(|m| m.as_str()).unwrap_or("");
        assert!(
            !msg.is_empty(),
            "{what}: JSON Status without a message: {v}"
        );
        if let Some(code) = v.get("code") {
            assert!(
                code.as_i64().is_some_and(|c| c != 0),
                "{what}: Status code must be a non-OK integer: {v}"
            );
        }
    } else {
        let st = RpcStatus::decode(body.as_ref()).unwrap_or_else(|e| {
            panic!("{what}: 400 body is not a protobuf google.rpc.Status ({e}): {shown:?}")
        });
        assert_ne!(st.code, 0, "{what}: Status code is OK in an error: {st:?}");
        assert!(
            !st.message.is_empty(),
            "{what}: Status without message: {st:?}"
        );
    }
}

/// Waits (bounded) until every id in `want` is in the file exporter's output, then checks that the output holds
/// exactly `want` (each once, nothing else — so nothing from a refused request leaked through).
fn assert_output_exactly(t: &Target, want: &[String]) {
    let ok = wait_until(Duration::from_secs(20), || {
        let got = file_exporter_span_ids(&t.out);
        want.iter().all(|id| got.contains(id))
    });
    // Give stragglers (duplicates, leaked spans) a moment to show up before the exact comparison.
    std::thread::sleep(Duration::from_millis(300));
    let got = file_exporter_span_ids(&t.out);
    let diff = IdDiff::compute(want, &got);
    assert!(
        ok && diff.is_exact(),
        "file exporter output vs accepted requests: {diff}\nspanpipe stderr:\n{}",
        tail(&t.sp.stderr_text(), 4000)
    );
}

/// The collector is still running and accepts a valid protobuf and a valid JSON request.
async fn assert_still_serving(t: &mut Target, client: &reqwest::Client, base: u64) -> Vec<String> {
    t.sp.assert_running();
    let tid = trace_id(base);
    let pb = ids(base, 2);
    let resp = http_post(
        client,
        t.http,
        "/v1/traces",
        CT_PROTOBUF,
        None,
        proto_body(&tid, &pb),
    )
    .await;
    expect_ok(resp, false, "valid protobuf after bad requests").await;
    let js = ids(base + 2, 2);
    let js_hex: Vec<String> = js.iter().map(|s| hex(s)).collect();
    let js_ref: Vec<&str> = js_hex.iter().map(String::as_str).collect();
    let body = serde_json::to_vec(&json_request(&hex(&tid), &js_ref)).unwrap();
    let resp = http_post(client, t.http, "/v1/traces", CT_JSON, None, body).await;
    expect_ok(resp, true, "valid JSON after bad requests").await;
    t.sp.assert_running();
    pb.iter().chain(js.iter()).map(|s| hex(s)).collect()
}

#[test]
fn http_valid_requests_are_accepted_in_every_encoding() {
    let mut t = start_target();
    let rt = runtime();
    let accepted = rt.block_on(async {
        let client = http_client();
        let mut accepted: Vec<String> = Vec::new();
        let mut next = 1_000u64;
        for (enc, compress) in [
            (None, None::<fn(&[u8]) -> Vec<u8>>),
            (Some("gzip"), Some(gzip as fn(&[u8]) -> Vec<u8>)),
            (Some("zstd"), Some(zstd as fn(&[u8]) -> Vec<u8>)),
            (Some("deflate"), Some(deflate as fn(&[u8]) -> Vec<u8>)),
        ] {
            for json in [false, true] {
                let sids = ids(next, 3);
                let tid = trace_id(next);
                next += 10;
                let raw = if json {
                    let hexes: Vec<String> = sids.iter().map(|s| hex(s)).collect();
                    let refs: Vec<&str> = hexes.iter().map(String::as_str).collect();
                    serde_json::to_vec(&json_request(&hex(&tid), &refs)).unwrap()
                } else {
                    proto_body(&tid, &sids)
                };
                let body = compress.map_or(raw.clone(), |f| f(&raw));
                let ct = if json { CT_JSON } else { CT_PROTOBUF };
                let resp = http_post(&client, t.http, "/v1/traces", ct, enc, body).await;
                expect_ok(resp, json, &format!("{ct} with Content-Encoding {enc:?}")).await;
                accepted.extend(sids.iter().map(|s| hex(s)));
            }
        }
        // snake_case OTLP/JSON keys are accepted too.
        let sids = ids(next, 2);
        let hexes: Vec<String> = sids.iter().map(|s| hex(s)).collect();
        let refs: Vec<&str> = hexes.iter().map(String::as_str).collect();
        let body = serde_json::to_vec(&json_request_snake(&hex(&trace_id(next)), &refs)).unwrap();
        let resp = http_post(&client, t.http, "/v1/traces", CT_JSON, None, body).await;
        expect_ok(resp, true, "snake_case OTLP/JSON").await;
        accepted.extend(hexes);
        accepted
    });
    t.sp.assert_running();
    assert_eq!(accepted.len(), 4 * 2 * 3 + 2);
    assert_output_exactly(&t, &accepted);
}

#[test]
fn http_malformed_bodies_and_bad_ids_are_400_with_status() {
    let mut t = start_target();
    let rt = runtime();
    let accepted = rt.block_on(async {
        let client = http_client();
        let good_tid = trace_id(2_000);
        // Each bad request also carries a well-formed span, which must not come out of the pipeline.
        let good_sid = span_id(2_000);
        let valid = proto_body(&good_tid, std::slice::from_ref(&good_sid));
        let proto_cases: Vec<(&str, Vec<u8>)> = vec![
            ("garbage protobuf", vec![0xff; 64]),
            ("truncated protobuf", valid[..valid.len() - 7].to_vec()),
            (
                "15-byte trace id",
                proto_body(&good_tid[..15], &[span_id(2_001)]),
            ),
            (
                "7-byte span id",
                proto_body(&good_tid, &[good_sid.clone(), span_id(2_002)[..7].to_vec()]),
            ),
            (
                "17-byte trace id",
                proto_body(&[good_tid.clone(), vec![1]].concat(), &[span_id(2_003)]),
            ),
        ];
        for (what, body) in proto_cases {
            let resp = http_post(&client, t.http, "/v1/traces", CT_PROTOBUF, None, body).await;
            expect_400_status(resp, false, &format!("protobuf: {what}")).await;
        }
        let tid_hex = hex(&good_tid);
        let sid_hex = hex(&good_sid);
        let json_cases: Vec<(&str, Vec<u8>)> = vec![
            ("not JSON", b"this is { not json".to_vec()),
            (
                "truncated JSON",
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"#.to_vec(),
            ),
            (
                "30-hex-digit trace id",
                serde_json::to_vec(&json_request(&tid_hex[..30], &[&sid_hex])).unwrap(),
            ),
            (
                "14-hex-digit span id",
                serde_json::to_vec(&json_request(
                    &tid_hex,
                    &[&sid_hex, &hex(&span_id(2_004))[..14]],
                ))
                .unwrap(),
            ),
            (
                "non-hex span id",
                serde_json::to_vec(&json_request(&tid_hex, &[&sid_hex, "zzzzzzzzzzzzzzzz"]))
                    .unwrap(),
            ),
            (
                "wrong JSON type for resourceSpans",
                br#"{"resourceSpans": 5}"#.to_vec(),
            ),
        ];
        for (what, body) in json_cases {
            let resp = http_post(&client, t.http, "/v1/traces", CT_JSON, None, body).await;
            expect_400_status(resp, true, &format!("JSON: {what}")).await;
        }
        assert_still_serving(&mut t, &client, 2_100).await
    });
    assert_output_exactly(&t, &accepted);
}

#[test]
fn http_wrong_method_path_type_and_encoding() {
    let mut t = start_target();
    let rt = runtime();
    let accepted = rt.block_on(async {
        let client = http_client();
        let body = proto_body(&trace_id(3_000), &[span_id(3_000)]);
        let resp = http_post(
            &client,
            t.http,
            "/v1/traces",
            "text/plain",
            None,
            body.clone(),
        )
        .await;
        assert_eq!(resp.status().as_u16(), 415, "text/plain content type");
        let resp = http_post(
            &client,
            t.http,
            "/v1/traces",
            CT_PROTOBUF,
            Some("br"),
            body.clone(),
        )
        .await;
        assert_eq!(resp.status().as_u16(), 415, "Content-Encoding: br");
        let resp = client
            .get(format!("http://127.0.0.1:{}/v1/traces", t.http))
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status().as_u16(), 405, "GET /v1/traces");
        let resp = http_post(
            &client,
            t.http,
            "/v1/nosuch",
            CT_PROTOBUF,
            None,
            body.clone(),
        )
        .await;
        assert_eq!(resp.status().as_u16(), 404, "POST /v1/nosuch");
        assert_still_serving(&mut t, &client, 3_100).await
    });
    assert_output_exactly(&t, &accepted);
}

#[test]
fn http_body_limits_apply_before_and_after_decompression() {
    let mut t = start_target();
    let rt = runtime();
    let accepted = rt.block_on(async {
        let client = http_client();
        // A well-formed request of 1.5 MiB, sent plain: over max_request_body_size (1 MiB).
        let big =
            proto_request(&trace_id(4_000), &[span_id(4_000)], LIMIT + LIMIT / 2).encode_to_vec();
        assert!(big.len() > LIMIT);
        let resp = http_post(
            &client,
            t.http,
            "/v1/traces",
            CT_PROTOBUF,
            None,
            big.clone(),
        )
        .await;
        assert_eq!(resp.status().as_u16(), 413, "plain body over the limit");
        // The same request gzipped is tiny on the wire but over the limit once decompressed.
        let small = gzip(&big);
        assert!(
            small.len() < LIMIT / 4,
            "test setup: padding should compress well ({} bytes)",
            small.len()
        );
        let resp = http_post(
            &client,
            t.http,
            "/v1/traces",
            CT_PROTOBUF,
            Some("gzip"),
            small,
        )
        .await;
        assert_eq!(
            resp.status().as_u16(),
            413,
            "gzip body over the limit after decompression"
        );
        // A gzip bomb: ~50 KB that inflates to 50 MB of zeros.
        let bomb = gzip_bomb(50 << 20);
        assert!(
            bomb.len() < 200 << 10,
            "test setup: bomb is {} bytes",
            bomb.len()
        );
        let resp = http_post(
            &client,
            t.http,
            "/v1/traces",
            CT_PROTOBUF,
            Some("gzip"),
            bomb.clone(),
        )
        .await;
        assert_eq!(resp.status().as_u16(), 413, "gzip bomb (protobuf)");
        let resp = http_post(&client, t.http, "/v1/traces", CT_JSON, Some("gzip"), bomb).await;
        assert_eq!(resp.status().as_u16(), 413, "gzip bomb (JSON)");
        let resp = http_post(
            &client,
            t.http,
            "/v1/traces",
            CT_PROTOBUF,
            Some("zstd"),
            zstd(&vec![0u8; 50 << 20]),
        )
        .await;
        assert_eq!(resp.status().as_u16(), 413, "zstd bomb");
        // Just under the limit is fine.
        let fits = proto_request(&trace_id(4_001), &[span_id(4_001)], LIMIT - 4096).encode_to_vec();
        assert!(fits.len() < LIMIT);
        let resp = http_post(&client, t.http, "/v1/traces", CT_PROTOBUF, None, fits).await;
        expect_ok(resp, false, "body just under the limit").await;
        let mut accepted = vec![hex(&span_id(4_001))];
        accepted.extend(assert_still_serving(&mut t, &client, 4_100).await);
        accepted
    });
    assert_output_exactly(&t, &accepted);
}

fn expect_code(res: Result<Vec<u8>, tonic::Status>, code: Code, what: &str) -> tonic::Status {
    match res {
        Ok(_) => panic!("{what}: expected {code:?}, got OK"),
        Err(st) => {
            assert_eq!(st.code(), code, "{what}: {st:?}");
            st
        }
    }
}

#[test]
fn grpc_bad_input_status_codes() {
    let mut t = start_target();
    let rt = runtime();
    let accepted = rt.block_on(async {
        let port = t.grpc;
        let mut accepted = Vec::new();
        // Valid requests, uncompressed, gzip and zstd: OK with a decodable ExportTraceServiceResponse.
        for (i, comp) in [
            None,
            Some(CompressionEncoding::Gzip),
            Some(CompressionEncoding::Zstd),
        ]
        .into_iter()
        .enumerate()
        {
            let base = 5_000 + 10 * i as u64;
            let sids = ids(base, 3);
            let resp = grpc_export_raw(port, proto_body(&trace_id(base), &sids), comp)
                .await
                .unwrap_or_else(|st| panic!("valid gRPC export ({comp:?}) failed: {st:?}"));
            let r = ExportTraceServiceResponse::decode(resp.as_slice())
                .expect("ExportTraceServiceResponse");
            assert_eq!(r.partial_success.map_or(0, |p| p.rejected_spans), 0);
            accepted.extend(sids.iter().map(|s| hex(s)));
        }

        let tid = trace_id(5_100);
        let res = grpc_export_raw(port, vec![0xff; 64], None).await;
        expect_code(res, Code::InvalidArgument, "garbage bytes");
        let valid = proto_body(&tid, &[span_id(5_100)]);
        let res = grpc_export_raw(port, valid[..valid.len() - 7].to_vec(), None).await;
        expect_code(res, Code::InvalidArgument, "truncated message");
        let res = grpc_export_raw(port, proto_body(&tid[..15], &[span_id(5_101)]), None).await;
        expect_code(res, Code::InvalidArgument, "15-byte trace id");
        let res = grpc_export_raw(
            port,
            proto_body(&tid, &[span_id(5_102), span_id(5_103)[..7].to_vec()]),
            None,
        )
        .await;
        expect_code(res, Code::InvalidArgument, "7-byte span id");
        let res = grpc_export_raw(
            port,
            proto_body(&tid, &[span_id(5_104)[..7].to_vec()]),
            Some(CompressionEncoding::Gzip),
        )
        .await;
        expect_code(res, Code::InvalidArgument, "7-byte span id, gzip");

        // Over max_recv_msg_size_mib (1 MiB): RESOURCE_EXHAUSTED (not retryable), compressed or not, as the Go
        // collector answers.
        let big = proto_request(&tid, &[span_id(5_105)], 2 * LIMIT).encode_to_vec();
        let res = grpc_export_raw(port, big.clone(), None).await;
        expect_code(res, Code::ResourceExhausted, "2 MiB uncompressed message");
        let res = grpc_export_raw(port, big.clone(), Some(CompressionEncoding::Gzip)).await;
        expect_code(res, Code::ResourceExhausted, "2 MiB message, gzip");
        let res = grpc_export_raw(port, big, Some(CompressionEncoding::Zstd)).await;
        expect_code(res, Code::ResourceExhausted, "2 MiB message, zstd");

        // Still serving over gRPC and HTTP.
        t.sp.assert_running();
        let sids = ids(5_200, 2);
        grpc_export_raw(port, proto_body(&trace_id(5_200), &sids), None)
            .await
            .unwrap_or_else(|st| panic!("valid gRPC export after bad ones failed: {st:?}"));
        accepted.extend(sids.iter().map(|s| hex(s)));
        accepted.extend(assert_still_serving(&mut t, &http_client(), 5_300).await);
        accepted
    });
    assert_output_exactly(&t, &accepted);
}

#[test]
fn saturated_pipeline_refuses_with_503_and_unavailable() {
    // The only exporter points at a closed port: its single consumer takes one request and backs off for 10 s,
    // the queue (size 1) holds the next, and the receiver must refuse everything after that.
    let [grpc, http, closed] = free_ports::<3>();
    let yaml = format!(
        "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
exporters:
  otlp:
    endpoint: 127.0.0.1:{closed}
    tls: {{ insecure: true }}
    timeout: 1s
    sending_queue: {{ enabled: true, queue_size: 1, num_consumers: 1 }}
    retry_on_failure: {{ enabled: true, initial_interval: 10s, max_interval: 10s, max_elapsed_time: 120s }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
"
    );
    let mut sp = Spanpipe::start(&yaml, &[grpc, http]);
    let rt = runtime();
    rt.block_on(async {
        let client = http_client();
        let mut refused_at = None;
        for i in 1..=10u64 {
            let body = proto_body(&trace_id(6_000 + i), &[span_id(6_000 + i)]);
            let resp = http_post(&client, http, "/v1/traces", CT_PROTOBUF, None, body).await;
            match resp.status().as_u16() {
                200 => continue,
                503 => {
                    let retry_after = resp
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let secs = retry_after
                        .as_deref()
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    assert!(
                        secs.is_some(),
                        "503 without a numeric Retry-After header: {retry_after:?}"
                    );
                    refused_at = Some(i);
                    break;
                }
                other => panic!("request {i}: expected 200 or 503, got {other}"),
            }
        }
        let refused_at =
            refused_at.expect("HTTP: the saturated pipeline accepted 10 requests without a 503");
        eprintln!("HTTP refused at request {refused_at}");

        let mut refused_at = None;
        for i in 1..=10u64 {
            let body = proto_body(&trace_id(6_100 + i), &[span_id(6_100 + i)]);
            match grpc_export_raw(grpc, body, None).await {
                Ok(_) => continue,
                Err(st) => {
                    assert_eq!(st.code(), Code::Unavailable, "gRPC request {i}: {st:?}");
                    use tonic_types::StatusExt;
                    assert!(
                        st.get_details_retry_info().is_some(),
                        "UNAVAILABLE without a RetryInfo detail: {st:?}"
                    );
                    refused_at = Some(i);
                    break;
                }
            }
        }
        let refused_at = refused_at
            .expect("gRPC: the saturated pipeline accepted 10 requests without UNAVAILABLE");
        eprintln!("gRPC refused at request {refused_at}");
    });
    sp.assert_running();
    // Its queue is retrying a dead backend; a draining shutdown would wait for that, so don't.
    sp.kill();
}
