//! The `otlp` receiver: OTLP over gRPC and HTTP (protobuf or JSON), for traces, metrics and logs.
//!
//! Requests stay encoded: a protobuf body is validated and counted by scanning it ([`spanpipe_core::wire`]) and
//! handed to the pipeline as the very `Bytes` it arrived in; only JSON bodies are decoded (and re-encoded).
//! Building has no side effects, so `validate` can build every component: ports are bound in `start`.

mod auth;
mod buffer_pool;
pub mod config;
pub mod cors;
mod grpc;
mod grpc_raw;
mod http;
mod ingest;
mod status;
pub use spanpipe_net::tls;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use spanpipe_core::{
    BuildContext, ComponentError, ConfigError, Node, Receiver, ReceiverFactory, ServerAuth, Signal,
    SignalConsumers,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::OtlpReceiverConfig;
/// The HTTP body path (decompress, validate or convert JSON), public for the fuzz targets in `fuzz/`.
pub use http::{Format as HttpFormat, decode as decode_http_body};
pub use ingest::{Admitted, Door, Ingest, Partial};
use spanpipe_core::listen::Endpoint;

/// How long `shutdown` lets in-flight requests finish before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Builds `otlp` receivers.
pub struct OtlpReceiverFactory;

impl ReceiverFactory for OtlpReceiverFactory {
    fn type_name(&self) -> &'static str {
        "otlp"
    }

    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces, Signal::Metrics, Signal::Logs]
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<Arc<dyn Receiver>, ConfigError> {
        let cfg: OtlpReceiverConfig = ctx.config(node)?;
        config::validate(&cfg, ctx, node)?;
        let p = &cfg.protocols;
        let grpc_auth = auth::resolve(
            p.grpc.as_ref().and_then(|g| g.auth.as_ref()),
            "grpc",
            ctx,
            node,
        )?;
        let http_auth = auth::resolve(
            p.http.as_ref().and_then(|h| h.auth.as_ref()),
            "http",
            ctx,
            node,
        )?;
        Ok(Arc::new(
            OtlpReceiver::new(ctx.id.to_string(), cfg).with_auth(grpc_auth, http_auth),
        ))
    }
}

/// A configured OTLP receiver; serves between `start` and `shutdown`.
pub struct OtlpReceiver {
    id: String,
    config: OtlpReceiverConfig,
    grpc_auth: Option<Arc<dyn ServerAuth>>,
    http_auth: Option<Arc<dyn ServerAuth>>,
    running: Mutex<Option<Running>>,
}

struct Running {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    grpc_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
}

impl OtlpReceiver {
    /// A receiver named `id` (used in errors, logs and the `receiver` metric label).
    pub fn new(id: impl Into<String>, config: OtlpReceiverConfig) -> Self {
        OtlpReceiver {
            id: id.into(),
            config,
            grpc_auth: None,
            http_auth: None,
            running: Mutex::new(None),
        }
    }

    /// Checks every gRPC call / HTTP request with these authenticators (from `protocols.*.auth`).
    pub fn with_auth(
        mut self,
        grpc: Option<Arc<dyn ServerAuth>>,
        http: Option<Arc<dyn ServerAuth>>,
    ) -> Self {
        self.grpc_auth = grpc;
        self.http_auth = http;
        self
    }

    /// Loads a protocol's certificate (before binding, so a bad file fails `start` with nothing served).
    fn tls(
        &self,
        settings: Option<&config::TlsServerSettings>,
        alpn: &[&'static [u8]],
    ) -> Result<Option<Arc<tls::TlsServer>>, ComponentError> {
        settings
            .map(|s| tls::TlsServer::load(s, alpn).map(Arc::new))
            .transpose()
            .map_err(|e| ComponentError::new(&self.id, format!("tls: {e}")))
    }

    /// The address the gRPC server listens on while running (the real port when configured with port 0).
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.lock().as_ref().and_then(|r| r.grpc_addr)
    }

