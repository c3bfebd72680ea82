//! The sink's OTLP/gRPC trace service, with the raw-bytes codec: tonic unframes (and decompresses) and hands over
//! the encoded request, which the counter scans without decoding. Served over hyper's HTTP/2 directly (not
//! tonic's server) so the fault script can close the port and reset connections; scripted error answers carry
//! the mapped gRPC code and, when asked, a `RetryInfo`.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::{Grpc, UnaryService};
use tonic_types::{ErrorDetails, StatusExt};

use super::counter::Counter;
use super::faults::{Action, Faults, RetryAfter};
use super::listen::{self, ConnKill};
use spanpipe_otlp::grpc_codec::RawCodec;

const PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// `opentelemetry.proto.collector.trace.v1.TraceService`, `Export` only; one per connection.
#[derive(Clone)]
struct TraceService {
    counter: Arc<Counter>,
    faults: Arc<Faults>,
    kill: ConnKill,
    max_request: usize,
}

impl Service<http::Request<Incoming>> for TraceService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Incoming>) -> Self::Future {
        let export = Export(self.clone());
        let max = self.max_request;
        Box::pin(async move {
            if req.uri().path() != PATH {
                return Ok(tonic::Status::unimplemented("unknown method").into_http());
            }
            let mut grpc = Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(max);
            Ok(grpc.unary(export, req.map(tonic::body::Body::new)).await)
        })
    }
}

struct Export(TraceService);

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move {
            let latency = svc.faults.latency();
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            match svc.faults.on_request() {
                Action::Ok => {}
                Action::Reset => {
                    svc.kill.cancel();
                    // The connection task drops this handler with the connection.
                    std::future::pending::<()>().await;
                }
                Action::Status {
                    grpc, retry_after, ..
                } => return Err(fault_status(grpc, retry_after)),
            }
            match svc.counter.ingest(request.get_ref()) {
                // An empty ExportTraceServiceResponse encodes to zero bytes.
                Ok(()) => Ok(tonic::Response::new(Bytes::new())),
                Err(e) => Err(tonic::Status::invalid_argument(e)),
            }
        })
    }
}

/// A scripted error status, with `RetryInfo` when a retry delay was asked for.
fn fault_status(code: i32, retry_after: Option<RetryAfter>) -> tonic::Status {
    let code = tonic::Code::from_i32(code);
    match retry_after {
        None => tonic::Status::new(code, "scripted fault"),
        Some(RetryAfter::Secs(n) | RetryAfter::Date(n)) => tonic::Status::with_error_details(
            code,
            "scripted fault",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(n))),
        ),
    }
}

/// Serves until `stop` (closing the port while the fault script says "down").
pub async fn serve(
    listener: TcpListener,
    counter: Arc<Counter>,
    faults: Arc<Faults>,
    max_request: usize,
    stop: CancellationToken,
) {
    let f = faults.clone();
    listen::serve(listener, faults, stop, move |stream, kill| {
        let svc = TraceService {
            counter: counter.clone(),
            faults: f.clone(),
            kill,
            max_request,
        };
        async move {
            let mut builder = auto::Builder::new(TokioExecutor::new()).http2_only();
            // Large flow-control windows: batches are megabytes and the 64 KiB default throttles them even on
            // loopback.
            builder
                .http2()
                .initial_stream_window_size(8 << 20)
                .initial_connection_window_size(16 << 20);
            let hyper_svc = hyper::service::service_fn(move |req| svc.clone().call(req));
            let _ = builder
                .serve_connection(TokioIo::new(stream), hyper_svc)
                .await;
        }
    })
    .await;
}
