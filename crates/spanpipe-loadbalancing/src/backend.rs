//! One backend: its `otlp` exporter behind its own sending queue, and the liveness that decides whether it is on
//! the ring.
//!
//! The exporter the queue drives ([`BackendExporter`]) first asks the balancer whether its backend is still a
//! member: a batch queued for a backend that was removed (by the resolver) or ejected (found dead) is routed again
//! over the current ring instead of being exported, so nothing queued is dropped by a membership change. A
//! retryable export failure triggers a TCP connect to the backend: refused or timed out means the process is
//! gone and the backend is ejected until a connect succeeds again; a backend that accepts connections but answers
//! errors (busy, 503) stays on the ring and its queue retries, as in the Collector.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use spanpipe_core::queue::SendingQueue;
use spanpipe_core::{Batch, ComponentError, ExportError, Exporter};
use spanpipe_otlp::exporter::otlp_grpc::OtlpGrpcExporter;

use crate::balancer::Balancer;

/// How long a liveness connect may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A backend with a running queue.
pub(crate) struct Backend {
    pub endpoint: String,
    pub queue: Arc<SendingQueue>,
    /// False while ejected (found dead); the balancer keeps it off the ring until a connect succeeds.
    pub healthy: AtomicBool,
    /// A liveness check is running (one at a time).
    pub checking: AtomicBool,
    /// The resolver no longer lists it; its queue drains by re-routing, then it is stopped.
    pub retiring: AtomicBool,
}

impl Backend {
    pub fn new(endpoint: String, queue: Arc<SendingQueue>) -> Self {
        Backend {
            endpoint,
            queue,
            healthy: AtomicBool::new(true),
            checking: AtomicBool::new(false),
            retiring: AtomicBool::new(false),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// Whether a TCP connection to `endpoint` opens within [`CONNECT_TIMEOUT`].
pub(crate) async fn accepts_connections(endpoint: &str) -> bool {
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(endpoint)).await,
        Ok(Ok(_))
    )
}

/// The exporter a backend's queue drives: the `otlp` exporter, or a re-route when the backend left the ring.
pub(crate) struct BackendExporter {
    pub endpoint: String,
    pub inner: OtlpGrpcExporter,
    pub balancer: Weak<Balancer>,
}

#[async_trait]
impl Exporter for BackendExporter {
    async fn start(&self) -> Result<(), ComponentError> {
        self.inner.start().await
    }

    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let Some(balancer) = self.balancer.upgrade() else {
            return self.inner.export(batch).await;
        };
        if !balancer.is_member(&self.endpoint) {
            return balancer.route(batch).await;
        }
        let err = match self.inner.export(batch).await {
            Ok(()) => return Ok(()),
            Err(e @ ExportError::Retryable { .. }) => e,
            Err(e) => return Err(e),
        };
        balancer.check_liveness(&self.endpoint).await;
        if balancer.is_member(&self.endpoint) {
            return Err(err);
        }
        // Ejected: this batch goes to the backend that now owns its keys; if none can take it yet, the queue
        // retries and the next attempt routes again.
        balancer.route(batch).await.map_err(|_| err)
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await
    }
}
