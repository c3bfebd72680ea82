//! The sink's OTLP/gRPC trace service, with the raw-bytes codec: tonic unframes (and decompresses) and hands over
//! the encoded request, which the counter scans without decoding.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use super::counter::Counter;
use spanpipe_otlp::grpc_codec::RawCodec;

const PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// `opentelemetry.proto.collector.trace.v1.TraceService`, `Export` only.
#[derive(Clone)]
struct TraceService {
    counter: Arc<Counter>,
    max_request: usize,
}

impl NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl Service<http::Request<tonic::body::Body>> for TraceService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let export = Export(self.counter.clone());
        let max = self.max_request;
        Box::pin(async move {
            if req.uri().path() != PATH {
                return Ok(tonic::Status::unimplemented("unknown method").into_http());
            }
            let mut grpc = Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(max);
            Ok(grpc.unary(export, req).await)
        })
    }
}

struct Export(Arc<Counter>);

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let counter = self.0.clone();
        Box::pin(async move {
            match counter.ingest(request.get_ref()) {
                // An empty ExportTraceServiceResponse encodes to zero bytes.
                Ok(()) => Ok(tonic::Response::new(Bytes::new())),
                Err(e) => Err(tonic::Status::invalid_argument(e)),
            }
        })
    }
}

/// Serves until `stop`.
pub async fn serve(
    listener: TcpListener,
    counter: Arc<Counter>,
    max_request: usize,
    stop: CancellationToken,
) {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    // Large flow-control windows: batches are megabytes and the 64 KiB default throttles them even on loopback.
    let served = Server::builder()
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .add_service(TraceService {
            counter,
            max_request,
        })
        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
        .await;
    if let Err(e) = served {
        eprintln!("spanpipe-loadgen sink: gRPC server failed: {e}");
    }
}
