//! The persistent variant of the sending queue: the batches live in a storage extension's log, not in memory.
//!
//! - Admission (`refuse` / `drop`) reserves room against the queue's `queue_size` and the storage's byte cap
//!   before the fan-out commits; `drop_oldest` instead makes room when writing, by acknowledging the oldest
//!   records not yet being sent (counted as failed).
//! - [`Reservation::send`](super::Reservation::send) returns only once the record is written, so the client's
//!   OK means the data is in the log.
//! - Workers take records oldest first (records of an earlier run come first), export them with the usual retry,
//!   and acknowledge them when the export succeeded or was given up on. A stop interrupts exports without
//!   acknowledging: those records are sent again after the restart (at-least-once).
//!
//! Storage calls block on file I/O, so they run on tokio's blocking threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{SendingQueue, WriteFailed, codec};
use crate::storage::{Record, RecordId, Storage, StorageClient, StorageError, StorageStats};
use crate::{Batch, ComponentError, OnFull, Sizer};

/// Room held for one batch between admission and write.
pub struct Hold {
    units: usize,
    bytes: u64,
}

#[derive(Default)]
struct Account {
    open: bool,
    stats: StorageStats,
    overhead: u64,
    max_bytes: Option<u64>,
    reserved_units: usize,
    reserved_bytes: u64,
}

impl Account {
    fn units(&self, sizer: Sizer) -> usize {
        let n = match sizer {
            Sizer::Requests => self.stats.records,
            Sizer::Items => self.stats.items,
            Sizer::Bytes => self.stats.bytes,
        };
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Whether `units`/`bytes` more fit (on top of reservations when `with_reserved`). Anything fits an empty
    /// queue, so a batch larger than the caps is not refused forever.
    fn fits(
        &self,
        sizer: Sizer,
        capacity: usize,
        units: usize,
        bytes: u64,
        with_reserved: bool,
    ) -> bool {
        let (ru, rb) = match with_reserved {
            true => (self.reserved_units, self.reserved_bytes),
            false => (0, 0),
        };
        let used_units = self.units(sizer) + ru;
        let used_bytes = self.stats.bytes + rb;
        let units_ok = used_units == 0 || used_units + units <= capacity;
        let bytes_ok = self
            .max_bytes
            .is_none_or(|m| used_bytes == 0 || used_bytes + bytes <= m);
        units_ok && bytes_ok
    }
}

/// A persistent queue's storage and bookkeeping.
pub struct Persistent {
    storage: Arc<dyn Storage>,
    /// `None` before start and after stop.
    client: StdMutex<Option<Box<dyn StorageClient>>>,
    /// Kept apart from `client` so admission never waits for file I/O.
    account: StdMutex<Account>,
    pub(super) notify: Notify,
    dropping: AtomicBool,
    /// The last write failed (logged once per episode).
    write_failing: AtomicBool,
}

fn lock<T>(m: &StdMutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Persistent {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Persistent {
            storage,
            client: StdMutex::new(None),
            account: StdMutex::new(Account::default()),
            notify: Notify::new(),
            dropping: AtomicBool::new(false),
            write_failing: AtomicBool::new(false),
        }
    }

    pub fn size(&self, sizer: Sizer) -> usize {
        lock(&self.account).units(sizer)
    }

    /// Whether the log is open (between start and stop).
    pub fn is_open(&self) -> bool {
        lock(&self.account).open
    }

    /// Reserves room for a batch costing `cost` units, or `None` when full (per the queue's policy).
    pub fn try_hold(&self, q: &SendingQueue, cost: usize, batch: &Batch) -> Option<Hold> {
        if q.on_full() == OnFull::DropOldest {
            return Some(Hold { units: 0, bytes: 0 });
        }
        let mut a = lock(&self.account);
        let bytes = a.overhead + codec::encoded_len(batch) as u64;
        let sizer = q.settings.sending_queue.sizer;
        if !a.fits(sizer, q.capacity, cost, bytes, true) {
            return None;
        }
        a.reserved_units += cost;
        a.reserved_bytes += bytes;
        Some(Hold { units: cost, bytes })
    }
}

impl SendingQueue {
    /// Gives back a hold that was never written.
    pub(super) fn release(&self, hold: Hold) {
        let Some(p) = &self.persistent else { return };
        let mut a = lock(&p.account);
        a.reserved_units = a.reserved_units.saturating_sub(hold.units);
        a.reserved_bytes = a.reserved_bytes.saturating_sub(hold.bytes);
    }

