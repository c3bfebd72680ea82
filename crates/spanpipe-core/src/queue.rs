//! `SendingQueue`: the bounded queue, workers, retry and timeout that wrap every exporter (the OTel Collector's
//! exporterhelper), so each exporter only implements one export attempt.
//!
//! Capacity is a semaphore (in requests or items); a batch holds its permits until its export finished, so the
//! queue size counts in-flight work too. Admission is a separate step ([`SendingQueue::try_reserve`]) so the
//! fan-out can reserve room in every queue before it commits the batch to any of them.
//!
//! With `storage` the queue is persistent ([`persistent`]): batches are appended to a storage extension's log
//! before the fan-out returns (so before the client is answered), workers read them back oldest first, and a
//! record is acknowledged only once its export succeeded or was given up; what a stop or crash interrupts is sent
//! again after the restart.
//!
//! Layers: admission ([`Reservation`], here and in `persistent.rs`), the consumer side (`source.rs`: a `Source`
//! per backend — memory channel or persistent log — and the one worker loop, with `sending_queue.batch` in
//! `batching.rs`), and the retry/delivery layer (`deliver.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::time::Instant;

use serde::Deserialize;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Batch;
use crate::component::{Exporter, ExporterSettings};
use crate::telemetry::ExporterCounters;

mod batching;
mod codec;
mod deliver;
mod gauges;
mod persistent;
mod salvage;
mod source;

use crate::storage::RecordId;
pub use batching::{BatchSettings, BatchSizer};
use gauges::QueueGauges;
use persistent::{Hold, Persistent};

/// What `queue_size` counts.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sizer {
    #[default]
    Requests,
    Items,
    /// The encoded size of the requests, the OTel Collector's `bytes` sizer: a queue bounded in memory.
    Bytes,
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
    /// Persistent queues only: make room by dropping the oldest queued requests (counted in
    /// `otelcol_exporter_send_failed_*`), so the newest data is kept through a long outage.
    DropOldest,
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
    /// A storage extension id (`file_storage/<name>`): keep the queue on disk there instead of in memory.
    pub storage: Option<String>,
    /// Batch requests as they are read out for export (`batch:` alone enables the defaults); absent: off.
    #[serde(deserialize_with = "batching::null_is_default")]
    pub batch: Option<BatchSettings>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            sizer: Sizer::Requests,
            on_full: OnFull::Refuse,
            storage: None,
            batch: None,
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
        if self.on_full == OnFull::DropOldest && self.storage.is_none() {
            return Err((
                "on_full",
                "drop_oldest needs a persistent queue (`sending_queue.storage`)".into(),
            ));
        }
        if self.storage.is_some() && !self.enabled {
            return Err(("storage", "needs `sending_queue.enabled: true`".into()));
        }
        if let Some(b) = &self.batch {
            b.validate().map_err(|m| ("batch", m))?;
            if !self.enabled {
                return Err(("batch", "needs `sending_queue.enabled: true`".into()));
            }
        }
        Ok(())
    }
}

struct Queued {
    batch: Batch,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Room reserved in a queue for one batch; dropping it gives the room back (and forgets a staged record).
///
/// Admission is two-phase so the fan-out can make it all-or-nothing: [`Reservation::prepare`] does whatever can
/// fail (a persistent queue writes the record, unseen by its workers), [`Reservation::commit`] cannot fail.
pub struct Reservation {
    queue: Arc<SendingQueue>,
    permit: Option<OwnedSemaphorePermit>,
    /// Room held in a persistent queue until its record is written.
    hold: Option<Hold>,
    /// A record written by `prepare`, published by `commit`.
    staged: Option<RecordId>,
    persistent: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            self.queue.release(hold);
        }
        if let Some(id) = self.staged.take() {
            // Never committed (the request was refused, or its task cancelled): forget the record.
            let q = self.queue.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn_blocking(move || q.withdraw_blocking(id));
                }
                Err(_) => q.withdraw_blocking(id),
            }
        }
        if self.permit.take().is_some() {
            self.queue.update_size();
        }
    }
}

