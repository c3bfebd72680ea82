//! The `genai_metrics` connector: consumes traces, sends the cumulative GenAI metrics to its metrics pipelines
//! every `flush_interval` and once more on shutdown.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use metrics::{Counter, Gauge};
use prost::Message;
use spanpipe_core::background::WorkerSlot;
use spanpipe_core::{
    Batch, BuildContext, ComponentError, ConfigError, ConnectorFactory, ConsumeError, Consumer,
    Metadata, Node, Processor, Signal, WireParts, component::Connector,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{GenaiMetricsConfig, Settings};
use crate::emit::export_request;
use crate::extract::extract;
use crate::price_source::PriceSource;
use crate::state::{Counts, State};

/// Housekeeping (expired waits and series) runs at least this often.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// The unit of `gen_ai.client.cost` without a price table (spans' own costs only).
pub const DEFAULT_CURRENCY: &str = "USD";

/// Builds `genai_metrics` connectors.
pub struct GenaiMetricsFactory;

impl ConnectorFactory for GenaiMetricsFactory {
    fn type_name(&self) -> &'static str {
        "genai_metrics"
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
        let cfg: GenaiMetricsConfig = ctx.config(config)?;
        let settings = cfg
            .validate()
            .map_err(|(keys, m)| ctx.invalid(config, &keys, m))?;
        let id = ctx.id.to_string();
        let prices = match &settings.cost {
            Some((path, _)) => Some(Arc::new(
                PriceSource::open(path.clone(), &id)
                    .map_err(|e| ctx.invalid(config, &["cost", "price_table"], e))?,
            )),
            None => None,
        };
        Ok(Arc::new(GenaiMetricsConnector::new(
            id, settings, prices, downstream,
        )))
    }
}

/// Counter suffixes (`spanpipe_genai_{what}_total`) and their HELP text.
const COUNTERS: [(&str, &str); 7] = [
    (
        "overflow_points",
        "GenAI metric points recorded into an overflow series because max_series was reached.",
    ),
    (
        "pending_full_spans",
        "Spans recorded at once (no tags, no rolled-up usage check) because max_pending_spans were waiting.",
    ),
    (
        "no_root_traces",
        "Traces whose root span did not arrive within trace_wait (recorded without tags).",
    ),
    (
        "incomplete_traces",
        "Traces whose root arrived but a span's parent did not within trace_wait (recorded with the spans present).",
    ),
    (
        "expired_series",
        "Series removed after series_expiration without new points.",
    ),
    (
        "rolled_up_spans",
        "Spans whose token usage was not counted because an ancestor span carries usage (MLflow's rule).",
    ),
    (
        "cost_currency_mismatch_spans",
        "Spans carrying a cost in another currency than gen_ai.client.cost's unit (not counted).",
    ),
];

fn counts_vec(c: &Counts) -> [u64; 7] {
    [
        c.overflow_points,
        c.pending_full_spans,
        c.no_root_traces,
        c.incomplete_traces,
        c.expired_series,
        c.rolled_up_spans,
        c.currency_mismatch_spans,
    ]
}

/// Internal metrics (label `connector`), mirrored from [`Counts`] at every flush.
struct Telemetry {
    counters: Vec<Counter>,
    series: Gauge,
    pending: Gauge,
    reported: [u64; 7],
}

impl Telemetry {
    fn new(id: &str) -> Self {
        metrics::describe_counter!(
            "spanpipe_genai_unpriced_spans_total",
            metrics::Unit::Count,
            "Spans with counted token usage whose model has no price in the price table, by model."
        );
        let counters = COUNTERS
            .iter()
            .map(|(what, help)| {
                let name = format!("spanpipe_genai_{what}_total");
                metrics::describe_counter!(name.clone(), metrics::Unit::Count, *help);
                metrics::counter!(name, "connector" => id.to_string())
            })
            .collect();
        metrics::describe_gauge!(
            "spanpipe_genai_series",
            metrics::Unit::Count,
            "Live series of the GenAI metrics (max_series bounds it)."
        );
        metrics::describe_gauge!(
            "spanpipe_genai_pending_spans",
            metrics::Unit::Count,
            "Spans waiting for their trace's root (max_pending_spans bounds it)."
        );
        Telemetry {
            counters,
            series: metrics::gauge!("spanpipe_genai_series", "connector" => id.to_string()),
            pending: metrics::gauge!("spanpipe_genai_pending_spans", "connector" => id.to_string()),
            reported: [0; 7],
        }
    }

    fn report(&mut self, c: &Counts, series: usize, pending: usize) {
        self.series.set(series as f64);
        self.pending.set(pending as f64);
        let now = counts_vec(c);
        for ((counter, n), r) in self.counters.iter().zip(now).zip(self.reported) {
            counter.increment(n.saturating_sub(r));
        }
        self.reported = now;
    }
}