    /// Refreshes the account and gauges from the client (called with the client locked).
    fn refresh(&self, p: &Persistent, client: &dyn StorageClient) {
        let stats = client.stats();
        let (corrupt_before, ack_failures_before) = {
            let mut a = lock(&p.account);
            let before = (a.stats.corrupt, a.stats.ack_write_failures);
            a.stats = stats;
            before
        };
        if stats.ack_write_failures > ack_failures_before {
            let n = stats.ack_write_failures - ack_failures_before;
            self.gauges.write_failures.increment(n);
            tracing::warn!(exporter = %self.id, records = n,
                "persistent queue: cannot write acknowledgements; kept in memory and written again later");
        }
        if stats.corrupt > corrupt_before {
            let n = stats.corrupt - corrupt_before;
            self.gauges.corrupt.increment(n);
            tracing::warn!(exporter = %self.id, records = n,
                "persistent queue: damaged records (torn write or checksum mismatch) skipped");
        }
        self.gauges.bytes.set(stats.bytes as f64);
        self.update_size();
    }

    /// Opens this exporter's log; what an earlier run left is sent first.
    pub(super) async fn open_storage(self: Arc<Self>) -> Result<(), ComponentError> {
        let q = self.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let p = q
                .persistent
                .as_ref()
                .ok_or_else(|| StorageError("no storage".into()))?;
            let client = p.storage.open(&format!("exporter/{}", q.id))?;
            let stats = client.stats();
            {
                let mut a = lock(&p.account);
                a.open = true;
                a.overhead = client.record_overhead();
                a.max_bytes = client.max_bytes();
            }
            q.refresh(p, client.as_ref());
            *lock(&p.client) = Some(client);
            Ok::<_, StorageError>(stats)
        })
        .await
        .map_err(|e| ComponentError::new(&self.id, format!("opening the persistent queue: {e}")))?
        .map_err(|e| ComponentError::new(&self.id, format!("opening the persistent queue: {e}")))?;
        if opened.records > 0 {
            tracing::info!(exporter = %self.id, requests = opened.records, items = opened.items,
                bytes = opened.bytes, "persistent queue holds data from an earlier run; sending it first");
        }
        Ok(())
    }

    /// Writes a batch admitted by [`SendingQueue::try_reserve`], unseen by the workers until
    /// [`SendingQueue::publish_blocking`]; returns once it is in the log. `Ok(None)`: `drop_oldest` could not
    /// make room (counted as an enqueue failure, nothing written).
    pub(super) async fn stage(
        self: Arc<Self>,
        batch: Batch,
        hold: Hold,
    ) -> Result<Option<RecordId>, WriteFailed> {
        let q = self.clone();
        match tokio::task::spawn_blocking(move || q.stage_blocking(batch, hold)).await {
            Ok(r) => r,
            Err(e) => {
                self.gauges.write_failures.increment(1);
                Err(WriteFailed {
                    exporter: self.id.clone(),
                    reason: format!("write task failed: {e}"),
                })
            }
        }
    }

    fn stage_blocking(&self, batch: Batch, hold: Hold) -> Result<Option<RecordId>, WriteFailed> {
        let failed = |reason: String| WriteFailed {
            exporter: self.id.clone(),
            reason,
        };
        let Some(p) = &self.persistent else {
            return Err(failed("not a persistent queue".into()));
        };
        let data = codec::encode(&batch);
        let items = u32::try_from(batch.items).unwrap_or(u32::MAX);
        let mut guard = lock(&p.client);
        let Some(client) = guard.as_mut() else {
            drop(guard);
            self.release(hold);
            return Err(failed("the queue is closed".into()));
        };
        if self.on_full() == OnFull::DropOldest
            && !self.make_room(p, client.as_mut(), &batch, data.len())
        {
            self.release(hold);
            self.refresh(p, client.as_ref());
            self.counters.enqueue_failed.add(batch.signal, batch.items);
            return Ok(None);
        }
        let r = client.stage(&data, items);
        self.release(hold);
        self.refresh(p, client.as_ref());
        drop(guard);
        match r {
            Ok(id) => {
                if p.write_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(exporter = %self.id, "persistent queue: writes succeed again");
                }
                Ok(Some(id))
            }
            Err(e) => {
                self.gauges.write_failures.increment(1);
                if !p.write_failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(exporter = %self.id, error = %e,
                        "persistent queue: write failed; requests are refused (or dropped, per on_full) until writes succeed again");
                }
                // The client hears why, not where: file paths stay in the log.
                let full = e.0.contains("os error 28") || e.0.contains("os error 122");
                Err(failed(match full {
                    true => "its storage is full".into(),
                    false => "its storage failed to write".into(),
                }))
            }
        }
    }

    /// Lets the workers see a staged record.
    pub(super) fn publish_blocking(&self, id: RecordId) {
        let Some(p) = &self.persistent else { return };
        let mut guard = lock(&p.client);
        if let Some(client) = guard.as_mut() {
            client.publish(id);
        }
        drop(guard);
        p.notify.notify_one();
    }

    /// Forgets a staged record (its request was refused).
    pub(super) fn withdraw_blocking(&self, id: RecordId) {
        let Some(p) = &self.persistent else { return };
        let mut guard = lock(&p.client);
        let Some(client) = guard.as_mut() else { return };
        let r = client.withdraw(id);
        self.refresh(p, client.as_ref());
        drop(guard);
        if let Err(e) = r {
            tracing::error!(exporter = %self.id, error = %e, "persistent queue: cannot withdraw a refused request");
        }
    }

    /// `drop_oldest`: acknowledges the oldest records not being sent until the new one fits; false if it
    /// cannot (everything left is in flight).
    fn make_room(
        &self,
        p: &Persistent,
        client: &mut dyn StorageClient,
        batch: &Batch,
        len: usize,
    ) -> bool {
        let sizer = self.settings.sending_queue.sizer;
        let cost = self.cost(batch);
        loop {
            {
                let mut a = lock(&p.account);
                a.stats = client.stats();
                if a.fits(sizer, self.capacity, cost, a.overhead + len as u64, false) {
                    if p.dropping.swap(false, Ordering::Relaxed) {
                        tracing::info!(exporter = %self.id, "persistent queue has room again");
                    }
                    return true;
                }
            }
            let oldest = match client.next() {
                Ok(Some(r)) => r,
                Ok(None) => return false,
                Err(e) => {
                    tracing::error!(exporter = %self.id, error = %e, "persistent queue: cannot read the oldest record");
                    return false;
                }
            };
            if let Err(e) = client.ack(oldest.id) {
                tracing::error!(exporter = %self.id, error = %e, "persistent queue: cannot drop the oldest record");
                return false;
            }
            let signal = codec::decode(oldest.data).map_or(batch.signal, |b| b.signal);
            self.counters.send_failed.add(signal, oldest.items as usize);
            if !p.dropping.swap(true, Ordering::Relaxed) {
                tracing::warn!(exporter = %self.id, "persistent queue is full; dropping the oldest data (on_full: drop_oldest)");
            }
        }
    }

    pub(super) fn next_record(&self) -> Result<Option<Record>, StorageError> {
        let Some(p) = &self.persistent else {
            return Ok(None);
        };
        let mut guard = lock(&p.client);
        let Some(client) = guard.as_mut() else {
            return Ok(None);
        };
        let r = client.next();
        self.refresh(p, client.as_ref());
        r
    }

    pub(super) async fn ack(self: &Arc<Self>, id: RecordId) {
        self.ack_all(vec![id]).await
    }

    /// Acknowledges records together (a batch's), in one blocking call.
    pub(super) async fn ack_all(self: &Arc<Self>, ids: Vec<RecordId>) {
        let q = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let Some(p) = &q.persistent else {
                return Ok(());
            };
            let mut guard = lock(&p.client);
            let Some(client) = guard.as_mut() else {
                return Ok(());
            };
            let mut r = Ok(());
            for id in ids {
                if let Err(e) = client.ack(id) {
                    r = Err(e);
                }
            }
            q.refresh(p, client.as_ref());
            r
        })
        .await;
        let err = match done {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(exporter = %self.id, error = %err,
            "persistent queue: cannot record a delivery; the request may be sent again after a restart");
    }

    /// Stops the workers (exports in progress get until `deadline`), then closes the log: what is queued stays
    /// on disk for the next start.
    pub(super) async fn shutdown_persistent(&self, deadline: Instant) {
        self.closing.cancel();
        let mut handles: Vec<tokio::task::JoinHandle<()>> =
            std::mem::take(&mut *lock(&self.workers));
        let stopped = tokio::time::timeout_at(deadline, async {
            for h in handles.iter_mut() {
                let _ = h.await;
            }
        })
        .await;
        if stopped.is_err() {
            self.hard_stop.cancel();
            for h in handles {
                let _ = h.await;
            }
        }
        let Some(p) = &self.persistent else { return };
        let client = lock(&p.client).take();
        if let Some(client) = client {
            let s = client.stats();
            drop(client);
            lock(&p.account).open = false;
            if s.records > 0 {
                tracing::info!(exporter = %self.id, requests = s.records, items = s.items, bytes = s.bytes,
                    "persistent queue stopped; its data stays on disk and is sent after the next start");
            }
        }
    }
}
