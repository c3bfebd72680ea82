//! The `health_check` extension: an HTTP endpoint for Kubernetes probes, as the OTel Collector's.
//!
//! `path` (default `/`) and `/readyz` answer 200 once every pipeline runs and 503 while the collector starts or
//! stops, or — with `check_collector_pipeline.enabled` — while an exporter has failed every send for at least
//! `interval` and more than `exporter_failure_threshold` times in a row. `/livez` answers 200 as long as the process
//! serves and 503 only while stopping, so a backend outage makes the pod unready, never restarted.
//!
//! Extensions start before every other component and stop after them, so the probe sees the whole start and drain.

pub mod config;
pub mod probe;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use spanpipe_core::{
    BuildContext, ComponentError, ConfigError, Extension, ExtensionFactory, Node, ServiceStatus,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::HealthCheckConfig;
use probe::{Probe, Verdict, evaluate, json_body};

/// Builds `health_check` extensions.
pub struct HealthCheckFactory;

impl ExtensionFactory for HealthCheckFactory {
    fn type_name(&self) -> &'static str {
        "health_check"
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<Arc<dyn Extension>, ConfigError> {
        let cfg: HealthCheckConfig = ctx.config(node)?;
        let addr = cfg
            .validate()
            .map_err(|(keys, m)| ctx.invalid(node, &keys, m))?;
        Ok(Arc::new(HealthCheck::new(
            ctx.id.to_string(),
            addr,
            cfg,
            ctx.status().clone(),
        )))
    }
}

/// A configured health check; serves between `start` and `shutdown`.
pub struct HealthCheck {
    id: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

/// What every request reads.
struct Shared {
    cfg: HealthCheckConfig,
    status: ServiceStatus,
    /// The last readiness answered (0 none yet, 1 ready, 2 not ready), to log changes once.
    last_ready: AtomicU8,
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
    addr: Option<SocketAddr>,
}

impl HealthCheck {
    pub fn new(
        id: String,
        addr: SocketAddr,
        cfg: HealthCheckConfig,
        status: ServiceStatus,
    ) -> Self {
        HealthCheck {
            id,
            addr,
            shared: Arc::new(Shared {
                cfg,
                status,
                last_ready: AtomicU8::new(0),
            }),
            running: Mutex::new(None),
        }
    }

    /// The address served while running (the real port when configured with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.lock().as_ref().and_then(|r| r.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Extension for HealthCheck {
    async fn start(&self) -> Result<(), ComponentError> {
        if self.lock().is_some() {
            return Err(ComponentError::new(&self.id, "already started"));
        }
        let listener = TcpListener::bind(self.addr).await.map_err(|e| {
            let id = format!("extensions.{}", self.id);
            ComponentError::new(id, spanpipe_core::listen_error("endpoint", self.addr, &e))
        })?;
        let addr = listener.local_addr().ok();
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, self.shared.clone(), stop.clone()));
        tracing::info!(extension = %self.id, endpoint = ?addr, path = %self.shared.cfg.path, "health check listening");
        *self.lock() = Some(Running { stop, task, addr });
        Ok(())
    }

    async fn shutdown(&self) {
        let Some(running) = self.lock().take() else {
            return;
        };
        running.stop.cancel();
        let _ = running.task.await;
    }
}

/// Serves probes through spanpipe's hardened server layer (connection cap, header and idle timeouts, back-off on
/// accept errors) until `stop`; probes are short, so requests in flight get one second.
async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(answer(&shared, &req)) }
    });
    spanpipe_net::serve_admin("health_check", listener, svc, stop, Duration::from_secs(1)).await;
}

fn answer<B>(shared: &Shared, req: &Request<B>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let probe = if path == shared.cfg.path || path == "/readyz" {
        Probe::Ready
    } else if path == "/livez" {
        Probe::Live
    } else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let verdict = evaluate(&shared.status, &shared.cfg.check_collector_pipeline, probe);
    if probe == Probe::Ready {
        log_change(shared, &verdict);
    }
    let code = if verdict.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let custom = shared.cfg.response_body.as_ref().map(|b| {
        if verdict.healthy {
            b.healthy.as_str()
        } else {
            b.unhealthy.as_str()
        }
    });
    match custom {
        Some(text) if !text.is_empty() => plain(code, text),
        _ => {
            let mut r = Response::new(Full::new(Bytes::from(json_body(&verdict))));
            *r.status_mut() = code;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
    }
}

/// One log line per readiness change (as seen by probes), never one per request.
fn log_change(shared: &Shared, v: &Verdict) {
    let now = if v.healthy { 1 } else { 2 };
    if shared.last_ready.swap(now, Ordering::Relaxed) == now {
        return;
    }
    if v.healthy {
        tracing::info!("health check: ready");
    } else {
        tracing::warn!(reason = %v.reason, "health check: not ready");
    }
}

fn plain(code: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_owned())));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
