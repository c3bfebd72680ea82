//! The uncompressed unary call read straight off the HTTP/2 body: the DATA frames are gathered and the message
//! is copied once into a buffer of its size, recycled through [`BufferPool`]. tonic's codec path grows a decode
//! buffer frame by frame (reallocating, on fresh pages the kernel zeroes), which profiling showed at ~6.5% of the
//! collector's CPU flat out. Compressed requests (`grpc-encoding` other than `identity`) keep tonic's path:
//! decompression copies anyway.
//!
//! Errors are the ones tonic gives for the same request, except an over-limit message, which is
//! RESOURCE_EXHAUSTED as the Go collector answers (see [`super::grpc`]).

use std::convert::Infallible;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_TYPE, HeaderValue};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tonic::Status;

use super::buffer_pool::BufferPool;
use crate::grpc_codec::message_prefix;

/// Whether the request's messages are uncompressed, so [`read_message`] can take it.
pub fn is_identity(headers: &HeaderMap) -> bool {
    headers
        .get("grpc-encoding")
        .is_none_or(|v| v.as_bytes() == b"identity")
}

/// Reads the one length-prefixed message of a unary call (at most `max` bytes), copying it once.
pub async fn read_message<B>(mut body: B, max: usize) -> Result<Bytes, Status>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut have = 0usize;
    // 5 + the message length, once the prefix has arrived.
    let mut need: Option<usize> = None;
    while need.is_none_or(|n| have < n) {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(|e| Status::internal(format!("request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: nothing a unary request needs
        };
        if data.is_empty() {
            continue;
        }
        have += data.len();
        chunks.push(data);
        if need.is_none() && have >= 5 {
            let prefix = prefix(&chunks);
            match prefix[0] {
                0 => {}
                1 => {
                    return Err(Status::internal(
                        "protocol error: received message with compressed-flag but no grpc-encoding was specified",
                    ));
                }
                f => return Err(Status::internal(format!("invalid compression flag: {f}"))),
            }
            let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
            if len > max {
                return Err(Status::resource_exhausted(format!(
                    "request message is {len} bytes, more than the {max} allowed (max_recv_msg_size_mib)"
                )));
            }
            need = Some(5 + len);
        }
    }
    let Some(need) = need else {
        return if have == 0 {
            Err(Status::internal("Missing request message."))
        } else {
            Err(Status::internal("truncated gRPC message prefix"))
        };
    };
    if have < need {
        return Err(Status::internal(format!(
            "request body ended after {have} of {need} bytes"
        )));
    }
    if have > need {
        return Err(Status::internal("more than one message in a unary request"));
    }
    let mut skip = 5usize;
    let parts = chunks.iter().map(|c| {
        let from = skip.min(c.len());
        skip -= from;
        &c[from..]
    });
    Ok(BufferPool::global().copy(need - 5, parts))
}

/// The first five bytes of the gathered chunks (the caller made sure there are five).
fn prefix(chunks: &[Bytes]) -> [u8; 5] {
    let mut out = [0u8; 5];
    for (o, b) in out.iter_mut().zip(chunks.iter().flat_map(|c| c.iter())) {
        *o = *b;
    }
    out
}

/// A successful unary response: the message in one DATA frame (prefix and bytes; the answer is empty or a short
/// partial success, and an empty DATA frame per request would trip clients' HTTP/2 flood protection), then
/// `grpc-status: 0` trailers.
pub fn ok_response(message: Bytes) -> http::Response<tonic::body::Body> {
    let Some(prefix) = message_prefix(message.len()) else {
        return Status::internal("response message larger than 4 GiB").into_http();
    };
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = [
        Frame::data(Bytes::from([&prefix[..], &message[..]].concat())),
        Frame::trailers(trailers),
    ];
    let body = StreamBody::new(futures::stream::iter(frames.map(Ok::<_, Infallible>)));
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::StreamBody;
    use tonic::Code;

    use super::*;

    fn body(
        chunks: Vec<&'static [u8]>,
    ) -> impl hyper::body::Body<Data = Bytes, Error = Infallible> + Unpin {
        frames(chunks.into_iter().map(Bytes::from_static).collect())
    }

    fn frames(
        chunks: Vec<Bytes>,
    ) -> impl hyper::body::Body<Data = Bytes, Error = Infallible> + Unpin {
        StreamBody::new(futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, Infallible>(Frame::data(c))),
        ))
    }

    #[tokio::test]
    async fn a_message_split_anywhere_is_joined() {
        let got = read_message(body(vec![b"\x00\x00", b"\x00\x00\x05he", b"", b"llo"]), 10)
            .await
            .unwrap();
        assert_eq!(&got[..], b"hello");
        let got = read_message(body(vec![b"\x00\x00\x00\x00\x00"]), 10)
            .await
            .unwrap();
        assert!(got.is_empty());
    }

    #[tokio::test]
    async fn a_big_message_over_many_frames_is_joined() {
        let mut whole = vec![0u8, 0, 1, 0, 0];
        whole.extend((0..1usize << 16).map(|i| i as u8));
        let chunks: Vec<Bytes> = whole.chunks(16 << 10).map(Bytes::copy_from_slice).collect();
        let got = read_message(frames(chunks), 1 << 16).await.unwrap();
        assert_eq!(&got[..], &whole[5..]);
    }

    #[tokio::test]
    async fn bad_bodies_get_tonics_codes() {
        let code = |r: Result<Bytes, Status>| r.unwrap_err().code();
        assert_eq!(code(read_message(body(vec![]), 10).await), Code::Internal);
        assert_eq!(
            code(read_message(body(vec![b"\x00\x00"]), 10).await),
            Code::Internal
        );
        assert_eq!(
            code(read_message(body(vec![b"\x00\x00\x00\x00\x05hel"]), 10).await),
            Code::Internal
        );
        assert_eq!(
            code(read_message(body(vec![b"\x00\x00\x00\x00\x01ab"]), 10).await),
            Code::Internal
        );
        assert_eq!(
            code(read_message(body(vec![b"\x01\x00\x00\x00\x01a"]), 10).await),
            Code::Internal
        );
        // Over the limit is refused from the prefix alone, before the rest arrives.
        assert_eq!(
            code(read_message(body(vec![b"\x00\x00\x00\x00\x0b"]), 10).await),
            Code::ResourceExhausted
        );
    }

    #[tokio::test]
    async fn an_empty_answer_is_one_data_frame_then_trailers() {
        let mut body = ok_response(Bytes::new()).into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(
            first.into_data().unwrap(),
            Bytes::from_static(&[0, 0, 0, 0, 0])
        );
        let second = body.frame().await.unwrap().unwrap();
        assert_eq!(second.trailers_ref().unwrap()["grpc-status"], "0");
        assert!(body.frame().await.is_none());
    }

    #[test]
    fn identity_only_without_a_real_encoding() {
        let mut h = HeaderMap::new();
        assert!(is_identity(&h));
        h.insert("grpc-encoding", HeaderValue::from_static("identity"));
        assert!(is_identity(&h));
        h.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        assert!(!is_identity(&h));
    }
}
