//! `SendingQueue`: the bounded queue, workers, retry and timeout that wrap every exporter (the OTel Collector's
//! exporterhelper), so each exporter only implements one export attempt.
//!
//! Capacity is a semaphore (in requests or items); a batch holds its permits until its export finished, so the
//! queue size counts in-flight work too. Admission is a separate step ([`SendingQueue::try_reserve`]) so the
//! fan-out can reserve room in every queue before it commits the batch to any of them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::time::Instant;

use serde::Deserialize;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::component::{ExportError, Exporter, ExporterSettings};
use crate::telemetry::{ExporterCounters, item_noun};
use crate::{Batch, RetrySettings};

/// What `queue_size` counts.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sizer {
    #[default]
    Requests,
    Items,
}

/// What the pipeline does when this exporter's queue is full.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFull {
    /// Refuse the whole request at the receiver (503 / UNAVAILABLE), for every exporter alike: nothing is
    /// enqueued anywhere, so the client's retry duplicates nothing. Backpressure reaches the client.
    #[default]
    Refuse,
    /// Drop the batch for this exporter only (counted in `otelcol_exporter_enqueue_failed_*`); the others still
    /// get it. For best-effort backends that must never hold the rest back.
    Drop,
}

/// `sending_queue` settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    pub enabled: bool,
    pub num_consumers: usize,
    pub queue_size: usize,
    pub sizer: Sizer,
    pub on_full: OnFull,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            sizer: Sizer::Requests,
            on_full: OnFull::Refuse,
        }
    }
}

impl QueueSettings {
    /// Checks ranges; returns the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.num_consumers == 0 {
            return Err(("num_consumers", "must be at least 1".into()));
        }
        if self.queue_size == 0 {
            return Err(("queue_size", "must be at least 1".into()));
        }
        if self.queue_size > (u32::MAX >> 4) as usize {
            return Err(("queue_size", "is too large".into()));
        }
        Ok(())
    }
}

struct Queued {
    batch: Batch,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Room reserved in a queue for one batch; dropping it gives the room back.
pub struct Reservation {
    queue: Arc<SendingQueue>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// Commits the batch to the queue (or, with the queue disabled, exports it now).
    pub async fn send(self, batch: Batch) {
        if !self.queue.settings.sending_queue.enabled {
            self.queue.deliver(&batch).await;
            return;
        }
        if let Err(mpsc::error::SendError(q)) = self.queue.tx.send(Queued {
            batch,
            _permit: self.permit,
        }) {
            // Only after shutdown closed the queue: count, never lose silently.
            self.queue
                .counters
                .send_failed
                .add(q.batch.signal, q.batch.items);
            tracing::error!(exporter = %self.queue.id, items = q.batch.items, "queue closed; batch dropped");
        }
    }
}

/// A full queue, with the policy that applies.
#[derive(Debug)]
pub struct QueueFull {
    pub policy: OnFull,
}

/// One exporter with its queue and workers.
pub struct SendingQueue {
    pub id: String,
    exporter: Arc<dyn Exporter>,
    settings: ExporterSettings,
    capacity: usize,
    sem: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Queued>,
    rx: Mutex<mpsc::UnboundedReceiver<Queued>>,
    pub counters: ExporterCounters,
    closing: CancellationToken,
    hard_stop: CancellationToken,
    workers: StdMutex<Vec<JoinHandle<()>>>,
    failing: AtomicBool,
    saturated: AtomicBool,
    logged_permanent: StdMutex<Vec<String>>,
}

impl SendingQueue {
    pub fn new(id: String, exporter: Arc<dyn Exporter>, settings: ExporterSettings) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let capacity = settings.sending_queue.queue_size.max(1);
        metrics::gauge!("otelcol_exporter_queue_capacity", "exporter" => id.clone())
            .set(capacity as f64);
        Arc::new(SendingQueue {
            counters: ExporterCounters::new(&id),
            id,
            exporter,
            capacity,
            sem: Arc::new(Semaphore::new(capacity)),
            tx,
            rx: Mutex::new(rx),
            settings,
            closing: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            workers: StdMutex::new(Vec::new()),
            failing: AtomicBool::new(false),
            saturated: AtomicBool::new(false),
            logged_permanent: StdMutex::new(Vec::new()),
        })
    }

    /// Current occupancy in the sizer's unit (queued plus being exported).
    pub fn size(&self) -> usize {
        self.capacity - self.sem.available_permits().min(self.capacity)
    }

    pub fn on_full(&self) -> OnFull {
        self.settings.sending_queue.on_full
    }

    /// Reserves room for a batch of `items` without waiting.
    pub fn try_reserve(self: &Arc<Self>, items: usize) -> Result<Reservation, QueueFull> {
        if !self.settings.sending_queue.enabled {
            return Ok(Reservation {
                queue: self.clone(),
                permit: None,
            });
        }
        let cost = match self.settings.sending_queue.sizer {
            crate::Sizer::Requests => 1,
            // A batch larger than the whole queue is admitted when the queue is empty rather than never.
            crate::Sizer::Items => items.clamp(1, self.capacity),
        };
        match self.sem.clone().try_acquire_many_owned(cost as u32) {
            Ok(permit) => {
                if self.saturated.swap(false, Ordering::Relaxed) {
                    tracing::info!(exporter = %self.id, "sending queue has room again");
                }
                Ok(Reservation {
                    queue: self.clone(),
                    permit: Some(permit),
                })
            }
            Err(_) => {
                if !self.saturated.swap(true, Ordering::Relaxed) {
                    tracing::warn!(exporter = %self.id, capacity = self.capacity,
                        policy = ?self.on_full(), "sending queue is full");
                }
                Err(QueueFull {
                    policy: self.on_full(),
                })
            }
        }
    }

