//! The `memory_limiter` processor: measures the process's resident memory every `check_interval` and, while it
//! is above the soft limit (`limit - spike_limit`), refuses data with [`ConsumeError::Refused`], which the
//! receiver turns into HTTP 503 + `Retry-After` / gRPC UNAVAILABLE + RetryInfo, so clients back off and retry
//! instead of the collector being OOM-killed. Nothing refused was taken, so nothing is lost or duplicated.
//!
//! Put it first in a pipeline (as the OTel Collector recommends), so refused data costs as little as possible.
//! Instances of the same id in several pipelines share one measurement and one limit, as in the OTel Collector.
//! Refused items are counted as `otelcol_processor_refused_{spans,metric_points,log_records}_total`.

mod config;
#[cfg(test)]
mod tests;
pub mod usage;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use spanpipe_core::telemetry::SignalCounter;
use spanpipe_core::{
    Batch, BuildContext, ComponentError, ConfigError, ConsumeError, Consumer, Node, Processor,
    ProcessorFactory, Signal,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{Limits, MemoryLimiterConfig};

/// Builds `memory_limiter` processors.
pub struct MemoryLimiterFactory;

impl ProcessorFactory for MemoryLimiterFactory {
    fn type_name(&self) -> &'static str {
        "memory_limiter"
    }

    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces, Signal::Metrics, Signal::Logs]
    }

    fn build(
        &self,
        ctx: &BuildContext,
        node: &Node,
        signal: Signal,
        next: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Processor>, ConfigError> {
        let cfg: MemoryLimiterConfig = ctx.config(node)?;
        cfg.validate()
            .map_err(|(k, m)| ctx.invalid(node, &[k], m))?;
        let id = ctx.id.to_string();
        Ok(Arc::new(MemoryLimiter {
            gauge: Gauge::shared(&id, cfg, usage::rss_bytes),
            signal,
            next,
            refused: SignalCounter::new("processor", "refused", "processor", &id),
        }))
    }
}

/// Reads the process's memory use in bytes.
pub type ReadUsage = fn() -> Result<u64, String>;

/// One limiter id's measurement: whether data is refused right now, updated by a timer.
pub struct Gauge {
    id: String,
    cfg: MemoryLimiterConfig,
    read: ReadUsage,
    refusing: AtomicBool,
    /// Last measured use, bytes.
    last: AtomicU64,
    /// Started by the first pipeline's `start`, stopped by the last one's `shutdown`.
    timer: Mutex<Timer>,
}

#[derive(Default)]
struct Timer {
    users: usize,
    stop: Option<CancellationToken>,
    task: Option<JoinHandle<()>>,
}

impl Gauge {
    /// The gauge of `id`, shared by every pipeline's instance (built anew if none is alive).
    fn shared(id: &str, cfg: MemoryLimiterConfig, read: ReadUsage) -> Arc<Gauge> {
        static GAUGES: OnceLock<Mutex<HashMap<String, Weak<Gauge>>>> = OnceLock::new();
        let mut map = GAUGES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.retain(|_, g| g.strong_count() > 0);
        if let Some(g) = map.get(id).and_then(Weak::upgrade)
            && g.cfg == cfg
        {
            return g;
        }
        let g = Arc::new(Gauge::new(id, cfg, read));
        map.insert(id.to_string(), Arc::downgrade(&g));
        g
    }

    pub fn new(id: &str, cfg: MemoryLimiterConfig, read: ReadUsage) -> Self {
        Gauge {
            id: id.to_string(),
            cfg,
            read,
            refusing: AtomicBool::new(false),
            last: AtomicU64::new(0),
            timer: Mutex::new(Timer::default()),
        }
    }

    /// Whether data is refused now.
    pub fn refusing(&self) -> bool {
        self.refusing.load(Ordering::Relaxed)
    }

    /// One measurement: refuse from the soft limit on, accept again below it; each change logged once.
    pub fn check(&self, limits: Limits) {
        let used = match (self.read)() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(processor = %self.id, error = %e, "cannot measure memory use");
                return;
            }
        };
        self.last.store(used, Ordering::Relaxed);
        let over = used >= limits.soft;
        let was = self.refusing.swap(over, Ordering::Relaxed);
        let mib = |b: u64| b >> 20;
        if over && !was {
            tracing::warn!(processor = %self.id, used_mib = mib(used), soft_limit_mib = mib(limits.soft), hard_limit_mib = mib(limits.hard), "memory use is above the soft limit; refusing data");
        } else if !over && was {
            tracing::info!(processor = %self.id, used_mib = mib(used), soft_limit_mib = mib(limits.soft), "memory use is below the soft limit again; accepting data");
        }
    }

    async fn start(self: &Arc<Self>) -> Result<(), ComponentError> {
        let limits = self
            .cfg
            .limits(usage::total_memory)
            .map_err(|e| ComponentError::new(&self.id, e))?;
        let mut timer = self.timer.lock().unwrap_or_else(|e| e.into_inner());
        timer.users += 1;
        if timer.task.is_some() {
            return Ok(());
        }
        tracing::info!(processor = %self.id, hard_limit_mib = limits.hard >> 20, soft_limit_mib = limits.soft >> 20, "memory limits");
        self.check(limits);
        let stop = CancellationToken::new();
        let gauge = Arc::downgrade(self);
        let every = self.cfg.check_interval.0;
        let cancelled = stop.clone();
        timer.stop = Some(stop);
        timer.task = Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancelled.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                match gauge.upgrade() {
                    Some(g) => g.check(limits),
                    None => return,
                }
            }
        }));
        Ok(())
    }

    async fn shutdown(&self) {
        let (stop, task) = {
            let mut timer = self.timer.lock().unwrap_or_else(|e| e.into_inner());
            timer.users = timer.users.saturating_sub(1);
            if timer.users > 0 {
                return;
            }
            (timer.stop.take(), timer.task.take())
        };
        if let Some(stop) = stop {
            stop.cancel();
        }
        if let Some(task) = task {
            let _ = task.await;
        }
        // Never keep refusing after the measurements stopped.
        self.refusing.store(false, Ordering::Relaxed);
    }

    /// How long clients are asked to wait: a check interval, at least a second.
    fn retry_after(&self) -> Duration {
        self.cfg.check_interval.0.max(Duration::from_secs(1))
    }
}

/// One pipeline's instance.
pub struct MemoryLimiter {
    gauge: Arc<Gauge>,
    signal: Signal,
    next: Arc<dyn Consumer>,
    refused: SignalCounter,
}

#[async_trait]
impl Consumer for MemoryLimiter {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        if self.gauge.refusing() {
            self.refused.add(self.signal, batch.items);
            return Err(ConsumeError::Refused {
                reason: "memory usage is above the soft limit (memory_limiter); retry later".into(),
                retry_after: self.gauge.retry_after(),
            });
        }
        self.next.consume(batch).await
    }
}

#[async_trait]
impl Processor for MemoryLimiter {
    async fn start(&self) -> Result<(), ComponentError> {
        self.gauge.start().await
    }

    async fn shutdown(&self) {
        self.gauge.shutdown().await;
    }
}
