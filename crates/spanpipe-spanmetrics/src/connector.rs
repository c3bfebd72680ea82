//! The `mlflow_spanmetrics` connector: consumes traces, sends the cumulative histograms to its metrics
//! pipelines every `flush_interval` and once more on shutdown.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use metrics::{Counter, Gauge};
use spanpipe_core::background::WorkerSlot;
use spanpipe_core::{
    Batch, BuildContext, ComponentError, ConfigError, ConnectorFactory, ConsumeError, Consumer,
    Metadata, Node, Processor, Signal, WireParts, component::Connector,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Settings, SpanMetricsConfig};
use crate::emit::export_request;
use crate::extract::extract;
use crate::state::{Counts, State};

/// Housekeeping (expired waits and series) runs at least this often, whatever `flush_interval` is.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Builds `mlflow_spanmetrics` connectors.
pub struct SpanMetricsConnectorFactory;

impl ConnectorFactory for SpanMetricsConnectorFactory {
    fn type_name(&self) -> &'static str {
        "mlflow_spanmetrics"
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
        let cfg: SpanMetricsConfig = ctx.config(config)?;
        let settings = cfg
            .validate()
            .map_err(|(keys, m)| ctx.invalid(config, &keys, m))?;
        Ok(Arc::new(SpanMetricsConnector::new(
            ctx.id.to_string(),
            settings,
            downstream,
        )))
    }
}

/// The connector's internal metrics (label `connector`), mirrored from [`Counts`] and the state's size at every
/// flush: `spanpipe_spanmetrics_{what}_total` counters and the `series` / `pending_points` gauges.
struct Telemetry {
    overflow_points: Counter,
    untagged_pending_full: Counter,
    untagged_no_root: Counter,
    expired_series: Counter,
    series: Gauge,
    pending_points: Gauge,
    reported: Counts,
}

/// Counter suffixes and their HELP text.
const COUNTERS: [(&str, &str); 4] = [
    (
        "overflow_points",
        "Span points recorded into the overflow series because max_series was reached.",
    ),
    (
        "untagged_pending_full_points",
        "Span points recorded without their root's tags because max_pending_spans was reached.",
    ),
    (
        "untagged_no_root_points",
        "Span points recorded without tags because their root did not arrive within tags_wait.",
    ),
    (
        "expired_series",
        "Series removed after series_expiration without new points.",
    ),
];

impl Telemetry {
    fn new(id: &str) -> Self {
        for (what, help) in COUNTERS {
            let name = format!("spanpipe_spanmetrics_{what}_total");
            metrics::describe_counter!(name, metrics::Unit::Count, help);
        }
        metrics::describe_gauge!(
            "spanpipe_spanmetrics_series",
            metrics::Unit::Count,
            "Live series of the span duration histogram (max_series bounds it)."
        );
        metrics::describe_gauge!(
            "spanpipe_spanmetrics_pending_points",
            metrics::Unit::Count,
            "Span points waiting for their root's tags (max_pending_spans bounds it)."
        );
        let c = |what: &str| metrics::counter!(format!("spanpipe_spanmetrics_{what}_total"), "connector" => id.to_string());
        let g = |what: &str| metrics::gauge!(format!("spanpipe_spanmetrics_{what}"), "connector" => id.to_string());
        Telemetry {
            overflow_points: c(COUNTERS[0].0),
            untagged_pending_full: c(COUNTERS[1].0),
            untagged_no_root: c(COUNTERS[2].0),
            expired_series: c(COUNTERS[3].0),
            series: g("series"),
            pending_points: g("pending_points"),
            reported: Counts::default(),
        }
    }

    fn report(&mut self, now: Counts, series: usize, pending_points: usize) {
        self.series.set(series as f64);
        self.pending_points.set(pending_points as f64);
        let r = self.reported;
        self.overflow_points
            .increment(now.overflow_points - r.overflow_points);
        self.untagged_pending_full
            .increment(now.untagged_pending_full - r.untagged_pending_full);
        self.untagged_no_root
            .increment(now.untagged_no_root - r.untagged_no_root);
        self.expired_series
            .increment(now.expired_series - r.expired_series);
        self.reported = now;
    }
}

/// Shared between the connector and its flush task.
struct Inner {
    id: String,
    settings: Arc<Settings>,
    state: Mutex<State>,
    telemetry: Mutex<Telemetry>,
    downstream: Arc<dyn Consumer>,
    /// `spanpipe_spanmetrics_truncated_label_values_total`: label values cut to `max_label_value_length`.
    truncated_labels: Counter,
}

/// Turns spans into `mlflow.trace.span.duration` histograms.
pub struct SpanMetricsConnector {
    inner: Arc<Inner>,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Once started, batches are recorded by a background thread, not on the caller's path: a batch processor's flush
    /// (and with it the acknowledgement of the request that filled the batch) does not wait for ~2 ms of
    /// histogram work per 8,192 spans. The queue is unbounded in count but not in bytes: every batch carries
    /// its share of the process memory budget until recorded, so a slow worker makes receivers refuse, not grow.
    worker: WorkerSlot,
}