/// A persistent queue could not write a request (the disk is full, an I/O error): nothing of it was kept.
#[derive(Debug, thiserror::Error)]
#[error("persistent queue of exporter {exporter} cannot write: {reason}")]
pub struct WriteFailed {
    pub exporter: String,
    pub reason: String,
}

impl Reservation {
    /// Whether [`Reservation::prepare`] writes to a persistent queue (and may fail).
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// The queue this room is in.
    pub fn queue(&self) -> &Arc<SendingQueue> {
        &self.queue
    }

    /// A persistent queue writes the batch now, before the client is answered; its workers see it only after
    /// [`Reservation::commit`]. On error nothing was kept (counted in
    /// `spanpipe_exporter_persistent_queue_write_failures_total`). Memory queues have nothing to prepare.
    pub async fn prepare(&mut self, batch: &Batch) -> Result<(), WriteFailed> {
        let Some(hold) = self.hold.take() else {
            return Ok(());
        };
        self.staged = self.queue.clone().stage(batch.clone(), hold).await?;
        Ok(())
    }

    /// Forgets what [`Reservation::prepare`] wrote and gives the room back (the request is refused).
    pub async fn abort(mut self) {
        if let Some(id) = self.staged.take() {
            let q = self.queue.clone();
            if tokio::task::spawn_blocking(move || q.withdraw_blocking(id))
                .await
                .is_err()
            {
                tracing::error!(exporter = %self.queue.id, "persistent queue: withdraw task failed");
            }
        }
    }

    /// [`Reservation::prepare`] then [`Reservation::commit`]; a write failure is counted and logged as a drop.
    pub async fn send(mut self, batch: Batch) {
        match self.prepare(&batch).await {
            Ok(()) => self.commit(batch).await,
            Err(e) => {
                self.queue
                    .counters
                    .enqueue_failed
                    .add(batch.signal, batch.items);
                tracing::error!(exporter = %self.queue.id, error = %e, items = batch.items, "batch dropped");
            }
        }
    }

