//! OTLP/gRPC: the three collector `Export` methods. Each request arrives as the encoded bytes and goes down the
//! pipeline without a prost decode: uncompressed ones read off the HTTP/2 body ([`super::grpc_raw`]), compressed
//! ones through tonic with [`RawCodec`] (tonic only unframes and decompresses).
//!
//! This is what tonic-build would generate for the services, with `Bytes` in place of the message types.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use spanpipe_core::{Metadata, Signal};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::service::Routes;

use super::auth::{PeerAddr, ReceiverAuth};
use super::config::GrpcConfig;
use super::grpc_raw;
use super::ingest::{Ingest, metadata_from_headers};
use crate::grpc_codec::RawCodec;
use spanpipe_net::TlsServer;
use spanpipe_net::server::{self, ConnLimits, Server};

/// One OTLP collector service: its gRPC name, the path of its `Export` method and its signal.
pub trait ExportKind: Send + Sync + 'static {
    const NAME: &'static str;
    const PATH: &'static str;
    const SIGNAL: Signal;
}

/// `opentelemetry.proto.collector.trace.v1.TraceService`.
pub struct TraceKind;
/// `opentelemetry.proto.collector.metrics.v1.MetricsService`.
pub struct MetricsKind;
/// `opentelemetry.proto.collector.logs.v1.LogsService`.
pub struct LogsKind;

impl ExportKind for TraceKind {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const SIGNAL: Signal = Signal::Traces;
}

impl ExportKind for MetricsKind {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const SIGNAL: Signal = Signal::Metrics;
}

impl ExportKind for LogsKind {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const SIGNAL: Signal = Signal::Logs;
}

/// What every gRPC service instance shares.
pub struct GrpcState {
    pub ingest: Arc<Ingest>,
    pub include_metadata: bool,
    /// Largest request message after decompression, in bytes.
    pub max_recv: usize,
    pub auth: Option<Arc<ReceiverAuth>>,
    pub server: GrpcServerSettings,
}

/// Connection settings of the gRPC server, resolved from the config.
#[derive(Clone, Default)]
pub struct GrpcServerSettings {
    pub limits: ConnLimits,
    pub max_concurrent_streams: Option<u32>,
    pub keepalive_time: Option<Duration>,
    pub keepalive_timeout: Duration,
}

/// The largest HTTP/2 frame clients may send (`SETTINGS_MAX_FRAME_SIZE`; the protocol's default is 16 KiB). A
/// 500-span request is ~260 KiB: clients that honour the setting (tonic, gRPC C-core, Java) send it in 5 frames
/// rather than 17, so both ends make fewer socket calls and the request task is woken fewer times (flat out,
/// +7% spans per CPU-second). 256 KiB frames gained a little more but raised the `memory_budget` flood's peak RSS
/// by ~12 MiB (h2 reads each frame into a buffer of its size); at 64 KiB the peak is the same as at 16 KiB.
pub(crate) const RECEIVE_MAX_FRAME_SIZE: u32 = 64 * 1024;

/// How long a TLS handshake may take on the gRPC port (gRPC has no header-read timeout option; Go's gRPC server
/// bounds connection setup the same way).
const GRPC_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

impl GrpcServerSettings {
    pub fn new(cfg: &GrpcConfig) -> Self {
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        let sp = &cfg.keepalive.server_parameters;
        let idle = nonzero(sp.max_connection_idle.0);
        GrpcServerSettings {
            limits: ConnLimits {
                max_connections: cfg.max_connections,
                handshake_timeout: Some(GRPC_HANDSHAKE_TIMEOUT),
                first_request_timeout: idle,
                idle_timeout: idle,
                max_age: nonzero(sp.max_connection_age.0),
                max_age_grace: nonzero(sp.max_connection_age_grace.0),
            },
            max_concurrent_streams: (cfg.max_concurrent_streams > 0)
                .then_some(cfg.max_concurrent_streams),
            keepalive_time: nonzero(sp.time.0),
            keepalive_timeout: nonzero(sp.timeout.0).unwrap_or(Duration::from_secs(20)),
        }
    }
}

/// The tower service for one collector service (what tonic-build names `TraceServiceServer`).
pub struct ExportService<K> {
    state: Arc<GrpcState>,
    kind: PhantomData<fn() -> K>,
}

impl<K> ExportService<K> {
    /// One instance per service; all share `state`.
    pub fn new(state: Arc<GrpcState>) -> Self {
        ExportService {
            state,
            kind: PhantomData,
        }
    }
}

