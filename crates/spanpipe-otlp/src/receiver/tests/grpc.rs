//! OTLP/gRPC with a raw-bytes tonic client.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::{Mode, Recorder, bad_id_bytes, start, traces, traces_bytes};
use crate::grpc_codec::RawCodec;
use spanpipe_core::Receiver;

const TRACES: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const METRICS: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

async fn call(
    addr: SocketAddr,
    path: &'static str,
    body: Vec<u8>,
    gzip: bool,
) -> Result<Bytes, Status> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    if gzip {
        client = client.send_compressed(CompressionEncoding::Gzip);
    }
    client.ready().await.unwrap();
    let mut req = tonic::Request::new(Bytes::from(body));
    req.metadata_mut()
        .insert("x-tenant", "acme".parse().unwrap());
    let path = PathAndQuery::from_static(path);
    client
        .unary(req, path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn export_with_gzip_passes_bytes_and_metadata() {
    let rec = Recorder::new(Mode::Accept);
    let rx = start(&rec, true).await;
    let addr = rx.grpc_addr().unwrap();
    let body = traces_bytes(4);
    let answer = call(addr, TRACES, body.clone(), true).await.unwrap();
    assert!(answer.is_empty(), "empty ExportTraceServiceResponse");
    let answer = call(addr, TRACES, body.clone(), false).await.unwrap();
    assert!(answer.is_empty());
    let batches = rec.batches();
    assert_eq!(batches.len(), 2);
    assert_eq!(
        (batches[0].items, &batches[0].payload.to_vec()[..]),
        (4, &body[..])
    );
    assert_eq!(batches[0].metadata.get("x-tenant"), Some("acme"));
    // Empty requests are fine and consume nothing.
    call(addr, TRACES, Vec::new(), false).await.unwrap();
    assert_eq!(rec.batches().len(), 2);
    rx.shutdown().await;
}

#[tokio::test]
async fn invalid_unimplemented_and_too_large() {
    let rec = Recorder::new(Mode::Accept);
    let rx = start(&rec, false).await;
    let addr = rx.grpc_addr().unwrap();
    let st = call(addr, TRACES, b"\xff\xff garbage".to_vec(), false)
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    let st = call(addr, TRACES, bad_id_bytes(), true).await.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("trace_id is 15 bytes"), "{st:?}");
    let st = call(addr, METRICS, Vec::new(), false).await.unwrap_err();
    assert_eq!(st.code(), Code::Unimplemented);
    // max_recv_msg_size_mib is 1 in these tests. Over the limit is RESOURCE_EXHAUSTED (not retryable), whether
    // the message is compressed or not (tonic's OUT_OF_RANGE is rewritten: clients would retry it forever).
    let big = traces(1, 1 << 20).encode_to_vec();
    let st = call(addr, TRACES, big.clone(), false).await.unwrap_err();
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    let st = call(addr, TRACES, big, true).await.unwrap_err();
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    assert!(rec.batches().is_empty());
    rx.shutdown().await;
}

#[tokio::test]
async fn refusal_is_unavailable_with_retry_info_and_rejection_invalid() {
    let rec = Recorder::new(Mode::Refuse(Duration::from_secs(3)));
    let rx = start(&rec, false).await;
    let st = call(rx.grpc_addr().unwrap(), TRACES, traces_bytes(1), false)
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::Unavailable);
    assert_eq!(
        st.get_details_retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(3))
    );
    rx.shutdown().await;

    let rec = Recorder::new(Mode::Reject);
    let rx = start(&rec, false).await;
    let st = call(rx.grpc_addr().unwrap(), TRACES, traces_bytes(1), false)
        .await
        .unwrap_err();
    assert_eq!(
        (st.code(), st.message()),
        (Code::InvalidArgument, "not wanted")
    );
    rx.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_calls_finish() {
    let rec = Recorder::new(Mode::Slow(Duration::from_millis(400)));
    let rx = start(&rec, false).await;
    let addr = rx.grpc_addr().unwrap();
    let in_flight = tokio::spawn(async move { call(addr, TRACES, traces_bytes(2), false).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    rx.shutdown().await;
    assert!(in_flight.await.unwrap().is_ok());
    assert_eq!(rec.batches().len(), 1);
}

/// The server's first SETTINGS frame, read off a raw HTTP/2 connection: (identifier, value) pairs.
async fn server_settings(addr: SocketAddr) -> Vec<(u16, u32)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Client preface, then an empty SETTINGS frame (length 0, type 4, no flags, stream 0).
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    // Frames until the server's own SETTINGS (not an ACK); a few at most.
    for _ in 0..8 {
        let mut head = [0u8; 9];
        s.read_exact(&mut head).await.unwrap();
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.unwrap();
        if head[3] == 4 && head[4] & 1 == 0 {
            return payload
                .chunks_exact(6)
                .map(|e| {
                    (
                        u16::from_be_bytes([e[0], e[1]]),
                        u32::from_be_bytes([e[2], e[3], e[4], e[5]]),
                    )
                })
                .collect();
        }
    }
    panic!("no SETTINGS frame from the server");
}

#[tokio::test]
async fn advertises_64_kib_frames_and_takes_a_request_larger_than_one() {
    const SETTINGS_MAX_FRAME_SIZE: u16 = 5;
    let rec = Recorder::new(Mode::Accept);
    let rx = start(&rec, false).await;
    let addr = rx.grpc_addr().unwrap();
    let settings = tokio::time::timeout(Duration::from_secs(10), server_settings(addr))
        .await
        .expect("SETTINGS within 10 s");
    assert!(
        settings.contains(&(SETTINGS_MAX_FRAME_SIZE, 64 * 1024)),
        "{settings:?}"
    );
    assert_eq!(super::super::grpc::RECEIVE_MAX_FRAME_SIZE, 64 * 1024);
    // A request of several frames at that size arrives whole.
    let body = traces_bytes(4000);
    assert!(body.len() > 3 * 64 * 1024, "{} bytes", body.len());
    call(addr, TRACES, body.clone(), false).await.unwrap();
    let got = rec.batches();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].items, &got[0].payload.to_vec()[..]),
        (4000, &body[..])
    );
    rx.shutdown().await;
}
