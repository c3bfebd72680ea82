//! The persistent backend of the sending queue (the OTel Collector's `persistent_queue`): the batches live in a
//! storage extension's log (`log.rs`), not in memory.
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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::backend::{Admit, QueueBackend, Room, Take, Taken, Token};
use super::{SendingQueue, WriteFailed, codec};
use crate::storage::{RecordId, Storage};
use crate::{Batch, ComponentError};

mod log;

use self::log::{Hold, Log};

/// A queue kept in a storage extension's log.
pub(super) struct PersistentQueue {
    log: Arc<Log>,
}

impl PersistentQueue {
    pub(super) fn new(storage: Arc<dyn Storage>) -> Self {
        PersistentQueue {
            log: Arc::new(Log::new(storage)),
        }
    }
}

/// Acknowledges records together (a batch's), in one blocking call.
async fn ack_all(log: &Arc<Log>, q: &Arc<SendingQueue>, ids: Vec<RecordId>) {
    let (log2, q2) = (log.clone(), q.clone());
    let err = match tokio::task::spawn_blocking(move || log2.ack_blocking(&q2, ids)).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::error!(exporter = %q.id, error = %err,
        "persistent queue: cannot record a delivery; the request may be sent again after a restart");
}

#[async_trait]
impl QueueBackend for PersistentQueue {
    fn size(&self, q: &SendingQueue) -> usize {
        self.log.size(q.settings.sending_queue.sizer)
    }

    fn try_admit(&self, q: &Arc<SendingQueue>, cost: usize, batch: &Batch) -> Admit {
        if !self.log.is_open() {
            // Not started yet, or stopped (a reload starting the next instance).
            return Admit::Closed;
        }
        match self.log.try_hold(q, cost, batch) {
            Some(hold) => Admit::Room(Box::new(PersistentRoom {
                queue: q.clone(),
                log: self.log.clone(),
                hold: Some(hold),
                staged: None,
            })),
            None => Admit::Full,
        }
    }

    async fn open(&self, q: &Arc<SendingQueue>) -> Result<(), ComponentError> {
        let (log, q2) = (self.log.clone(), q.clone());
        let opened = tokio::task::spawn_blocking(move || log.open_blocking(&q2))
            .await
            .map_err(|e| ComponentError::new(&q.id, format!("opening the persistent queue: {e}")))?
            .map_err(|e| {
                ComponentError::new(&q.id, format!("opening the persistent queue: {e}"))
            })?;
        if opened.records > 0 {
            tracing::info!(exporter = %q.id, requests = opened.records, items = opened.items,
                bytes = opened.bytes, "persistent queue holds data from an earlier run; sending it first");
        }
        Ok(())
    }

    async fn take(&self, q: &Arc<SendingQueue>, until: Option<Instant>) -> Take {
        // Bounded: each round takes a record, skips an undecodable one, or waits (for a record, the deadline or
        // the stop).
        loop {
            if q.closing.is_cancelled() {
                return Take::Closed;
            }
            if until.is_some_and(|d| Instant::now() >= d) {
                return Take::TimedOut;
            }
            let r = {
                let (log, q2) = (self.log.clone(), q.clone());
                tokio::task::spawn_blocking(move || log.next_record(&q2)).await
            };
            match r {
                Ok(Ok(Some(record))) => {
                    // More may be waiting: let an idle worker look too.
                    self.log.notify.notify_one();
                    let id = record.id;
                    match codec::decode(record.data) {
                        Ok(batch) => {
                            return Take::Got(Taken {
                                batch,
                                token: Token::Record(id),
                            });
                        }
                        Err(e) => {
                            q.gauges.corrupt.increment(1);
                            tracing::warn!(exporter = %q.id, error = %e,
                                "persistent queue: undecodable record skipped");
                            ack_all(&self.log, q, vec![id]).await;
                        }
                    }
                }
                Ok(Ok(None)) => {
                    let deadline = async {
                        match until {
                            Some(d) => tokio::time::sleep_until(d).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = self.log.notify.notified() => {}
                        _ = deadline => return Take::TimedOut,
                        _ = q.closing.cancelled() => return Take::Closed,
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(exporter = %q.id, error = %e, "persistent queue: read failed; retrying in 1s");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = q.closing.cancelled() => return Take::Closed,
                    }
                }
                Err(e) => {
                    tracing::error!(exporter = %q.id, error = %e, "persistent queue: read task failed");
                    return Take::Closed;
                }
            }
        }
    }

    async fn done(&self, q: &Arc<SendingQueue>, tokens: Vec<Token>) {
        let ids: Vec<RecordId> = tokens
            .into_iter()
            .filter_map(|t| match t {
                Token::Record(id) => Some(id),
                Token::Memory { .. } => None,
            })
            .collect();
        ack_all(&self.log, q, ids).await;
    }

    fn keeps_on_stop(&self) -> bool {
        true
    }

    async fn close(&self, q: &SendingQueue, carried: Option<Taken>, _drained: bool) {
        // A carried record was never acknowledged: it stays in the log with the rest.
        drop(carried);
        self.log.close(q);
    }
}

/// Room in the persistent queue: held until the record is written, then the staged record until published.
struct PersistentRoom {
    queue: Arc<SendingQueue>,
    log: Arc<Log>,
    /// Room held until the record is written.
    hold: Option<Hold>,
    /// A record written by `prepare`, published by `commit`.
    staged: Option<RecordId>,
}

impl Drop for PersistentRoom {
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            self.log.release(hold);
        }
        if let Some(id) = self.staged.take() {
            // Never committed (the request was refused, or its task cancelled): forget the record.
            let (log, q) = (self.log.clone(), self.queue.clone());
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn_blocking(move || log.withdraw_blocking(&q, id));
                }
                Err(_) => log.withdraw_blocking(&q, id),
            }
        }
    }
}

#[async_trait]
impl Room for PersistentRoom {
    fn writes(&self) -> bool {
        true
    }

    async fn prepare(&mut self, batch: &Batch) -> Result<(), WriteFailed> {
        let Some(hold) = self.hold.take() else {
            return Ok(());
        };
        let (log, q, batch) = (self.log.clone(), self.queue.clone(), batch.clone());
        self.staged =
            match tokio::task::spawn_blocking(move || log.stage_blocking(&q, batch, hold)).await {
                Ok(r) => r?,
                Err(e) => {
                    self.queue.gauges.write_failures.increment(1);
                    return Err(WriteFailed {
                        exporter: self.queue.id.clone(),
                        reason: format!("write task failed: {e}"),
                    });
                }
            };
        Ok(())
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(id) = self.staged.take() {
            let (log, q) = (self.log.clone(), self.queue.clone());
            if tokio::task::spawn_blocking(move || log.withdraw_blocking(&q, id))
                .await
                .is_err()
            {
                tracing::error!(exporter = %self.queue.id, "persistent queue: withdraw task failed");
            }
        }
    }

    async fn commit(mut self: Box<Self>, _batch: Batch) {
        // The batch is in the log since `prepare`; publishing lets the workers see it.
        if let Some(id) = self.staged.take() {
            let log = self.log.clone();
            if tokio::task::spawn_blocking(move || log.publish_blocking(id))
                .await
                .is_err()
            {
                tracing::error!(exporter = %self.queue.id, "persistent queue: publish task failed");
            }
        }
    }
}
