//! One gRPC unary call whose request body is the batch's own `Bytes` parts behind a 5-byte frame header: no copy
//! into an encode buffer or into one contiguous batch. tonic's codec path copies every message into a fresh buffer (and the kernel zeroes it), which
//! profiling showed at ~22% of the collector's CPU with uncompressed export; compressed export copies anyway, so
//! only the uncompressed case comes here.

use bytes::{Buf, Bytes};
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http::uri::PathAndQuery;
use http_body_util::BodyExt;
use spanpipe_core::Payload;
use spanpipe_net::client::PartsBody;

use crate::grpc_codec::message_prefix;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower::ServiceExt;

/// Sends `payload` (its parts as consecutive DATA frames) as one uncompressed gRPC message and returns the response message (without its frame header).
pub async fn unary_raw(
    channel: &Channel,
    path: PathAndQuery,
    payload: &Payload,
    metadata: &MetadataMap,
    timeout: Option<std::time::Duration>,
) -> Result<Bytes, Status> {
    let prefix = message_prefix(payload.len())
        .ok_or_else(|| Status::new(Code::ResourceExhausted, "message larger than 4 GiB"))?;
    let mut frames = Vec::with_capacity(payload.parts().len() + 1);
    frames.push(Bytes::copy_from_slice(&prefix));
    frames.extend(payload.parts().iter().cloned());
    let body = PartsBody::new(frames);
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(http::Uri::from(path))
        .body(tonic::body::Body::new(body))
        .map_err(|e| Status::internal(format!("request: {e}")))?;
    let headers = request.headers_mut();
    headers.extend(metadata.clone().into_headers());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    if let Some(t) = timeout
        && let Ok(v) = HeaderValue::from_str(&format!("{}m", t.as_millis().max(1)))
    {
        headers.insert("grpc-timeout", v);
    }
    let response = channel
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| Status::unavailable(format!("transport: {e}")))?;
    let (parts, body) = response.into_parts();
    if let Some(status) = Status::from_header_map(&parts.headers) {
        // Trailers-only response.
        return if status.code() == Code::Ok {
            Ok(Bytes::new())
        } else {
            Err(status)
        };
    }
    if parts.status != http::StatusCode::OK {
        return Err(Status::new(
            http_to_grpc(parts.status),
            format!("HTTP status {}", parts.status),
        ));
    }
    let collected = body
        .collect()
        .await
        .map_err(|e| Status::new(Code::Unavailable, format!("response body: {e}")))?;
    let status = collected
        .trailers()
        .and_then(Status::from_header_map)
        .unwrap_or_else(|| Status::new(Code::Unknown, "response without grpc-status"));
    if status.code() != Code::Ok {
        return Err(status);
    }
    let mut data = collected.to_bytes();
    if data.len() >= 5 && data[0] == 0 {
        data.advance(5);
        Ok(data)
    } else {
        Ok(Bytes::new())
    }
}

/// The gRPC code for an HTTP status without grpc-status, as gRPC's HTTP mapping specifies.
fn http_to_grpc(status: http::StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}