struct Inner {
    id: String,
    settings: Arc<Settings>,
    state: Mutex<State>,
    telemetry: Mutex<Telemetry>,
    prices: Option<Arc<PriceSource>>,
    downstream: Arc<dyn Consumer>,
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    async fn flush(&self) {
        let (request, counts, series, pending) = {
            let mut state = lock(&self.state);
            if let Some(p) = &self.prices {
                state.currency = Arc::from(p.table().currency.as_str());
            }
            (
                export_request(&self.settings, state.store(), &state.currency, wall_ns()),
                state.counts,
                state.store().len(),
                state.pending_spans(),
            )
        };
        lock(&self.telemetry).report(&counts, series, pending);
        let Some((request, points)) = request else {
            return;
        };
        let batch = Batch::new(Signal::Metrics, request.encode_to_vec(), points);
        if let Err(e) = self.downstream.consume(batch).await {
            tracing::warn!(connector = %self.id, error = %e, "metrics pipeline did not take the GenAI metrics; the next flush resends them");
        }
    }

    /// Reads the spans of `payload` (a whole batch, or one of its parts) into the metrics.
    fn record_spans(
        &self,
        payload: &(impl WireParts + ?Sized),
        metadata: &Metadata,
        items_hint: usize,
    ) -> Result<(), ConsumeError> {
        let facts = extract(&self.settings, payload, metadata, items_hint)
            .map_err(ConsumeError::malformed_traces)?;
        let table = self.prices.as_ref().map(|p| p.table());
        lock(&self.state).record_batch(&facts, table.as_deref(), Instant::now(), wall_ns());
        Ok(())
    }

    fn sweep(&self) {
        let table = self.prices.as_ref().map(|p| p.table());
        lock(&self.state).sweep(table.as_deref(), Instant::now(), wall_ns());
    }
}

/// Turns spans into the OTel GenAI metrics and their cost.
pub struct GenaiMetricsConnector {
    inner: Arc<Inner>,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Once started, batches are recorded on a background thread, not on the path of the request that filled a
    /// batch (as in `mlflow_spanmetrics`). Waiting batches keep their share of the memory budget.
    worker: WorkerSlot,
}

impl GenaiMetricsConnector {
    pub fn new(
        id: String,
        settings: Settings,
        prices: Option<Arc<PriceSource>>,
        downstream: Arc<dyn Consumer>,
    ) -> Self {
        let settings = Arc::new(settings);
        let currency = prices
            .as_ref()
            .map_or(DEFAULT_CURRENCY.to_string(), |p| p.table().currency.clone());
        GenaiMetricsConnector {
            inner: Arc::new(Inner {
                telemetry: Mutex::new(Telemetry::new(&id)),
                state: Mutex::new(State::new(settings.clone(), &currency, &id)),
                id,
                settings,
                prices,
                downstream,
            }),
            cancel: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            worker: WorkerSlot::default(),
        }
    }

    /// The counters so far (for tests and logs).
    pub fn counts(&self) -> Counts {
        lock(&self.inner.state).counts
    }
}

#[async_trait]
impl Consumer for GenaiMetricsConnector {
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
impl Processor for GenaiMetricsConnector {
    async fn start(&self) -> Result<(), ComponentError> {
        let inner = self.inner.clone();
        let cancel = self.cancel.clone();
        let flush_every = inner.settings.flush_interval;
        let tick = flush_every.min(MAX_SWEEP_INTERVAL);
        let recorder = inner.clone();
        // Spans waiting for their roots carry over from one part to the next.
        self.worker
            .start_per_part(&inner.id, "genai-metrics", move |part, md, hint| {
                recorder.record_spans(part, md, hint)
            })?;
        let mut tasks = Vec::new();
        if let (Some(p), Some((_, every))) = (&inner.prices, &inner.settings.cost) {
            tasks.push(p.watch(*every, cancel.clone()));
        }
        tasks.push(tokio::spawn(async move {
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
        }));
        *lock(&self.tasks) = tasks;
        Ok(())
    }

    /// Stops the timers, records every span still waiting for a root (without tags), and flushes once more.
    async fn shutdown(&self) {
        self.cancel.cancel();
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for t in tasks {
            let _ = t.await;
        }
        // Everything handed over is recorded before the last flush.
        self.worker.finish().await;
        {
            let table = self.inner.prices.as_ref().map(|p| p.table());
            lock(&self.inner.state).drain_pending(table.as_deref(), Instant::now(), wall_ns());
        }
        self.inner.flush().await;
        let c = self.counts();
        tracing::info!(connector = %self.inner.id, overflow_points = c.overflow_points,
            no_root_traces = c.no_root_traces, rolled_up_spans = c.rolled_up_spans,
            unpriced_spans = c.unpriced_spans, "genai metrics connector stopped");
    }
}

#[cfg(test)]
mod tests;
