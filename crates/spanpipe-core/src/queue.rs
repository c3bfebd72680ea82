//! `SendingQueue`: the bounded queue, workers, retry and timeout that wrap every exporter (the OTel Collector's
//! exporterhelper), so each exporter only implements one export attempt.
//!
//! Layers, as the Collector's exporterhelper separates its queue from its retry sender:
//!
//! - the queue backend ([`backend`]: one trait, two implementations): `memory.rs` (the `memory_queue`: a channel
//!   whose capacity is a semaphore in the sizer's unit; a batch holds its room until its export finished, so the
//!   queue size counts in-flight work too) and `persistent.rs` (the `persistent_queue`, with `storage`: batches
//!   are written to a storage extension's log before the fan-out returns, so before the client is answered;
//!   workers read them back oldest first and a record is acknowledged only once its export succeeded or was
//!   given up; what a stop or crash interrupts is sent again after the restart);
//! - admission ([`SendingQueue::try_reserve`] → [`Reservation`], here): a separate step so the fan-out can
//!   reserve room in every queue before it commits the batch to any of them;
//! - the workers (`worker.rs`: one loop over the backend, with `sending_queue.batch` in `batching.rs`);
//! - the retry/delivery layer (`deliver.rs`, `salvage.rs`): timeout, backoff, counting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::time::Instant;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Batch;
use crate::component::{Exporter, ExporterSettings};
use crate::telemetry::ExporterCounters;

mod backend;
mod batching;
mod codec;
mod deliver;
mod gauges;
mod memory;
mod persistent;
mod salvage;
mod worker;

use backend::{Admit, QueueBackend, Room};
pub use batching::{BatchSettings, BatchSizer};
use gauges::QueueGauges;
use memory::MemoryQueue;
use persistent::PersistentQueue;

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

/// Room reserved in a queue for one batch; dropping it gives the room back (and forgets a staged record).
///
/// Admission is two-phase so the fan-out can make it all-or-nothing: [`Reservation::prepare`] does whatever can
/// fail (a persistent queue writes the record, unseen by its workers), [`Reservation::commit`] cannot fail.
pub struct Reservation {
    queue: Arc<SendingQueue>,
    /// The backend's room; `None` with the queue disabled (`sending_queue.enabled: false`): exported inline.
    room: Option<Box<dyn Room>>,
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
        self.room.as_ref().is_some_and(|r| r.writes())
    }

    /// The queue this room is in.
    pub fn queue(&self) -> &Arc<SendingQueue> {
        &self.queue
    }

    /// A persistent queue writes the batch now, before the client is answered; its workers see it only after
    /// [`Reservation::commit`]. On error nothing was kept (counted in
    /// `spanpipe_exporter_persistent_queue_write_failures_total`). Memory queues have nothing to prepare.
    pub async fn prepare(&mut self, batch: &Batch) -> Result<(), WriteFailed> {
        match self.room.as_mut() {
            Some(room) => room.prepare(batch).await,
            None => Ok(()),
        }
    }

    /// Forgets what [`Reservation::prepare`] wrote and gives the room back (the request is refused).
    pub async fn abort(mut self) {
        if let Some(room) = self.room.take() {
            room.abort().await;
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
        match self.room.take() {
            Some(room) => room.commit(batch).await,
            None => {
                self.queue.deliver(&batch).await;
            }
        }
    }
}

/// Waits for `tasks` until `deadline`: `Ok` once all have finished, else the ones still running. A finished task
/// is dropped from the list at once: polling its handle again panics ("JoinHandle polled after completion"),
/// which a shutdown hit when some workers ended before the deadline and another did not.
async fn join_until(
    mut tasks: Vec<JoinHandle<()>>,
    deadline: Instant,
) -> Result<(), Vec<JoinHandle<()>>> {
    let all = tokio::time::timeout_at(deadline, async {
        while let Some(h) = tasks.last_mut() {
            let _ = h.await;
            tasks.pop();
        }
    })
    .await;
    match all {
        Ok(()) => Ok(()),
        Err(_) => Err(tasks),
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
    /// `queue_size`, in the sizer's unit.
    capacity: usize,
    /// Where the queued requests are: memory or a storage extension's log.
    backend: Box<dyn QueueBackend>,
    pub counters: ExporterCounters,
    closing: CancellationToken,
    hard_stop: CancellationToken,
    workers: StdMutex<Vec<JoinHandle<()>>>,
    failing: AtomicBool,
    saturated: AtomicBool,
    logged_permanent: StdMutex<Vec<String>>,
    gauges: QueueGauges,
    /// Held by the worker collecting the next export; with `sending_queue.batch`, the request carried over to
    /// start the next batch.
    carry: Mutex<Option<backend::Taken>>,
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
        let capacity = settings.sending_queue.queue_size.max(1);
        let gauges = QueueGauges::new(&id);
        gauges.capacity.set(capacity as f64);
        gauges.size.set(0.0);
        let backend: Box<dyn QueueBackend> = match settings.storage.clone() {
            Some(storage) => Box::new(PersistentQueue::new(storage)),
            None => Box::new(MemoryQueue::new(capacity)),
        };
        Arc::new(SendingQueue {
            gauges,
            backend,
            counters: ExporterCounters::new(&id),
            id,
            exporter,
            capacity,
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
        self.backend.size(self)
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
        if !self.settings.sending_queue.enabled {
            return Ok(Reservation {
                queue: self.clone(),
                room: None,
            });
        }
        match self.backend.try_admit(self, self.cost(batch), batch) {
            Admit::Room(room) => {
                if self.saturated.swap(false, Ordering::Relaxed) {
                    tracing::info!(exporter = %self.id, "sending queue has room again");
                }
                Ok(Reservation {
                    queue: self.clone(),
                    room: Some(room),
                })
            }
            // Refused whatever the policy, so nothing is dropped while the queue is closed; the client retries.
            Admit::Closed => Err(QueueFull {
                policy: OnFull::Refuse,
            }),
            Admit::Full => {
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
        self.backend.open(self).await?;
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

    /// Stops taking work. A memory queue drains what is queued, giving up at `deadline`: what is left then is
    /// counted as failed. A persistent queue stops at once (exports in progress get until `deadline`) and keeps
    /// what it holds on disk for the next start.
    pub async fn shutdown(&self, deadline: Instant) {
        self.closing.cancel();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let drained = match join_until(workers, deadline).await {
            Ok(()) => true,
            Err(running) => {
                self.hard_stop.cancel();
                for h in running {
                    let _ = h.await;
                }
                false
            }
        };
        let carried = self.carry.lock().await.take();
        self.backend.close(self, carried, drained).await;
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