    /// Commits the batch to the queue (or, with the queue disabled, exports it now). A persistent queue publishes
    /// the record [`Reservation::prepare`] wrote.
    pub async fn commit(mut self, batch: Batch) {
        if self.persistent {
            if let Some(id) = self.staged.take() {
                let q = self.queue.clone();
                if tokio::task::spawn_blocking(move || q.publish_blocking(id))
                    .await
                    .is_err()
                {
                    tracing::error!(exporter = %self.queue.id, "persistent queue: publish task failed");
                }
            }
            return;
        }
        if !self.queue.settings.sending_queue.enabled {
            self.queue.deliver(&batch).await;
            return;
        }
        if let Err(mpsc::error::SendError(q)) = self.queue.tx.send(Queued {
            batch,
            _permit: self.permit.take(),
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
    gauges: QueueGauges,
    /// Set with `sending_queue.storage`: the queue lives there, not in `tx`/`rx`.
    persistent: Option<Persistent>,
    /// Held by the worker collecting the next export; with `sending_queue.batch`, the request carried over to
    /// start the next batch.
    carry: Mutex<Option<source::Taken>>,
}

/// How one delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    /// Counted as failed (permanent error, retries exhausted or disabled, memory queue out of time).
    Failed,
    /// A persistent queue stopped before the export finished: not counted, sent again after the restart.
    Interrupted,
}

impl SendingQueue {
    pub fn new(id: String, exporter: Arc<dyn Exporter>, settings: ExporterSettings) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let capacity = settings.sending_queue.queue_size.max(1);
        let gauges = QueueGauges::new(&id);
        gauges.capacity.set(capacity as f64);
        gauges.size.set(0.0);
        let persistent = settings.storage.clone().map(Persistent::new);
        Arc::new(SendingQueue {
            gauges,
            persistent,
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
            carry: Mutex::new(None),
        })
    }

    /// Current occupancy in the sizer's unit (queued plus being exported).
    pub fn size(&self) -> usize {
        if let Some(p) = &self.persistent {
            return p.size(self.settings.sending_queue.sizer);
        }
        self.capacity - self.sem.available_permits().min(self.capacity)
    }

    fn update_size(&self) {
        self.gauges.size.set(self.size() as f64);
    }

    /// What `batch` costs in the sizer's unit.
    fn cost(&self, batch: &Batch) -> usize {
        match self.settings.sending_queue.sizer {
            crate::Sizer::Requests => 1,
            // A batch larger than the whole queue is admitted when the queue is empty rather than never.
            crate::Sizer::Items => batch.items.clamp(1, self.capacity),
            crate::Sizer::Bytes => batch.payload.len().clamp(1, self.capacity),
        }
    }

    pub fn on_full(&self) -> OnFull {
        self.settings.sending_queue.on_full
    }

    /// Reserves room for `batch` without waiting.
    pub fn try_reserve(self: &Arc<Self>, batch: &Batch) -> Result<Reservation, QueueFull> {
        let reserved = |permit, hold: Option<Hold>| Reservation {
            queue: self.clone(),
            permit,
            persistent: hold.is_some(),
            hold,
            staged: None,
        };
        if !self.settings.sending_queue.enabled {
            return Ok(reserved(None, None));
        }
        let cost = self.cost(batch);
        if let Some(p) = &self.persistent
            && !p.is_open()
        {
            // Not started yet, or stopped (a reload starting the next instance): refuse whatever the policy, so
            // nothing is dropped while the log is closed; the client retries.
            return Err(QueueFull {
                policy: OnFull::Refuse,
            });
        }
        let got = match &self.persistent {
            Some(p) => p
                .try_hold(self, cost, batch)
                .map(|h| reserved(None, Some(h))),
            None => match self.sem.clone().try_acquire_many_owned(cost as u32) {
                Ok(permit) => {
                    self.update_size();
                    Some(reserved(Some(permit), None))
                }
                Err(_) => None,
            },
        };
        match got {
            Some(r) => {
                if self.saturated.swap(false, Ordering::Relaxed) {
                    tracing::info!(exporter = %self.id, "sending queue has room again");
                }
                Ok(r)
            }
            None => {
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
        if self.persistent.is_some() {
            self.clone().open_storage().await?;
        }
        self.exporter.start().await?;
        if self.settings.sending_queue.enabled {
            let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
            for _ in 0..self.settings.sending_queue.num_consumers {
                let q = self.clone();
                let source: Arc<dyn source::Source> = match q.persistent.is_some() {
                    true => Arc::new(source::PersistentSource),
                    false => Arc::new(source::MemorySource),
                };
                workers.push(tokio::spawn(async move { q.worker(source).await }));
            }
        }
        Ok(())
    }

    /// Stops taking work and drains what is queued, giving up at `deadline`: what is left then is counted as failed.
    pub async fn shutdown(&self, deadline: Instant) {
        if self.persistent.is_some() {
            self.shutdown_persistent(deadline).await;
            self.exporter.shutdown().await;
            return;
        }
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
        }
        // Whatever no worker took (the deadline passed, or the queue never started: a reload whose successor
        // failed to start) is counted as failed, never dropped silently.
        let mut rx = self.rx.lock().await;
        let mut lost = 0usize;
        if let Some(t) = self.carry.lock().await.take() {
            self.counters.send_failed.add(t.batch.signal, t.batch.items);
            lost += t.batch.items;
        }
        while let Ok(q) = rx.try_recv() {
            self.counters.send_failed.add(q.batch.signal, q.batch.items);
            lost += q.batch.items;
        }
        if lost > 0 || drained.is_err() {
            tracing::error!(exporter = %self.id, items = lost, "shutdown deadline reached or queue never started; queued data not delivered");
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
