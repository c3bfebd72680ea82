//! A counting OTLP/gRPC trace sink for in-process pipeline benchmarks: the real protocol (HTTP/2, gRPC framing,
//! `TraceService/Export`) over loopback, answering OK and adding up the bytes of each encoded request without
//! decoding it, so its own cost stays small next to the pipeline's. A batch is its parts joined, so the sink has
//! everything once its byte count equals what was sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use spanpipe_otlp::grpc_codec::RawCodec;
use tokio::net::TcpListener;
use tonic::codegen::BoxFuture;
use tonic::server::{Grpc, UnaryService};

const PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Bytes of encoded requests received so far.
#[derive(Clone, Default)]
pub struct SinkCount(Arc<AtomicU64>);

impl SinkCount {
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct Export(SinkCount);

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let count = self.0.clone();
        Box::pin(async move {
            count
                .0
                .fetch_add(request.get_ref().len() as u64, Ordering::AcqRel);
            // An empty ExportTraceServiceResponse encodes to zero bytes.
            Ok(tonic::Response::new(Bytes::new()))
        })
    }
}

/// Listens on 127.0.0.1 (a free port) and serves until the runtime stops; returns the port and the count.
pub async fn start() -> std::io::Result<(u16, SinkCount)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let count = SinkCount::default();
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                let mut builder = auto::Builder::new(TokioExecutor::new()).http2_only();
                builder
                    .http2()
                    .initial_stream_window_size(8 << 20)
                    .initial_connection_window_size(16 << 20);
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let export = Export(c.clone());
                        async move {
                            if req.uri().path() != PATH {
                                return Ok::<_, std::convert::Infallible>(
                                    tonic::Status::unimplemented("unknown method").into_http(),
                                );
                            }
                            let mut grpc = Grpc::new(RawCodec).max_decoding_message_size(256 << 20);
                            Ok(grpc.unary(export, req.map(tonic::body::Body::new)).await)
                        }
                    });
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok((port, count))
}
