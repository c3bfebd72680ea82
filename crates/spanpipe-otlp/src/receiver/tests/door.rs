//! The door on both transports: invalid UTF-8 and deep values are refused whole by default, or dropped with an
//! OTLP partial success under `on_invalid_span: drop`; the receiver keeps serving.

use std::sync::Arc;

use http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use spanpipe_config::ByteSize;
use spanpipe_core::{Receiver, SignalConsumers};
use tonic::Code;
use tonic::transport::Channel;

use super::super::OtlpReceiver;
use super::super::config::{GrpcConfig, HttpConfig, OnInvalidSpan, OtlpReceiverConfig, Protocols};
use super::{Mode, Recorder, traces};
use crate::grpc_codec::RawCodec;
use crate::receiver::status::RpcStatus;

async fn start(rec: &Arc<Recorder>, policy: OnInvalidSpan) -> OtlpReceiver {
    let config = OtlpReceiverConfig {
        protocols: Protocols {
            grpc: Some(GrpcConfig {
                endpoint: "127.0.0.1:0".into(),
                ..GrpcConfig::default()
            }),
            http: Some(HttpConfig {
                endpoint: "127.0.0.1:0".into(),
                max_request_body_size: ByteSize(4 << 20),
                ..HttpConfig::default()
            }),
        },
        on_invalid_span: policy,
        ..OtlpReceiverConfig::default()
    };
    let rx = OtlpReceiver::new("otlp/door", config);
    rx.start(SignalConsumers {
        traces: Some(rec.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    rx
}

/// An `AnyValue` nested `depth` levels deep (arrays of arrays of a string).
fn deep_value(depth: usize) -> Vec<u8> {
    let mut v = Vec::new();
    spanpipe_core::wire::put_bytes_field(&mut v, 1, b"x");
    for _ in 1..depth {
        let mut list = Vec::new();
        spanpipe_core::wire::put_bytes_field(&mut list, 1, &v);
        v.clear();
        spanpipe_core::wire::put_bytes_field(&mut v, 5, &list);
    }
    v
}

/// Three spans; span 1 is made invalid by `poison`: `"utf8"` puts 0xff in its name, `"deep"` appends a
/// `depth`-deep attribute.
fn request(poison: &str, depth: usize) -> Vec<u8> {
    let mut req = traces(3, 4);
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    spans[1].name = "BADNAME".into();
    let mut raw = spans[1].encode_to_vec();
    if poison == "utf8" {
        let at = raw.windows(7).position(|w| w == b"BADNAME").unwrap();
        raw[at] = 0xff;
    } else {
        let mut kv = Vec::new();
        spanpipe_core::wire::put_bytes_field(&mut kv, 1, b"deep");
        spanpipe_core::wire::put_bytes_field(&mut kv, 2, &deep_value(depth));
        spanpipe_core::wire::put_bytes_field(&mut raw, 9, &kv);
    }
    let (a, c) = (spans[0].encode_to_vec(), spans[2].encode_to_vec());
    let mut ss = Vec::new();
    for s in [&a, &raw, &c] {
        spanpipe_core::wire::put_bytes_field(&mut ss, 2, s);
    }
    let mut rs = Vec::new();
    spanpipe_core::wire::put_bytes_field(&mut rs, 2, &ss);
    let mut out = Vec::new();
    spanpipe_core::wire::put_bytes_field(&mut out, 1, &rs);
    out
}

async fn grpc(addr: std::net::SocketAddr, body: Vec<u8>) -> Result<bytes::Bytes, tonic::Status> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel).max_encoding_message_size(64 << 20);
    client.ready().await.unwrap();
    let path =
        PathAndQuery::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
    client
        .unary(
            tonic::Request::new(bytes::Bytes::from(body)),
            path,
            RawCodec,
        )
        .await
        .map(|r| r.into_inner())
}

async fn http(addr: std::net::SocketAddr, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    crate::exporter::tls::ensure_crypto_provider();
    reqwest::Client::new()
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn reject_is_400_and_invalid_argument_then_serving() {
    let rec = Recorder::new(Mode::Accept);
    let rx = start(&rec, OnInvalidSpan::Reject).await;
    let (g, h) = (rx.grpc_addr().unwrap(), rx.http_addr().unwrap());
    for (poison, depth, want) in [
        ("utf8", 0, "UTF-8"),
        ("deep", 60, "deeper than 32"),
        ("deep", 12_000, "deeper than 32"),
    ] {
        let resp = http(h, "application/x-protobuf", request(poison, depth)).await;
        assert_eq!(resp.status(), 400, "{poison} {depth}");
        let st = RpcStatus::decode(&resp.bytes().await.unwrap()[..]).unwrap();
        assert_eq!(st.code, 3);
        assert!(st.message.contains(want), "{st:?}");
        let st = grpc(g, request(poison, depth)).await.unwrap_err();
        assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
        assert!(st.message().contains(want), "{st:?}");
    }
    assert!(
        rec.batches().is_empty(),
        "nothing of a refused request goes on"
    );
    // 32 deep is fine; the receiver still serves on both transports.
    let ok = request("deep", 32);
    assert_eq!(
        http(h, "application/x-protobuf", ok.clone()).await.status(),
        200
    );
    assert!(grpc(g, ok).await.unwrap().is_empty());
    assert_eq!(rec.batches().iter().map(|b| b.items).sum::<usize>(), 6);
    rx.shutdown().await;
}

#[tokio::test]
async fn drop_keeps_the_valid_spans_and_answers_partial_success() {
    let rec = Recorder::new(Mode::Accept);
    let rx = start(&rec, OnInvalidSpan::Drop).await;
    let (g, h) = (rx.grpc_addr().unwrap(), rx.http_addr().unwrap());
    let resp = http(h, "application/x-protobuf", request("utf8", 0)).await;
    assert_eq!(resp.status(), 200);
    let answer = ExportTraceServiceResponse::decode(&resp.bytes().await.unwrap()[..]).unwrap();
    let ps = answer.partial_success.unwrap();
    assert_eq!(ps.rejected_spans, 1);
    assert!(ps.error_message.contains("1 of 3 spans invalid"), "{ps:?}");
    let answer = grpc(g, request("deep", 12_000)).await.unwrap();
    let ps = ExportTraceServiceResponse::decode(&answer[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(ps.rejected_spans, 1);
    assert!(ps.error_message.contains("deeper than 32"), "{ps:?}");
    let batches = rec.batches();
    assert_eq!(batches.iter().map(|b| b.items).collect::<Vec<_>>(), [2, 2]);
    for b in &batches {
        let req =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                &b.payload.to_vec()[..],
            )
            .expect("what passed the door decodes");
        let names: Vec<_> = req.resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(names, ["span 0", "span 2"]);
    }
    // JSON: a 40-deep value (JSON cannot carry invalid UTF-8) answers a JSON partial success.
    let mut deep = serde_json::json!({"stringValue": "x"});
    for _ in 1..36 {
        deep = serde_json::json!({"arrayValue": {"values": [deep]}});
    }
    let doc = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "ok"},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b175", "name": "deep",
         "attributes": [{"key": "d", "value": deep}]}
    ]}]}]});
    let resp = http(h, "application/json", doc.to_string().into_bytes()).await;
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1", "{v}");
    assert_eq!(rec.batches().len(), 3);
    rx.shutdown().await;
}