    /// The address the HTTP server listens on while running.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.lock().as_ref().and_then(|r| r.http_addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds `endpoint`, configured at `option` (`protocols.grpc.endpoint`).
    async fn bind(&self, endpoint: &str, option: &str) -> Result<TcpListener, ComponentError> {
        let id = format!("receivers.{}", self.id);
        let at = Endpoint::parse(endpoint).map_err(|m| ComponentError::new(&id, m))?;
        at.bind()
            .await
            .map_err(|e| ComponentError::new(&id, spanpipe_core::listen_error(option, &at, &e)))
    }
}

#[async_trait]
impl Receiver for OtlpReceiver {
    /// Binds every enabled protocol first (so a taken port fails `start` with nothing served), then serves.
    async fn start(&self, consumers: SignalConsumers) -> Result<(), ComponentError> {
        if self.lock().is_some() {
            return Err(ComponentError::new(&self.id, "already started"));
        }
        let protocols = &self.config.protocols;
        let grpc_tls = self.tls(
            protocols.grpc.as_ref().and_then(|g| g.tls.as_ref()),
            &[b"h2"],
        )?;
        let http_tls = self.tls(
            protocols.http.as_ref().and_then(|h| h.tls.as_ref()),
            &[b"h2", b"http/1.1"],
        )?;
        let grpc_listener = match &protocols.grpc {
            Some(g) => Some(self.bind(&g.endpoint, "protocols.grpc.endpoint").await?),
            None => None,
        };
        let http_listener = match &protocols.http {
            Some(h) => Some(self.bind(&h.endpoint, "protocols.http.endpoint").await?),
            None => None,
        };
        let stop = CancellationToken::new();
        let mut running = Running {
            stop: stop.clone(),
            tasks: Vec::new(),
            grpc_addr: None,
            http_addr: None,
        };
        if let (Some(listener), Some(g)) = (grpc_listener, &protocols.grpc) {
            running.grpc_addr = listener.local_addr().ok();
            let state = Arc::new(grpc::GrpcState {
                ingest: Ingest::new(consumers.clone(), &self.id, "grpc", Door::new(&self.config)),
                include_metadata: g.include_metadata,
                max_recv: usize::try_from(g.max_recv_msg_size_mib << 20).unwrap_or(usize::MAX),
                auth: self
                    .grpc_auth
                    .clone()
                    .map(|a| auth::ReceiverAuth::new(a, &self.id, "grpc")),
                server: grpc::GrpcServerSettings::new(g),
            });
            tracing::info!(receiver = %self.id, endpoint = ?running.grpc_addr, tls = grpc_tls.is_some(), auth = self.grpc_auth.is_some(), "OTLP/gRPC listening");
            running.tasks.push(tokio::spawn(grpc::serve(
                listener,
                state,
                grpc_tls,
                stop.clone(),
                SHUTDOWN_GRACE,
            )));
        }
        if let (Some(listener), Some(h)) = (http_listener, &protocols.http) {
            running.http_addr = listener.local_addr().ok();
            let state = http::HttpState::new(
                h,
                Ingest::new(consumers, &self.id, "http", Door::new(&self.config)),
                self.http_auth
                    .clone()
                    .map(|a| auth::ReceiverAuth::new(a, &self.id, "http")),
            );
            tracing::info!(receiver = %self.id, endpoint = ?running.http_addr, tls = http_tls.is_some(), auth = self.http_auth.is_some(), "OTLP/HTTP listening");
            running.tasks.push(tokio::spawn(http::serve(
                listener,
                state,
                http_tls,
                stop,
                SHUTDOWN_GRACE,
            )));
        }
        *self.lock() = Some(running);
        Ok(())
    }

    /// Stops accepting, waits (at most `SHUTDOWN_GRACE`, 10 s) for in-flight requests, then closes what is left.
    async fn shutdown(&self) {
        let Some(running) = self.lock().take() else {
            return;
        };
        running.stop.cancel();
        for task in running.tasks {
            // The servers bound their own drain; this is only a backstop.
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
