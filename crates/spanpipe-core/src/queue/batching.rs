//! `sending_queue.batch`: batching inside the exporter's queue (the OTel Collector's exporterhelper batcher), so a
//! request is admitted — written to the persistent queue, or holding its room in the memory queue — *before* the
//! client is answered, and only merged with others when the workers read it out for export. Unlike a `batch`
//! processor in front of the queue, nothing acknowledged ever sits in a buffer that a SIGKILL would lose.
//!
//! One worker at a time collects (under the memory queue's receiver lock, or [`Collect`] for a persistent one):
//! it takes queued requests until `min_size` (in the batch `sizer`'s unit) is reached or `flush_timeout` passed
//! since the first, never past `max_size`; then it exports the merged batch while the next worker collects. Only
//! requests of one signal with equal client metadata are merged: a request that does not fit (another signal or
//! metadata, or past `max_size`) is carried over to start the next batch. A persistent queue acknowledges the
//! records of a batch together once its export succeeded or was given up; a stop before that leaves all of them
//! on disk, to be sent again after the restart.

use std::time::Duration;

use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;
use tokio::time::Instant;

use super::{Outcome, Queued, SendingQueue, codec};
use crate::Batch;
use crate::storage::{Record, RecordId};

/// What `sending_queue.batch` sizes count.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BatchSizer {
    /// Spans, metric data points, log records.
    #[default]
    Items,
    /// Bytes of the encoded OTLP payload.
    Bytes,
    /// Requests as received.
    Requests,
}

/// `sending_queue.batch` settings (the OTel Collector's names and defaults). `batch:` with no value (null) or
/// `batch: {}` enables batching with these defaults.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSettings {
    /// A batch is exported this long after its first request at the latest, whatever its size.
    pub flush_timeout: ConfigDuration,
    /// A batch is exported as soon as it reaches this size (in `sizer` units).
    pub min_size: usize,
    /// No batch grows past this (0: no limit). A single request larger than it is sent whole, not split.
    pub max_size: usize,
    pub sizer: BatchSizer,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            flush_timeout: ConfigDuration(Duration::from_millis(200)),
            min_size: 8192,
            max_size: 0,
            sizer: BatchSizer::Items,
        }
    }
}

impl BatchSettings {
    /// Checks ranges; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.flush_timeout.0.is_zero() {
            return Err("flush_timeout must be greater than 0".into());
        }
        if self.max_size != 0 && self.max_size < self.min_size {
            return Err(format!(
                "max_size ({}) must be 0 or at least min_size ({})",
                self.max_size, self.min_size
            ));
        }
        Ok(())
    }

    /// The size of `batch` in the sizer's unit.
    pub fn size_of(&self, batch: &Batch) -> usize {
        match self.sizer {
            BatchSizer::Items => batch.items,
            BatchSizer::Bytes => batch.payload.len(),
            BatchSizer::Requests => 1,
        }
    }
}

/// `batch:` with a null value enables batching with the defaults (as `batch: {}`); an absent key leaves it off.
pub(crate) fn null_is_default<'de, D>(d: D) -> Result<Option<BatchSettings>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Some(
        Option::<BatchSettings>::deserialize(d)?.unwrap_or_default(),
    ))
}

/// Whether `b` may be merged into a batch started by `first`.
fn compatible(first: &Batch, b: &Batch) -> bool {
    first.signal == b.signal && first.metadata == b.metadata
}

/// A batch being collected: what joins it, and whether the next one fits.
struct Collecting {
    size: usize,
    max: usize,
}

impl Collecting {
    fn fits(&self, first: &Batch, b: &Batch, size: usize) -> bool {
        compatible(first, b) && (self.max == 0 || self.size + size <= self.max)
    }
}

/// A persistent queue's collecting state: the record carried over to start the next batch.
#[derive(Default)]
pub(super) struct Collect {
    carry: Option<(RecordId, Batch)>,
}

/// The memory queue's carried-over request.
#[derive(Default)]
pub(super) struct MemoryCarry {
    pub(super) carry: Option<Queued>,
}

impl SendingQueue {
    fn batch_settings(&self) -> Option<&BatchSettings> {
        self.settings.sending_queue.batch.as_ref()
    }

    /// Memory queue with batching: one worker collects under the receiver lock, then exports.
    pub(super) async fn batching_worker(self: std::sync::Arc<Self>) {
        let Some(cfg) = self.batch_settings().cloned() else {
            return;
        };
        loop {
            let taken = self.collect_memory(&cfg).await;
            if taken.is_empty() {
                break;
            }
            let parts: Vec<Batch> = taken.iter().map(|q| q.batch.clone()).collect();
            if let Some(batch) = Batch::concat(parts) {
                self.deliver(&batch).await;
            }
            drop(taken);
            self.update_size();
        }
    }

