//! `prometheus`: keeps the latest state of every series it receives and serves it at `GET /metrics` for
//! Prometheus to scrape, like the OTel Collector's `prometheus` exporter.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header::CONTENT_TYPE};
use http_body_util::Full;
use hyper::service::service_fn;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;
use spanpipe_core::{
    Batch, BuildContext, BuiltExporter, ComponentError, ConfigError, ExportError, Exporter,
    ExporterFactory, ExporterSettings, Node, QueueSettings, RetrySettings, Signal,
    listen::Endpoint,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::text::{Format, render};
use crate::translate::{Labels, Options, translate};

/// `resource_to_telemetry_conversion: { enabled: true }`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceToTelemetry {
    pub enabled: bool,
}

/// Configuration of the `prometheus` exporter (names and defaults of the OTel Collector's).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// `host:port` to serve `/metrics` on.
    pub endpoint: String,
    pub namespace: String,
    pub const_labels: BTreeMap<String, String>,
    pub add_metric_suffixes: bool,
    pub resource_to_telemetry_conversion: ResourceToTelemetry,
    pub without_scope_info: bool,
    /// A series not updated for this long is no longer served (0: never).
    pub metric_expiration: ConfigDuration,
    /// Each sample carries the time of its latest data point.
    pub send_timestamps: bool,
    /// Serve OpenMetrics 1.0 text (`# EOF`, `application/openmetrics-text`) instead of the 0.0.4 text format.
    pub enable_open_metrics: bool,
    /// Off by default: an update is a quick in-memory write, so queueing would only reorder it.
    pub sending_queue: QueueSettings,
    pub retry_on_failure: RetrySettings,
    pub timeout: ConfigDuration,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            endpoint: "127.0.0.1:8889".into(),
            namespace: String::new(),
            const_labels: BTreeMap::new(),
            add_metric_suffixes: true,
            resource_to_telemetry_conversion: ResourceToTelemetry::default(),
            without_scope_info: false,
            metric_expiration: ConfigDuration(Duration::from_secs(300)),
            send_timestamps: false,
            enable_open_metrics: false,
            sending_queue: QueueSettings {
                enabled: false,
                ..QueueSettings::default()
            },
            retry_on_failure: RetrySettings::default(),
            timeout: ConfigDuration::default(),
        }
    }
}

/// Checks constant label names (`const_labels`, `external_labels`): they are used as given, so they must
/// already be valid Prometheus label names.
pub(crate) fn const_labels(
    ctx: &BuildContext,
    node: &Node,
    key: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Labels, ConfigError> {
    let mut out = Vec::new();
    for (k, v) in labels {
        match crate::names::label_name(k) {
            Some(name) if name == *k && !k.starts_with("__") => {
                out.push((Arc::from(name), v.clone()))
            }
            _ => {
                return Err(ctx.invalid(
                    node,
                    &[key, k],
                    "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                ));
            }
        }
    }
    Ok(out)
}

/// Builds `prometheus` exporters.
pub struct PrometheusExporterFactory;

impl ExporterFactory for PrometheusExporterFactory {
    fn type_name(&self) -> &'static str {
        "prometheus"
    }

    fn signals(&self) -> &'static [Signal] {
        &[Signal::Metrics]
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<BuiltExporter, ConfigError> {
        let cfg: PrometheusConfig = ctx.config(node)?;
        let endpoint =
            Endpoint::parse(&cfg.endpoint).map_err(|m| ctx.invalid(node, &["endpoint"], m))?;
        let format = Format {
            timestamps: cfg.send_timestamps,
            open_metrics: cfg.enable_open_metrics,
        };
        let options = Options {
            namespace: cfg.namespace.clone(),
            add_metric_suffixes: cfg.add_metric_suffixes,
            resource_to_telemetry: cfg.resource_to_telemetry_conversion.enabled,
            without_scope_info: cfg.without_scope_info,
            const_labels: const_labels(ctx, node, "const_labels", &cfg.const_labels)?,
        };
        let settings = ExporterSettings::new(
            ctx,
            node,
            cfg.sending_queue,
            cfg.retry_on_failure,
            cfg.timeout.0,
        )?;
        let expiration = Some(cfg.metric_expiration.0).filter(|d| !d.is_zero());
        Ok(BuiltExporter {
            exporter: Arc::new(PrometheusExporter {
                id: ctx.id.to_string(),
                endpoint,
                format,
                options,
                store: Arc::new(Mutex::new(Store::new(expiration))),
                stop: CancellationToken::new(),
                server: Mutex::new(None),
            }),
            settings,
        })
    }
}

/// Serves the latest state of the metrics it receives.
pub struct PrometheusExporter {
    id: String,
    endpoint: Endpoint,
    format: Format,
    options: Options,
    store: Arc<Mutex<Store>>,
    stop: CancellationToken,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Store updates are self-contained: a panic elsewhere leaves it consistent enough to keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl Exporter for PrometheusExporter {
    async fn start(&self) -> Result<(), ComponentError> {
        let listener = self.endpoint.bind().await.map_err(|e| {
            let id = format!("exporters.{}", self.id);
            ComponentError::new(
                id,
                spanpipe_core::listen_error("endpoint", &self.endpoint, &e),
            )
        })?;
        let addr = listener.local_addr().ok();
        tracing::info!(exporter = %self.id, endpoint = %self.endpoint, ?addr, "serving /metrics");
        let handle = tokio::spawn(serve(
            listener,
            self.store.clone(),
            self.format,
            self.stop.clone(),
        ));
        *lock(&self.server) = Some(handle);
        Ok(())
    }

    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        if batch.signal != Signal::Metrics {
            return Err(ExportError::permanent(format!(
                "prometheus exports metrics, not {}",
                batch.signal
            )));
        }
        let req = batch
            .payload
            .decode::<ExportMetricsServiceRequest>()
            .map_err(|e| ExportError::undecodable(format!("malformed metrics: {e}")))?;
        let now = Instant::now();
        // Applied point by point under the lock, so a large request is never held twice.
        let dropped = {
            let mut store = lock(&self.store);
            translate(&req, &self.options, |p| store.update(p, now))
        };
        if dropped.points > 0 {
            tracing::debug!(exporter = %self.id, dropped = dropped.points, "points Prometheus cannot represent were dropped");
        }
        Ok(())
    }

    async fn shutdown(&self) {
        self.stop.cancel();
        let handle = lock(&self.server).take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }
}

/// Serves scrapes through spanpipe's hardened server layer (connection cap, header and idle timeouts, back-off on
/// accept errors: the same as the receivers) until `stop`.
async fn serve(
    listener: TcpListener,
    store: Arc<Mutex<Store>>,
    format: Format,
    stop: CancellationToken,
) {
    let svc = service_fn(move |req| {
        let store = store.clone();
        async move { Ok::<_, Infallible>(handle(&store, format, &req)) }
    });
    spanpipe_net::serve_admin("prometheus", listener, svc, stop, Duration::from_secs(5)).await;
}

fn handle<B>(store: &Mutex<Store>, format: Format, req: &Request<B>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &str, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        if let Ok(v) = ctype.parse() {
            r.headers_mut().insert(CONTENT_TYPE, v);
        }
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found\n"),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"use GET\n"),
        );
    }
    let text = {
        let mut s = lock(store);
        s.expire(Instant::now());
        render(&s, format)
    };
    reply(StatusCode::OK, format.content_type(), Bytes::from(text))
}

#[cfg(test)]
mod tests;
