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
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use spanpipe_core::wire::{AnyValueRef, SpanView, WireError, walk_spans};
use spanpipe_core::{
    Batch, BuildContext, ComponentError, ConfigError, ConnectorFactory, ConsumeError, Consumer,
    Node, Processor, Signal, component::Connector,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use aggregate::{Dims, SpanPoint, State, Val};
use config::{OtelSpanMetricsConfig, Settings};

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
        let batch = Batch::new(Signal::Metrics, req.encode_to_vec().into(), items);
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

const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

fn val(v: AnyValueRef<'_>) -> Option<Val> {
    Some(match v {
        AnyValueRef::Str(s) => Val::Str(s.to_string()),
        AnyValueRef::Int(i) => Val::Int(i),
        AnyValueRef::Bool(b) => Val::Bool(b),
        AnyValueRef::Double(d) => Val::Double(d.to_bits()),
        _ => return None,
    })
}

/// Every span of `payload` as a point, and the attributes of the resources they name.
pub fn read(
    s: &Settings,
    payload: &[u8],
) -> Result<(Vec<Vec<KeyValue>>, Vec<SpanPoint>), WireError> {
    let mut resources: Vec<Vec<KeyValue>> = Vec::new();
    let mut service: Option<String> = None;
    let mut last: Option<(usize, usize)> = None;
    let mut points = Vec::new();
    walk_spans(payload, |ctx| {
        let key = (ctx.resource.as_ptr() as usize, ctx.resource.len());
        if last != Some(key) {
            last = Some(key);
            let attrs = Resource::decode(ctx.resource)
                .map(|r| r.attributes)
                .unwrap_or_default();
            service = attrs
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(
                    |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                s,
                            ),
                        ) => Some(s.clone()),
                        _ => None,
                    },
                );
            resources.push(attrs);
        }
        let Some(service) = &service else {
            return Ok(());
        };
        let mut extra: Vec<Option<Val>> = vec![None; s.dimensions.len()];
        let span = SpanView::read(ctx.raw, |k, v| {
            if let Some(i) = s.dimensions.iter().position(|d| d.name.as_bytes() == k)
                && extra[i].is_none()
            {
                extra[i] = v.parse().ok().and_then(val);
            }
        })?;
        let res = resources.len() - 1;
        let mut dims: Dims = Vec::with_capacity(s.defaults.len() + s.dimensions.len());
        for d in &s.defaults {
            let v = match *d {
                "service.name" => service.clone(),
                "span.name" => String::from_utf8_lossy(span.name).into_owned(),
                "span.kind" => SPAN_KINDS
                    .get(span.kind as usize)
                    .unwrap_or(&SPAN_KINDS[0])
                    .to_string(),
                _ => STATUS_CODES
                    .get(span.status_code as usize)
                    .unwrap_or(&STATUS_CODES[0])
                    .to_string(),
            };
            dims.push((d.to_string(), Val::Str(v)));
        }
        for (d, v) in s.dimensions.iter().zip(extra) {
            let v = v
                .or_else(|| {
                    resources[res]
                        .iter()
                        .find(|kv| kv.key == d.name)
                        .and_then(|kv| Val::from_any(kv.value.as_ref()?))
                })
                .or_else(|| d.default.clone().map(Val::Str));
            if let Some(v) = v {
                dims.push((d.name.clone(), v));
            }
        }
        points.push(SpanPoint {
            resource: res,
            dims,
            duration_ns: span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano),
        });
        Ok(())
    })?;
    Ok((resources, points))
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
        let (resources, points) = read(s, &batch.payload).map_err(|e| ConsumeError::Rejected {
            reason: format!("malformed traces: {e}"),
        })?;
        lock(&self.inner.state).record(s, &resources, points, Instant::now(), wall_ns());
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
