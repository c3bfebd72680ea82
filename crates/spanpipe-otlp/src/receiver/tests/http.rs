//! OTLP/HTTP status codes and data path.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use reqwest::{Client, Response, StatusCode};

use super::{MAX_BODY, Mode, Recorder, bad_id_bytes, start, traces, traces_bytes};
use crate::compression::{Compression, compress};
use crate::receiver::status::RpcStatus;
use spanpipe_core::Receiver;

const PB: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// reqwest is built without a default rustls provider and refuses to build even a plain-HTTP client without one.
fn client() -> Client {
    crate::exporter::tls::ensure_crypto_provider();
    Client::new()
}

async fn post(url: &str, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> Response {
    let mut req = client()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    req.send().await.unwrap()
}

/// Checks the status and that the body is a protobuf `google.rpc.Status` with `code`.
async fn expect_pb_error(resp: Response, status: StatusCode, code: i32) -> RpcStatus {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], PB);
    let body = resp.bytes().await.unwrap();
    let st = RpcStatus::decode(&body[..]).unwrap();
    assert_eq!(st.code, code, "{st:?}");
    st
}

#[tokio::test]
async fn protobuf_json_and_every_encoding_are_accepted() {
    let rec = Recorder::new(Mode::Accept);
    let rx = start(&rec, true).await;
    let url = format!("http://{}/v1/traces", rx.http_addr().unwrap());
    let body = traces_bytes(3);

    let resp = post(&url, PB, None, body.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], PB);
    assert!(resp.bytes().await.unwrap().is_empty());

    for (c, name) in [
        (Compression::Gzip, "gzip"),
        (Compression::Zstd, "zstd"),
        (Compression::Deflate, "deflate"),
    ] {
        let resp = post(&url, PB, Some(name), compress(c, &body).unwrap()).await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
    }
    let resp = post(&url, PB, Some("identity"), body.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);

    let json = r#"{"resource_spans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
        "spanId":"eee19b7ec3c1b174","kind":2,"startTimeUnixNano":"1544712660000000000"}]}]}]}"#;
    let resp = client()
        .post(&url)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-tenant", "acme")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], JSON);
    assert_eq!(resp.text().await.unwrap(), "{}");

    let batches = rec.batches();
    assert_eq!(batches.len(), 6);
    for b in &batches[..5] {
        assert_eq!(b.items, 3);
        assert_eq!(
            &b.payload.to_vec()[..],
            &body[..],
            "protobuf bodies pass through unchanged"
        );
    }
    let from_json = ExportTraceServiceRequest::decode(&batches[5].payload.to_vec()[..]).unwrap();
    let span = &from_json.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!((batches[5].items, span.kind, span.span_id.len()), (1, 2, 8));
    assert_eq!(batches[5].metadata.get("x-tenant"), Some("acme"));
    assert_eq!(
        batches[5].metadata.get("content-type"),
        Some("application/json; charset=utf-8")
    );
    rx.shutdown().await;
}

#[tokio::test]
async fn h2c_and_empty_requests() {
    let rec = Recorder::new(Mode::Accept);
    let rx = start(&rec, false).await;
    let url = format!("http://{}/v1/traces", rx.http_addr().unwrap());
    crate::exporter::tls::ensure_crypto_provider();
    let h2 = Client::builder().http2_prior_knowledge().build().unwrap();
    let resp = h2
        .post(&url)
        .header("content-type", PB)
        .body(traces_bytes(2))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);

    // A JSON body this large is converted on the blocking pool.
    let long = "y".repeat(40 << 10);
    let json = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c",
        "spanId":"eee19b7ec3c1b174","attributes":[{{"key":"k","value":{{"stringValue":"{long}"}}}}]}}]}}]}}]}}"#
    );
    assert_eq!(
        post(&url, JSON, None, json.into_bytes()).await.status(),
        StatusCode::OK
    );

    // Zero items: accepted, nothing consumed.
    assert_eq!(
        post(&url, PB, None, Vec::new()).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        post(&url, JSON, None, b"{}".to_vec()).await.status(),
        StatusCode::OK
    );
    let batches = rec.batches();
    assert_eq!(batches.len(), 2);
    assert_eq!(
        batches[0].metadata,
        Default::default(),
        "include_metadata is off"
    );
    assert!(batches[1].payload.len() > 40 << 10);
    rx.shutdown().await;
}

