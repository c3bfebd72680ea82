//! The process-wide crypto provider and the small administrative servers (health probes, metrics scrapes).

use std::sync::{Arc, Once};
use std::time::Duration;

use crate::server::{self, ConnLimits, Server};
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

static PROVIDER: Once = Once::new();

/// Installs rustls' ring provider as the process default, once. reqwest is built with `rustls-no-provider` (ring
/// builds much faster than aws-lc-rs) and so needs a default provider before any client is built; another
/// component having installed one first is fine.
pub fn ensure_crypto_provider() {
    PROVIDER.call_once(|| {
        // Err means a provider is already installed, which is all we need.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The limits of a small administrative endpoint (health probes, metrics scrapes): a handful of clients, short
/// requests. A client that connects and sends nothing is cut after 10 s, an idle one after 60 s, and at most 64
/// connections are open at once, so a flood of connections or a slowloris cannot exhaust file descriptors.
pub fn admin_limits() -> ConnLimits {
    ConnLimits {
        max_connections: 64,
        handshake_timeout: Some(Duration::from_secs(10)),
        first_request_timeout: Some(Duration::from_secs(10)),
        idle_timeout: Some(Duration::from_secs(60)),
        ..ConnLimits::default()
    }
}

/// Serves `service` on `listener` with [`admin_limits`] until `stop`; then requests in flight get `grace`.
/// `name` names the server in logs (`health_check`, `prometheus`, `internal metrics`).
pub async fn serve_admin<S, B>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    stop: CancellationToken,
    grace: Duration,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let server = Arc::new(Server {
        name,
        builder: auto::Builder::new(TokioExecutor::new()),
        service,
        tls: None,
        limits: admin_limits(),
    });
    server::serve(listener, server, stop, grace).await;
}