fn truncated_labels_counter(id: &str) -> Counter {
    metrics::describe_counter!(
        "spanpipe_spanmetrics_truncated_label_values_total",
        metrics::Unit::Count,
        "Label values cut to max_label_value_length bytes."
    );
    metrics::counter!("spanpipe_spanmetrics_truncated_label_values_total", "connector" => id.to_owned())
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // State updates are plain arithmetic; a panic elsewhere cannot leave them half-done in a harmful way.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Sends the current state downstream. A refusal is only logged: the state is cumulative, so the next flush
    /// carries everything again.
    async fn flush(&self) {
        let (request, counts, series, pending) = {
            let state = lock(&self.state);
            (
                export_request(&self.settings, state.series(), wall_ns()),
                state.counts,
                state.series().len(),
                state.pending_points(),
            )
        };
        lock(&self.telemetry).report(counts, series, pending);
        let Some(request) = request else { return };
        let batch = Batch::new(Signal::Metrics, request.bytes, request.points);
        if let Err(e) = self.downstream.consume(batch).await {
            tracing::warn!(connector = %self.id, error = %e, "metrics pipeline did not take the span metrics; the next flush resends them");
        }
    }

    fn sweep(&self) {
        lock(&self.state).sweep(Instant::now(), wall_ns());
    }

    /// Reads the spans of `payload` (a whole batch, or one of its parts) into the histograms.
    fn record_spans(
        &self,
        payload: &(impl WireParts + ?Sized),
        metadata: &Metadata,
        items_hint: usize,
    ) -> Result<(), ConsumeError> {
        let s = &self.settings;
        let facts =
            extract(s, payload, metadata, items_hint).map_err(ConsumeError::malformed_traces)?;
        if facts.truncated > 0 {
            self.truncated_labels.increment(facts.truncated as u64);
        }
        let (now, wall) = (Instant::now(), wall_ns());
        lock(&self.state).record_batch(&facts, now, wall);
        Ok(())
    }
}

impl SpanMetricsConnector {
    pub fn new(id: String, settings: Settings, downstream: Arc<dyn Consumer>) -> Self {
        let settings = Arc::new(settings);
        SpanMetricsConnector {
            inner: Arc::new(Inner {
                telemetry: Mutex::new(Telemetry::new(&id)),
                truncated_labels: truncated_labels_counter(&id),
                id,
                state: Mutex::new(State::new(settings.clone())),
                settings,
                downstream,
            }),
            cancel: CancellationToken::new(),
            task: Mutex::new(None),
            worker: WorkerSlot::default(),
        }
    }

    /// The counters so far (for tests and logs).
    pub fn counts(&self) -> Counts {
        lock(&self.inner.state).counts
    }
}

#[async_trait]
impl Consumer for SpanMetricsConnector {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        if batch.signal != Signal::Traces {
            return Err(ConsumeError::Rejected {
                reason: format!("{} takes traces, got {}", self.inner.id, batch.signal),
            });
        }
        match self.worker.offer(batch) {
            Some(batch) => self
                .inner
                .record_spans(&batch.payload, &batch.metadata, batch.items),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Processor for SpanMetricsConnector {
    async fn start(&self) -> Result<(), ComponentError> {
        let recorder = self.inner.clone();
        self.worker
            .start_per_part(&self.inner.id, "spanmetrics", move |part, md, hint| {
                recorder.record_spans(part, md, hint)
            })?;
        let inner = self.inner.clone();
        let cancel = self.cancel.clone();
        let flush_every = inner.settings.flush_interval;
        let tick = flush_every.min(MAX_SWEEP_INTERVAL);
        let handle = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(tick);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            let mut last_flush = Instant::now();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                inner.sweep();
                if last_flush.elapsed() + tick / 2 >= flush_every {
                    last_flush = Instant::now();
                    inner.flush().await;
                }
            }
        });
        *lock(&self.task) = Some(handle);
        Ok(())
    }

    /// Stops the timer, records every point still waiting for a root (without tags), and flushes once more.
    async fn shutdown(&self) {
        self.cancel.cancel();
        let task = lock(&self.task).take();
        if let Some(t) = task {
            let _ = t.await;
        }
        // Everything handed over is recorded before the last flush: closing the channel ends the worker once
        // it has drained it.
        self.worker.finish().await;
        {
            let mut state = lock(&self.inner.state);
            state.drain_pending(Instant::now(), wall_ns());
        }
        self.inner.flush().await;
        let c = self.counts();
        tracing::info!(connector = %self.inner.id, overflow_points = c.overflow_points,
            untagged_no_root = c.untagged_no_root, untagged_pending_full = c.untagged_pending_full,
            expired_series = c.expired_series, "span metrics connector stopped");
    }
}

#[cfg(test)]
mod tests;
