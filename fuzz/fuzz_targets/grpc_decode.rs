//! The OTLP/gRPC receiver's body path: tonic's server-side unframing and gzip/zstd decompression with the
//! receiver's raw-bytes codec and size limit, then the validation the receiver runs on the message
//! (`count_items` for the service's signal). The input is the HTTP/2 request body (5-byte frames); the first byte
//! picks the signal and `grpc-encoding`. Never a panic; the answer is OK or a non-internal error code.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use spanpipe_core::Signal;
use spanpipe_core::wire::count_items;
use spanpipe_otlp::grpc_codec::RawCodec;
use tonic::codec::CompressionEncoding;
use tonic::codegen::BoxFuture;
use tonic::server::{Grpc, UnaryService};

/// The receiver's default `max_recv_msg_size_mib: 4`.
const MAX_RECV: usize = 4 << 20;

struct Export(Signal);

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let signal = self.0;
        Box::pin(async move {
            count_items(signal, request.get_ref())
                .map(|_| tonic::Response::new(Bytes::new()))
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))
        })
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let signal = match sel % 3 {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        _ => Signal::Logs,
    };
    let mut req = http::Request::builder()
        .method("POST")
        .uri("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        .header("content-type", "application/grpc");
    match (sel >> 2) % 4 {
        1 => req = req.header("grpc-encoding", "gzip"),
        2 => req = req.header("grpc-encoding", "zstd"),
        3 => req = req.header("grpc-encoding", "br"),
        _ => {}
    }
    let req = req
        .body(tonic::body::Body::new(Full::new(Bytes::copy_from_slice(
            body,
        ))))
        .expect("request");
    let response = runtime().block_on(async {
        let mut grpc = Grpc::new(RawCodec)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(MAX_RECV);
        grpc.unary(Export(signal), req).await
    });
    // A trailers-only error answer carries grpc-status in the headers. INTERNAL is what the gRPC spec (and
    // grpc-go, so the Go collector) answers to a broken frame — truncated, a compressed flag without
    // grpc-encoding, undecompressable data, no message at all — and only tonic's framing layer may produce it; anything that reached
    // the receiver's own validation must be OK, INVALID_ARGUMENT or RESOURCE_EXHAUSTED (size).
    if let Some(status) = tonic::Status::from_header_map(response.headers()) {
        let framing = [
            "Unexpected EOF",
            "protocol error",
            "Error decompressing",
            "Missing request message",
        ]
        .iter()
        .any(|m| status.message().starts_with(m));
        match status.code() {
            tonic::Code::Ok | tonic::Code::InvalidArgument | tonic::Code::ResourceExhausted => {}
            tonic::Code::Internal if framing => {}
            // tonic answers OUT_OF_RANGE for a frame over the size limit (the receiver maps it to
            // RESOURCE_EXHAUSTED) and UNIMPLEMENTED for an unsupported grpc-encoding.
            tonic::Code::OutOfRange | tonic::Code::Unimplemented => {}
            _ => panic!("unexpected answer {status:?}"),
        }
    }
});
