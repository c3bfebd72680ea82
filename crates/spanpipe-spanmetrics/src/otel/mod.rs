//! The `spanmetrics` connector, compatible with the OTel Collector's `spanmetricsconnector`: from every span,
//! `traces.span.metrics.calls` (a monotonic sum) and `traces.span.metrics.duration` (an explicit-bucket histogram
//! in `ms` or `s`), with the dimensions `service.name`, `span.name`, `span.kind` (`SPAN_KIND_SERVER`, ...),
//! `status.code` (`STATUS_CODE_OK`, ...) plus the configured ones, grouped by the spans' resources — so Jaeger's
//! Monitor tab and Grafana's span-metrics dashboards work on it. Spans are read from the encoded request without
//! decoding (resources are decoded once each); spans whose resource has no `service.name` are skipped, as the
//! Collector does.

pub mod aggregate;
pub mod config;
pub mod exponential;
pub mod key;
pub mod read;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use prost::Message;
use spanpipe_core::{
    Batch, BuildContext, ComponentError, ConfigError, ConnectorFactory, ConsumeError, Consumer,
    Node, Processor, Signal, component::Connector,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use aggregate::State;
use config::{OtelSpanMetricsConfig, Settings};
pub use read::read;

/// Builds `spanmetrics` connectors.
pub struct OtelSpanMetricsFactory;

impl ConnectorFactory for OtelSpanMetricsFactory {
    fn type_name(&self) -> &'static str {
        "spanmetrics"
    }

    fn supports(&self, from: Signal, to: Signal) -> bool {
        from == Signal::Traces && to == Signal::Metrics
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &Node,
        _from: Signal,
        _to: Signal,
        downstream: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Connector>, ConfigError> {
        let cfg: OtelSpanMetricsConfig = ctx.config(config)?;
        let settings = cfg
            .validate()
            .map_err(|(keys, m)| ctx.invalid(config, &keys, m))?;
        Ok(Arc::new(OtelSpanMetrics {
            inner: Arc::new(Inner {
                id: ctx.id.to_string(),
                state: Mutex::new(State::new(wall_ns())),
                settings,
                downstream,
            }),
            cancel: CancellationToken::new(),
            task: Mutex::new(None),
        }))
    }
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Inner {
    id: String,
    settings: Settings,
    state: Mutex<State>,
    downstream: Arc<dyn Consumer>,
}

impl Inner {
    async fn flush(&self) {
        let req = lock(&self.state).flush(&self.settings, Instant::now(), wall_ns());
        let Some(req) = req else { return };
        let items = req
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| match &m.data {
                Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(s)) => {
                    s.data_points.len()
                }
                Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Histogram(h)) => {
                    h.data_points.len()
                }
                Some(
                    opentelemetry_proto::tonic::metrics::v1::metric::Data::ExponentialHistogram(h),
                ) => h.data_points.len(),
                _ => 0,
            })
            .sum();
        let batch = Batch::new(Signal::Metrics, req.encode_to_vec(), items);
        if let Err(e) = self.downstream.consume(batch).await {
            tracing::warn!(connector = %self.id, error = %e, "span metrics not delivered");
        }
    }
}

/// One `spanmetrics` connector.
pub struct OtelSpanMetrics {
    inner: Arc<Inner>,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[async_trait]
impl Consumer for OtelSpanMetrics {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        if batch.signal != Signal::Traces {
            return Err(ConsumeError::Rejected {
                reason: format!("{} takes traces, got {}", self.inner.id, batch.signal),
            });
        }
        let s = &self.inner.settings;
        let read = read(s, &batch.payload).map_err(ConsumeError::malformed_traces)?;
        lock(&self.inner.state).record(s, &read, Instant::now(), wall_ns());
        Ok(())
    }
}

#[async_trait]
impl Processor for OtelSpanMetrics {
    async fn start(&self) -> Result<(), ComponentError> {
        let inner = self.inner.clone();
        let cancel = self.cancel.clone();
        let every = inner.settings.flush_interval;
        let handle = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = ticker.tick() => inner.flush().await,
                }
            }
        });
        *lock(&self.task) = Some(handle);
        Ok(())
    }

    async fn shutdown(&self) {
        self.cancel.cancel();
        let task = lock(&self.task).take();
        if let Some(t) = task {
            let _ = t.await;
        }
        self.inner.flush().await;
        let overflowed = lock(&self.inner.state).overflowed;
        if overflowed > 0 {
            tracing::warn!(connector = %self.inner.id, overflowed, "spans counted in the otel.metric.overflow series (aggregation_cardinality_limit)");
        }
    }
}
