//! The persistent queue's storage and bookkeeping: the storage client (file I/O, called on blocking threads)
//! and an account of what the log holds and what admission has reserved (kept apart so admission never waits for
//! file I/O). The sending queue passed to each call is only the context: its id, settings, counters and gauges.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};

use tokio::sync::Notify;

use super::super::{SendingQueue, WriteFailed, codec};
use crate::storage::{Record, RecordId, Storage, StorageClient, StorageError, StorageStats};
use crate::{Batch, OnFull, Sizer};

/// Room held for one batch between admission and write.
pub(in crate::queue) struct Hold {
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

/// A persistent queue's storage and bookkeeping, shared with the blocking tasks that do its file I/O.
pub(in crate::queue) struct Log {
    storage: Arc<dyn Storage>,
    /// `None` before start and after stop.
    client: StdMutex<Option<Box<dyn StorageClient>>>,
    /// Kept apart from `client` so admission never waits for file I/O.
    account: StdMutex<Account>,
    /// Wakes a worker waiting for a record.
    pub(in crate::queue) notify: Notify,
    dropping: AtomicBool,
    /// The last write failed (logged once per episode).
    write_failing: AtomicBool,
}

fn lock<T>(m: &StdMutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Log {
    pub(in crate::queue) fn new(storage: Arc<dyn Storage>) -> Self {
        Log {
            storage,
            client: StdMutex::new(None),
            account: StdMutex::new(Account::default()),
            notify: Notify::new(),
            dropping: AtomicBool::new(false),
            write_failing: AtomicBool::new(false),
        }
    }

    pub(in crate::queue) fn size(&self, sizer: Sizer) -> usize {
        lock(&self.account).units(sizer)
    }

    /// Whether the log is open (between start and stop).
    pub(in crate::queue) fn is_open(&self) -> bool {
        lock(&self.account).open
    }

    /// Reserves room for a batch costing `cost` units, or `None` when full (per the queue's policy).
    pub(in crate::queue) fn try_hold(
        &self,
        q: &SendingQueue,
        cost: usize,
        batch: &Batch,
    ) -> Option<Hold> {
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

    /// Gives back a hold that was never written.
    pub(in crate::queue) fn release(&self, hold: Hold) {
        let mut a = lock(&self.account);
        a.reserved_units = a.reserved_units.saturating_sub(hold.units);
        a.reserved_bytes = a.reserved_bytes.saturating_sub(hold.bytes);
    }

    /// Refreshes the account and gauges from the client (called with the client locked).
    fn refresh(&self, q: &SendingQueue, client: &dyn StorageClient) {
        let stats = client.stats();
        let (corrupt_before, ack_failures_before) = {
            let mut a = lock(&self.account);
            let before = (a.stats.corrupt, a.stats.ack_write_failures);
            a.stats = stats;
            before
        };
        if stats.ack_write_failures > ack_failures_before {
            let n = stats.ack_write_failures - ack_failures_before;
            q.gauges.write_failures.increment(n);
            tracing::warn!(exporter = %q.id, records = n,
                "persistent queue: cannot write acknowledgements; kept in memory and written again later");
        }
        if stats.corrupt > corrupt_before {
            let n = stats.corrupt - corrupt_before;
            q.gauges.corrupt.increment(n);
            tracing::warn!(exporter = %q.id, records = n,
                "persistent queue: damaged records (torn write or checksum mismatch) skipped");
        }
        q.gauges.bytes.set(stats.bytes as f64);
        q.update_size();
    }

    /// Opens this exporter's log; returns what an earlier run left in it.
    pub(in crate::queue) fn open_blocking(
        &self,
        q: &SendingQueue,
    ) -> Result<StorageStats, StorageError> {
        let client = self.storage.open(&format!("exporter/{}", q.id))?;
        let stats = client.stats();
        {
            let mut a = lock(&self.account);
            a.open = true;
            a.overhead = client.record_overhead();
            a.max_bytes = client.max_bytes();
        }
        self.refresh(q, client.as_ref());
        *lock(&self.client) = Some(client);
        Ok(stats)
    }

    /// Writes an admitted batch, unseen by the workers until [`Log::publish_blocking`]; returns once it is in
    /// the log. `Ok(None)`: `drop_oldest` could not make room (counted as an enqueue failure, nothing written).
    pub(in crate::queue) fn stage_blocking(
        &self,
        q: &SendingQueue,
        batch: Batch,
        hold: Hold,
    ) -> Result<Option<RecordId>, WriteFailed> {
        let failed = |reason: String| WriteFailed {
            exporter: q.id.clone(),
            reason,
        };
        let data = codec::encode(&batch);
        let items = u32::try_from(batch.items).unwrap_or(u32::MAX);
        let mut guard = lock(&self.client);
        let Some(client) = guard.as_mut() else {
            drop(guard);
            self.release(hold);
            return Err(failed("the queue is closed".into()));
        };
        if q.on_full() == OnFull::DropOldest
            && !self.make_room(q, client.as_mut(), &batch, data.len())
        {
            self.release(hold);
            self.refresh(q, client.as_ref());
            q.counters.enqueue_failed.add(batch.signal, batch.items);
            return Ok(None);
        }
        let r = client.stage(&data, items);
        self.release(hold);
        self.refresh(q, client.as_ref());
        drop(guard);
        match r {
            Ok(id) => {
                if self.write_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(exporter = %q.id, "persistent queue: writes succeed again");
                }
                Ok(Some(id))
            }
            Err(e) => {
                q.gauges.write_failures.increment(1);
                if !self.write_failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(exporter = %q.id, error = %e,
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
    pub(in crate::queue) fn publish_blocking(&self, id: RecordId) {
        let mut guard = lock(&self.client);
        if let Some(client) = guard.as_mut() {
            client.publish(id);
        }
        drop(guard);
        self.notify.notify_one();
    }

    /// Forgets a staged record (its request was refused).
    pub(in crate::queue) fn withdraw_blocking(&self, q: &SendingQueue, id: RecordId) {
        let mut guard = lock(&self.client);
        let Some(client) = guard.as_mut() else { return };
        let r = client.withdraw(id);
        self.refresh(q, client.as_ref());
        drop(guard);
        if let Err(e) = r {
            tracing::error!(exporter = %q.id, error = %e, "persistent queue: cannot withdraw a refused request");
        }
    }

    /// `drop_oldest`: acknowledges the oldest records not being sent until the new one fits; false if it
    /// cannot (everything left is in flight).
    fn make_room(
        &self,
        q: &SendingQueue,
        client: &mut dyn StorageClient,
        batch: &Batch,
        len: usize,
    ) -> bool {
        let sizer = q.settings.sending_queue.sizer;
        let cost = q.cost(batch);
        loop {
            {
                let mut a = lock(&self.account);
                a.stats = client.stats();
                if a.fits(sizer, q.capacity, cost, a.overhead + len as u64, false) {
                    if self.dropping.swap(false, Ordering::Relaxed) {
                        tracing::info!(exporter = %q.id, "persistent queue has room again");
                    }
                    return true;
                }
            }
            let oldest = match client.next() {
                Ok(Some(r)) => r,
                Ok(None) => return false,
                Err(e) => {
                    tracing::error!(exporter = %q.id, error = %e, "persistent queue: cannot read the oldest record");
                    return false;
                }
            };
            if let Err(e) = client.ack(oldest.id) {
                tracing::error!(exporter = %q.id, error = %e, "persistent queue: cannot drop the oldest record");
                return false;
            }
            let signal = codec::decode(oldest.data).map_or(batch.signal, |b| b.signal);
            q.counters.send_failed.add(signal, oldest.items as usize);
            if !self.dropping.swap(true, Ordering::Relaxed) {
                tracing::warn!(exporter = %q.id, "persistent queue is full; dropping the oldest data (on_full: drop_oldest)");
            }
        }
    }

    /// The oldest published record not being sent, if any.
    pub(in crate::queue) fn next_record(
        &self,
        q: &SendingQueue,
    ) -> Result<Option<Record>, StorageError> {
        let mut guard = lock(&self.client);
        let Some(client) = guard.as_mut() else {
            return Ok(None);
        };
        let r = client.next();
        self.refresh(q, client.as_ref());
        r
    }

    /// Acknowledges records together (a batch's).
    pub(in crate::queue) fn ack_blocking(
        &self,
        q: &SendingQueue,
        ids: Vec<RecordId>,
    ) -> Result<(), StorageError> {
        let mut guard = lock(&self.client);
        let Some(client) = guard.as_mut() else {
            return Ok(());
        };
        let mut r = Ok(());
        for id in ids {
            if let Err(e) = client.ack(id) {
                r = Err(e);
            }
        }
        self.refresh(q, client.as_ref());
        r
    }

    /// Closes the log: what is queued stays on disk for the next start.
    pub(in crate::queue) fn close(&self, q: &SendingQueue) {
        let client = lock(&self.client).take();
        if let Some(client) = client {
            let s = client.stats();
            drop(client);
            lock(&self.account).open = false;
            if s.records > 0 {
                tracing::info!(exporter = %q.id, requests = s.records, items = s.items, bytes = s.bytes,
                    "persistent queue stopped; its data stays on disk and is sent after the next start");
            }
        }
    }
}