#[tokio::test]
async fn routing_errors() {
    let rec = Recorder::new(Mode::Accept);
    let rx = start(&rec, false).await;
    let base = format!("http://{}", rx.http_addr().unwrap());

    let resp = post(&format!("{base}/v1/nope"), PB, None, traces_bytes(1)).await;
    expect_pb_error(resp, StatusCode::NOT_FOUND, 5).await;
    // No pipeline takes metrics from this receiver.
    let resp = post(&format!("{base}/v1/metrics"), PB, None, Vec::new()).await;
    expect_pb_error(resp, StatusCode::NOT_FOUND, 12).await;

    let resp = client()
        .get(format!("{base}/v1/traces"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    expect_pb_error(resp, StatusCode::METHOD_NOT_ALLOWED, 12).await;

    let url = format!("{base}/v1/traces");
    let resp = post(&url, "text/plain", None, traces_bytes(1)).await;
    expect_pb_error(resp, StatusCode::UNSUPPORTED_MEDIA_TYPE, 3).await;
    let resp = post(&url, PB, Some("br"), traces_bytes(1)).await;
    let st = expect_pb_error(resp, StatusCode::UNSUPPORTED_MEDIA_TYPE, 3).await;
    assert!(st.message.contains("Content-Encoding"), "{st:?}");
    assert!(rec.batches().is_empty());
    rx.shutdown().await;
}

fn gzip_best(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn size_limits() {
    let rec = Recorder::new(Mode::Accept);
    let rx = start(&rec, false).await;
    let url = format!("http://{}/v1/traces", rx.http_addr().unwrap());

    let big = traces(1, MAX_BODY as usize).encode_to_vec();
    expect_pb_error(
        post(&url, PB, None, big.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        8,
    )
    .await;
    // Far over the limit: still a clean 413, not a reset connection.
    let huge = traces(1, 3 << 20).encode_to_vec();
    expect_pb_error(
        post(&url, PB, None, huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        8,
    )
    .await;
    // Compressed it fits the body limit, decompressed it does not.
    let small = compress(Compression::Gzip, &big).unwrap();
    assert!(small.len() < MAX_BODY as usize / 4);
    expect_pb_error(
        post(&url, PB, Some("gzip"), small).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        8,
    )
    .await;
    // A gzip bomb: 50 MiB of zeros in ~50 KB; the cap stops decompression at the limit.
    let bomb = gzip_best(&vec![0u8; 50 << 20]);
    assert!(bomb.len() < MAX_BODY as usize);
    expect_pb_error(
        post(&url, PB, Some("gzip"), bomb).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        8,
    )
    .await;
    // Just under the limit is fine.
    let fits = traces(1, MAX_BODY as usize - 200).encode_to_vec();
    assert!(fits.len() <= MAX_BODY as usize);
    assert_eq!(post(&url, PB, None, fits).await.status(), StatusCode::OK);
    assert_eq!(rec.batches().len(), 1);
    rx.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let rec = Recorder::new(Mode::Accept);
    let rx = start(&rec, false).await;
    let url = format!("http://{}/v1/traces", rx.http_addr().unwrap());

    expect_pb_error(
        post(&url, PB, None, b"\xff\xff\xff garbage".to_vec()).await,
        StatusCode::BAD_REQUEST,
        3,
    )
    .await;
    let st = expect_pb_error(
        post(&url, PB, None, bad_id_bytes()).await,
        StatusCode::BAD_REQUEST,
        3,
    )
    .await;
    assert!(st.message.contains("trace_id is 15 bytes"), "{st:?}");
    let resp = post(&url, PB, Some("gzip"), b"not gzip".to_vec()).await;
    expect_pb_error(resp, StatusCode::BAD_REQUEST, 3).await;

    // JSON errors answer in JSON.
    let bad_json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abcd","spanId":"eee19b7ec3c1b174"}]}]}]}"#;
    let resp = post(&url, JSON, None, bad_json.to_vec()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["content-type"], JSON);
    let st: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(st["code"], 3);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("traceId is 2 bytes"),
        "{st}"
    );
    let resp = post(&url, JSON, None, b"{not json".to_vec()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(rec.batches().is_empty());
    rx.shutdown().await;
}

#[tokio::test]
async fn consumer_refusal_is_503_with_retry_after_and_rejection_is_400() {
    let rec = Recorder::new(Mode::Refuse(Duration::from_millis(1500)));
    let rx = start(&rec, false).await;
    let url = format!("http://{}/v1/traces", rx.http_addr().unwrap());
    let resp = post(&url, PB, None, traces_bytes(1)).await;
    assert_eq!(resp.headers()["retry-after"], "2");
    let st = expect_pb_error(resp, StatusCode::SERVICE_UNAVAILABLE, 14).await;
    assert_eq!(st.message, "queue full");
    rx.shutdown().await;

    let rec = Recorder::new(Mode::Reject);
    let rx = start(&rec, false).await;
    let url = format!("http://{}/v1/traces", rx.http_addr().unwrap());
    let resp = post(
        &url,
        JSON,
        None,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
        "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}"#
            .to_vec(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("retry-after").is_none());
    let st: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(st, serde_json::json!({"code": 3, "message": "not wanted"}));
    rx.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let rec = Recorder::new(Mode::Slow(Duration::from_millis(400)));
    let rx = start(&rec, false).await;
    let url = format!("http://{}/v1/traces", rx.http_addr().unwrap());
    let in_flight =
        tokio::spawn(async move { post(&url, PB, None, traces_bytes(2)).await.status() });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = std::time::Instant::now();
    rx.shutdown().await;
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "shutdown did not wait"
    );
    assert_eq!(in_flight.await.unwrap(), StatusCode::OK);
    assert_eq!(rec.batches().len(), 1);
}

#[tokio::test]
async fn compression_algorithms_limits_the_encodings_accepted() {
    use crate::receiver::OtlpReceiver;
    use crate::receiver::config::{HttpConfig, OtlpReceiverConfig, Protocols};
    use spanpipe_core::SignalConsumers;
    let rec = Recorder::new(Mode::Accept);
    let config = OtlpReceiverConfig {
        protocols: Protocols {
            grpc: None,
            http: Some(HttpConfig {
                endpoint: "127.0.0.1:0".into(),
                compression_algorithms: Some(vec!["zstd".into()]),
                ..HttpConfig::default()
            }),
        },
        ..OtlpReceiverConfig::default()
    };
    let rx = OtlpReceiver::new("otlp/enc", config);
    let consumers = SignalConsumers {
        traces: Some(rec.clone()),
        ..Default::default()
    };
    rx.start(consumers).await.unwrap();
    let url = format!("http://{}/v1/traces", rx.http_addr().unwrap());
    let body = traces_bytes(1);
    let ok = post(
        &url,
        PB,
        Some("zstd"),
        compress(Compression::Zstd, &body).unwrap(),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let gz = post(
        &url,
        PB,
        Some("gzip"),
        compress(Compression::Gzip, &body).unwrap(),
    )
    .await;
    assert_eq!(gz.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let plain = post(&url, PB, None, body).await;
    assert_eq!(
        plain.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "\"\" is not listed"
    );
    rx.shutdown().await;
}
