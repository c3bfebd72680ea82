//! Hand-made OTLP traffic for protocol-level tests: request builders (protobuf and OTLP/JSON), body
//! compression, a raw-bytes gRPC client (so malformed payloads can be sent), and `google.rpc.Status`.

use std::io::Write;
use std::time::Duration;

use bytes::{Buf, BufMut};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use prost::Message;
use serde_json::json;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

pub const TRACE_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
pub const CT_PROTOBUF: &str = "application/x-protobuf";
pub const CT_JSON: &str = "application/json";

/// A deterministic 16-byte trace id derived from `n` (never all-zero).
pub fn trace_id(n: u64) -> Vec<u8> {
    let mut id = Vec::with_capacity(16);
    id.extend_from_slice(&0x5ba9_0000_0000_0001u64.to_be_bytes());
    id.extend_from_slice(&n.to_be_bytes());
    id
}

/// A deterministic 8-byte span id derived from `n` (never all-zero).
pub fn span_id(n: u64) -> Vec<u8> {
    (n | 0x5000_0000_0000_0000).to_be_bytes().to_vec()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

/// An `ExportTraceServiceRequest` with one span per id in `span_ids`, all in trace `trace_id`. Ids are used
/// verbatim (so wrong lengths can be sent). `padding` bytes of attribute payload are added to the first span.
pub fn proto_request(
    trace_id: &[u8],
    span_ids: &[Vec<u8>],
    padding: usize,
) -> ExportTraceServiceRequest {
    let now = now_nanos();
    let spans = span_ids
        .iter()
        .enumerate()
        .map(|(i, sid)| {
            let mut attributes = vec![
                kv("gen_ai.operation.name", "chat"),
                kv("mlflow.spanType", "\"LLM\""),
            ];
            if i == 0 && padding > 0 {
                attributes.push(kv("padding", &"x".repeat(padding)));
            }
            Span {
                trace_id: trace_id.to_vec(),
                span_id: sid.clone(),
                name: format!("chat e2e {i}"),
                kind: span::SpanKind::Client as i32,
                start_time_unix_nano: now - 1_000_000,
                end_time_unix_nano: now,
                attributes,
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "spanpipe-e2e")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "spanpipe.e2e".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Protobuf-encoded [`proto_request`].
pub fn proto_body(trace_id: &[u8], span_ids: &[Vec<u8>]) -> Vec<u8> {
    proto_request(trace_id, span_ids, 0).encode_to_vec()
}

/// An OTLP/JSON request (camelCase keys, hex ids given verbatim, integer enums, int64 as strings).
pub fn json_request(trace_id_hex: &str, span_ids_hex: &[&str]) -> serde_json::Value {
    let now = now_nanos();
    let spans: Vec<serde_json::Value> = span_ids_hex
        .iter()
        .enumerate()
        .map(|(i, sid)| {
            json!({
                "traceId": trace_id_hex,
                "spanId": sid,
                "name": format!("chat e2e json {i}"),
                "kind": 3,
                "startTimeUnixNano": (now - 1_000_000).to_string(),
                "endTimeUnixNano": now.to_string(),
                "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "mlflow.spanType", "value": {"stringValue": "\"LLM\""}}
                ],
                "status": {}
            })
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "spanpipe-e2e"}}]},
            "scopeSpans": [{"scope": {"name": "spanpipe.e2e"}, "spans": spans}]
        }]
    })
}

/// The same request with snake_case keys (`resource_spans`, `trace_id`, ...), which OTLP/JSON receivers accept.
pub fn json_request_snake(trace_id_hex: &str, span_ids_hex: &[&str]) -> serde_json::Value {
    let now = now_nanos();
    let spans: Vec<serde_json::Value> = span_ids_hex
        .iter()
        .map(|sid| {
            json!({
                "trace_id": trace_id_hex,
                "span_id": sid,
                "name": "chat e2e snake",
                "kind": 1,
                "start_time_unix_nano": (now - 1_000_000).to_string(),
                "end_time_unix_nano": now.to_string()
            })
        })
        .collect();
    json!({"resource_spans": [{"scope_spans": [{"spans": spans}]}]})
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip finish")
}

/// HTTP `Content-Encoding: deflate` is the zlib format (RFC 1950).
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("zlib");
    enc.finish().expect("zlib finish")
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("zstd")
}

/// A valid gzip stream that inflates to `size` zero bytes.
pub fn gzip_bomb(size: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        enc.write_all(&chunk[..n]).expect("gzip");
        left -= n;
    }
    enc.finish().expect("gzip finish")
}

/// `google.rpc.Status` (enough of it to decode error bodies).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// A tonic codec that sends and receives raw message bytes (so malformed protobuf can be sent).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

#[derive(Clone, Copy, Debug, Default)]
pub struct RawEncoder;

#[derive(Clone, Copy, Debug, Default)]
pub struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0u8; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Opens a plaintext HTTP/2 channel to 127.0.0.1:`port` (bounded connect).
pub async fn grpc_channel(port: u16) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port}: {e}"))
}

/// Sends `body` as the raw request message of `path` (e.g. [`TRACE_EXPORT_PATH`]) on `channel`, optionally
/// compressed; returns the raw response message bytes or the gRPC status. Bounded by 30 s.
pub async fn grpc_unary_raw(
    channel: tonic::transport::Channel,
    path: &'static str,
    body: Vec<u8>,
    compression: Option<CompressionEncoding>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(usize::MAX);
    if let Some(enc) = compression {
        grpc = grpc.send_compressed(enc);
    }
    let call = async move {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unknown(format!("channel not ready: {e}")))?;
        let path = http::uri::PathAndQuery::from_static(path);
        grpc.unary(tonic::Request::new(body), path, RawCodec).await
    };
    match tokio::time::timeout(Duration::from_secs(30), call).await {
        Ok(res) => res.map(tonic::Response::into_inner),
        Err(_) => panic!("gRPC call {path} did not complete within 30 s"),
    }
}

/// `TraceService/Export` with raw bytes to 127.0.0.1:`port`.
pub async fn grpc_export_raw(
    port: u16,
    body: Vec<u8>,
    compression: Option<CompressionEncoding>,
) -> Result<Vec<u8>, tonic::Status> {
    grpc_unary_raw(
        grpc_channel(port).await,
        TRACE_EXPORT_PATH,
        body,
        compression,
    )
    .await
}

/// A reqwest client with bounded timeouts, no proxies (127.0.0.1 only).
pub fn http_client() -> reqwest::Client {
    // The workspace builds reqwest with `rustls-no-provider`; plain-HTTP clients still need a process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// POSTs `body` to `http://127.0.0.1:{port}{path}` with the given content type and optional content encoding.
pub async fn http_post(
    client: &reqwest::Client,
    port: u16,
    path: &str,
    content_type: &str,
    content_encoding: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = client
        .post(format!("http://127.0.0.1:{port}{path}"))
        .header(http::header::CONTENT_TYPE, content_type)
        .body(body);
    if let Some(enc) = content_encoding {
        req = req.header(http::header::CONTENT_ENCODING, enc);
    }
    req.send().await.unwrap_or_else(|e| {
        panic!("POST 127.0.0.1:{port}{path} ({content_type}, {content_encoding:?}): {e}")
    })
}