    /// Takes the requests of one batch; empty once the queue is closed and drained.
    async fn collect_memory(&self, cfg: &BatchSettings) -> Vec<Queued> {
        let mut rx = self.rx.lock().await;
        let carried = self.memory_carry.lock().await.carry.take();
        let first = match carried {
            Some(q) => q,
            None => {
                let next = if self.closing.is_cancelled() {
                    rx.try_recv().ok()
                } else {
                    tokio::select! {
                        biased;
                        m = rx.recv() => m,
                        _ = self.closing.cancelled() => rx.try_recv().ok(),
                    }
                };
                match next {
                    Some(q) => q,
                    None => return Vec::new(),
                }
            }
        };
        let deadline = Instant::now() + cfg.flush_timeout.0;
        let mut c = Collecting {
            size: cfg.size_of(&first.batch),
            max: cfg.max_size,
        };
        let mut taken = vec![first];
        // Bounded: by min_size, by the deadline, and by what is queued (each round takes one request or stops).
        while c.size < cfg.min_size {
            let next = if self.closing.is_cancelled() {
                rx.try_recv().ok()
            } else {
                tokio::select! {
                    biased;
                    m = rx.recv() => m,
                    _ = tokio::time::sleep_until(deadline) => None,
                    _ = self.closing.cancelled() => rx.try_recv().ok(),
                }
            };
            let Some(q) = next else { break };
            let size = cfg.size_of(&q.batch);
            if !c.fits(&taken[0].batch, &q.batch, size) {
                self.memory_carry.lock().await.carry = Some(q);
                break;
            }
            c.size += size;
            taken.push(q);
        }
        taken
    }

    /// Persistent queue with batching: collect records (one worker at a time), export them merged, acknowledge
    /// them together. Stops at shutdown leaving what it holds on disk.
    pub(super) async fn persistent_batching_worker(self: std::sync::Arc<Self>) {
        let Some(cfg) = self.batch_settings().cloned() else {
            return;
        };
        while !self.closing.is_cancelled() {
            let (ids, parts) = self.collect_persistent(&cfg).await;
            if self.closing.is_cancelled() {
                // Handed out but not acknowledged: sent again after the restart.
                break;
            }
            if parts.is_empty() {
                self.ack_all(ids).await;
                continue;
            }
            let Some(batch) = Batch::concat(parts) else {
                continue;
            };
            if self.deliver_outcome(&batch).await == Outcome::Interrupted {
                break;
            }
            self.ack_all(ids).await;
        }
    }

    /// The record ids and decoded requests of one batch (undecodable records are counted and listed for
    /// acknowledgement only).
    async fn collect_persistent(
        self: &std::sync::Arc<Self>,
        cfg: &BatchSettings,
    ) -> (Vec<RecordId>, Vec<Batch>) {
        let Some(p) = &self.persistent else {
            return (Vec::new(), Vec::new());
        };
        let mut collect = self.collect.lock().await;
        let mut ids = Vec::new();
        let mut parts: Vec<Batch> = Vec::new();
        let mut c = Collecting {
            size: 0,
            max: cfg.max_size,
        };
        let mut deadline: Option<Instant> = None;
        if let Some((id, b)) = collect.carry.take() {
            c.size = cfg.size_of(&b);
            ids.push(id);
            parts.push(b);
            deadline = Some(Instant::now() + cfg.flush_timeout.0);
        }
        // Bounded: by min_size, by the flush deadline once a first request is in, and by shutdown.
        while c.size < cfg.min_size || parts.is_empty() {
            if self.closing.is_cancelled() {
                break;
            }
            match self.read_one().await {
                Ok(Some(record)) => {
                    p.notify.notify_one();
                    let id = record.id;
                    let Some(b) = self.decode_or_count(record) else {
                        ids.push(id);
                        continue;
                    };
                    let size = cfg.size_of(&b);
                    if let Some(first) = parts.first()
                        && !c.fits(first, &b, size)
                    {
                        collect.carry = Some((id, b));
                        break;
                    }
                    c.size += size;
                    ids.push(id);
                    parts.push(b);
                    deadline.get_or_insert_with(|| Instant::now() + cfg.flush_timeout.0);
                }
                Ok(None) => {
                    let wait = async {
                        match deadline {
                            Some(d) => tokio::time::sleep_until(d).await,
                            None => std::future::pending().await,
                        }
                    };
                    let timed_out = tokio::select! {
                        _ = p.notify.notified() => false,
                        _ = wait => true,
                        _ = self.closing.cancelled() => true,
                    };
                    if timed_out {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(exporter = %self.id, error = %e, "persistent queue: read failed; retrying in 1s");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = self.closing.cancelled() => {}
                    }
                    if !parts.is_empty() {
                        break;
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        (ids, parts)
    }

    async fn read_one(self: &std::sync::Arc<Self>) -> Result<Option<Record>, String> {
        let q = self.clone();
        match tokio::task::spawn_blocking(move || q.next_record()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn decode_or_count(&self, record: Record) -> Option<Batch> {
        match codec::decode(record.data) {
            Ok(b) => Some(b),
            Err(e) => {
                self.gauges.corrupt.increment(1);
                tracing::warn!(exporter = %self.id, error = %e, "persistent queue: undecodable record skipped");
                None
            }
        }
    }
}