impl<K> Clone for ExportService<K> {
    fn clone(&self) -> Self {
        ExportService::new(self.state.clone())
    }
}

impl<K: ExportKind> NamedService for ExportService<K> {
    const NAME: &'static str = K::NAME;
}

impl<K: ExportKind> Service<http::Request<tonic::body::Body>> for ExportService<K> {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let state = self.state.clone();
        let started = std::time::Instant::now();
        Box::pin(async move {
            if let Some(auth) = &state.auth
                && let Err(e) = auth.check(req.headers(), req.extensions().get::<PeerAddr>())
            {
                return Ok(e.to_grpc_status().into_http());
            }
            if req.uri().path() != K::PATH {
                let status = tonic::Status::unimplemented("unknown method");
                return Ok(status.into_http());
            }
            if grpc_raw::is_identity(req.headers()) {
                let (parts, body) = req.into_parts();
                let answer = match grpc_raw::read_message(body, state.max_recv).await {
                    Ok(payload) => export(&state, K::SIGNAL, parts.headers, payload).await,
                    Err(status) => Err(status),
                };
                let response = answer.map_or_else(|s| s.into_http(), grpc_raw::ok_response);
                state.ingest.observe(started);
                return Ok(response);
            }
            let mut grpc = Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(state.max_recv);
            let ingest = state.ingest.clone();
            let method = Export {
                state,
                signal: K::SIGNAL,
            };
            let mut response = grpc.unary(method, req).await;
            too_large_is_resource_exhausted(&mut response);
            ingest.observe(started);
            Ok(response)
        })
    }
}

/// tonic answers OUT_OF_RANGE for a message over `max_recv_msg_size_mib`, which OTLP clients treat as retryable:
/// they would resend the same oversized request forever. The Go collector answers RESOURCE_EXHAUSTED (without
/// RetryInfo: not retryable), so do the same. Decode-limit errors are trailers-only responses: the status is in
/// the headers.
fn too_large_is_resource_exhausted(response: &mut http::Response<tonic::body::Body>) {
    let out_of_range = (tonic::Code::OutOfRange as i32).to_string();
    if response
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == out_of_range.as_bytes())
    {
        let code = (tonic::Code::ResourceExhausted as i32).to_string();
        if let Ok(v) = http::HeaderValue::from_str(&code) {
            response.headers_mut().insert("grpc-status", v);
        }
    }
}

/// The `Export` method of one service.
struct Export {
    state: Arc<GrpcState>,
    signal: Signal,
}

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let state = self.state.clone();
        let signal = self.signal;
        Box::pin(async move {
            let (meta, _, payload) = request.into_parts();
            export(&state, signal, meta.into_headers(), payload)
                .await
                .map(tonic::Response::new)
        })
    }
}

/// Hands one request to the pipeline; the answer is the encoded `Export*ServiceResponse` (empty unless the door
/// dropped invalid spans: a partial success).
async fn export(
    state: &GrpcState,
    signal: Signal,
    mut headers: http::HeaderMap,
    payload: Bytes,
) -> Result<Bytes, tonic::Status> {
    let metadata = if state.include_metadata {
        ReceiverAuth::strip(state.auth.as_ref(), &mut headers);
        metadata_from_headers(&headers)
    } else {
        Metadata::default()
    };
    match state.ingest.protobuf(signal, payload, metadata).await {
        Ok(partial) => Ok(Bytes::from(partial.encode())),
        Err(e) => Err(e.to_grpc_status()),
    }
}

/// Serves the three services on `listener` (TLS with `tls`) until `stop`, then lets in-flight calls finish for up
/// to `grace`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<GrpcState>,
    tls: Option<Arc<TlsServer>>,
    stop: CancellationToken,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http2_only();
    {
        let mut h2 = builder.http2();
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(state.server.max_concurrent_streams)
            .max_frame_size(RECEIVE_MAX_FRAME_SIZE);
        if let Some(interval) = state.server.keepalive_time {
            h2.keep_alive_interval(interval)
                .keep_alive_timeout(state.server.keepalive_timeout);
        }
    }
    let limits = state.server.limits.clone();
    let routes = Routes::new(ExportService::<TraceKind>::new(state.clone()))
        .add_service(ExportService::<MetricsKind>::new(state.clone()))
        .add_service(ExportService::<LogsKind>::new(state))
        .prepare();
    let server = Arc::new(Server {
        name: "OTLP/gRPC",
        builder,
        service: TowerToHyperService::new(routes),
        tls,
        limits,
    });
    server::serve(listener, server, stop, grace).await;
}