    /// Starts the exporter and its workers.
    pub async fn start(self: &Arc<Self>) -> Result<(), crate::ComponentError> {
        self.exporter.start().await?;
        if self.settings.sending_queue.enabled {
            let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
            for _ in 0..self.settings.sending_queue.num_consumers {
                let q = self.clone();
                workers.push(tokio::spawn(async move { q.worker().await }));
            }
        }
        Ok(())
    }

    async fn worker(self: Arc<Self>) {
        loop {
            let next = {
                let mut rx = self.rx.lock().await;
                if self.closing.is_cancelled() {
                    rx.try_recv().ok()
                } else {
                    tokio::select! {
                        biased;
                        m = rx.recv() => m,
                        _ = self.closing.cancelled() => rx.try_recv().ok(),
                    }
                }
            };
            let Some(queued) = next else { break };
            self.deliver(&queued.batch).await;
        }
    }

    /// Exports with timeout and retries until success, a permanent error, `max_elapsed_time` or the shutdown
    /// deadline. Every outcome is counted.
    pub async fn deliver(&self, batch: &Batch) -> bool {
        let retry: &RetrySettings = &self.settings.retry_on_failure;
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            let result = tokio::select! {
                r = self.attempt(batch) => r,
                _ = self.hard_stop.cancelled() => Err(ExportError::permanent("shutdown deadline reached")),
            };
            let (reason, delay) = match result {
                Ok(()) => {
                    self.counters.sent.add(batch.signal, batch.items);
                    if self.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(exporter = %self.id, "exports succeed again");
                    }
                    return true;
                }
                Err(ExportError::Permanent { reason }) => {
                    self.fail(batch, &reason, "permanent error, not retried");
                    return false;
                }
                Err(ExportError::Retryable { reason, delay }) => (reason, delay),
            };
            if !retry.enabled {
                self.fail(batch, &reason, "retry_on_failure disabled");
                return false;
            }
            let backoff = retry.backoff(attempt, rand::random::<f64>());
            attempt = attempt.saturating_add(1);
            let wait = delay.unwrap_or(backoff);
            let max_elapsed = retry.max_elapsed_time.0;
            if !max_elapsed.is_zero() && started.elapsed() + wait > max_elapsed {
                self.fail(batch, &reason, "retries exhausted (max_elapsed_time)");
                return false;
            }
            if !self.failing.swap(true, Ordering::Relaxed) {
                tracing::warn!(exporter = %self.id, error = %reason, retry_in = ?wait, "export failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.hard_stop.cancelled() => {
                    self.fail(batch, &reason, "shutdown deadline reached while retrying");
                    return false;
                }
            }
        }
    }

    async fn attempt(&self, batch: &Batch) -> Result<(), ExportError> {
        let timeout = self.settings.timeout;
        if timeout.is_zero() {
            return self.exporter.export(batch).await;
        }
        match tokio::time::timeout(timeout, self.exporter.export(batch)).await {
            Ok(r) => r,
            Err(_) => Err(ExportError::retryable(format!(
                "timeout: no answer within {timeout:?}"
            ))),
        }
    }

    fn fail(&self, batch: &Batch, reason: &str, why: &str) {
        self.counters.send_failed.add(batch.signal, batch.items);
        let kind = format!("{why}: {}", reason.split(':').next().unwrap_or(reason));
        let mut logged = self
            .logged_permanent
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !logged.contains(&kind) {
            if logged.len() < 64 {
                logged.push(kind);
            }
            tracing::error!(exporter = %self.id, error = %reason, items = batch.items,
                noun = item_noun(batch.signal), "{why}; data dropped (further errors of this kind are only counted)");
        }
    }

    /// Stops taking work and drains what is queued, giving up at `deadline`: what is left then is counted as failed.
    pub async fn shutdown(&self, deadline: Instant) {
        self.closing.cancel();
        let workers: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let mut handles = workers;
        let drained = tokio::time::timeout_at(deadline, async {
            for h in handles.iter_mut() {
                let _ = h.await;
            }
        })
        .await;
        if drained.is_err() {
            self.hard_stop.cancel();
            for h in handles {
                let _ = h.await;
            }
            let mut rx = self.rx.lock().await;
            let mut lost = 0usize;
            while let Ok(q) = rx.try_recv() {
                self.counters.send_failed.add(q.batch.signal, q.batch.items);
                lost += q.batch.items;
            }
            tracing::error!(exporter = %self.id, items = lost, "shutdown deadline reached; queued data not delivered");
        }
        self.exporter.shutdown().await;
    }

    /// The per-attempt timeout and settings, for tests and logs.
    pub fn settings(&self) -> &ExporterSettings {
        &self.settings
    }

    /// How long to tell a refused client to wait.
    pub fn retry_after(&self) -> Duration {
        Duration::from_secs(1)
    }
}

#[cfg(test)]
mod tests;
