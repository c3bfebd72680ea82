//! The queue itself, apart from the workers and the retry layer: one [`QueueBackend`] per sending queue, the
//! memory channel (`memory.rs`) or a storage extension's log (`persistent.rs`), as the OTel Collector's
//! exporterhelper has `memory_queue` and `persistent_queue` behind one queue interface.
//!
//! A backend answers both sides of the queue: admission ([`QueueBackend::try_admit`], giving a [`Room`] that the
//! fan-out prepares and commits) and consumption ([`QueueBackend::take`] / [`QueueBackend::done`], called by the
//! one worker loop in `worker.rs`). The backends differ in what a taken request holds until it is done (a memory
//! queue's room, a persistent queue's record to acknowledge) and in what a stop means: a memory queue drains what
//! it holds, a persistent queue stops at once and leaves what it holds on disk for the next start.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::{SendingQueue, WriteFailed};
use crate::storage::RecordId;
use crate::{Batch, ComponentError};

/// What a taken request holds until its export ended.
pub(super) enum Token {
    /// Its room in the memory queue (given back when dropped).
    Memory { _room: Option<OwnedSemaphorePermit> },
    /// Its record in the persistent log (acknowledged when done).
    Record(RecordId),
}

/// A request taken out of the queue for export.
pub(super) struct Taken {
    pub(super) batch: Batch,
    pub(super) token: Token,
}

/// What [`QueueBackend::take`] found.
pub(super) enum Take {
    Got(Taken),
    /// Nothing arrived before the deadline.
    TimedOut,
    /// The queue is stopping: no more for this worker.
    Closed,
}

/// What [`QueueBackend::try_admit`] decided.
pub(super) enum Admit {
    /// Room for the batch, held until committed or dropped.
    Room(Box<dyn Room>),
    /// No room: the queue's `on_full` policy applies.
    Full,
    /// The queue cannot take anything now (a persistent log not open yet, or closed): refused whatever the
    /// policy, so nothing is dropped while it is closed; the client retries.
    Closed,
}

/// Where a sending queue keeps its requests between admission and export.
#[async_trait]
pub(super) trait QueueBackend: Send + Sync {
    /// Occupancy in the queue's sizer unit (queued plus being exported).
    fn size(&self, q: &SendingQueue) -> usize;

    /// Reserves room for `batch`, costing `cost` sizer units, without waiting.
    fn try_admit(&self, q: &Arc<SendingQueue>, cost: usize, batch: &Batch) -> Admit;

    /// Called once before the workers start (a persistent queue opens its log; what an earlier run left is sent
    /// first).
    async fn open(&self, q: &Arc<SendingQueue>) -> Result<(), ComponentError>;

    /// The next request, waiting until `until` (`None`: until one comes or the queue stops).
    async fn take(&self, q: &Arc<SendingQueue>, until: Option<Instant>) -> Take;

    /// The export of these requests ended (delivered, or counted as failed): forget them.
    async fn done(&self, q: &Arc<SendingQueue>, tokens: Vec<Token>);

    /// Whether a stop leaves taken-but-unsent requests in place (persistent) rather than sending them (memory).
    fn keeps_on_stop(&self) -> bool;

    /// After the workers stopped (`drained`: within the shutdown deadline): a memory queue counts what is still
    /// queued, and `carried` (taken by a batching worker, not sent), as failed; a persistent queue closes its
    /// log, keeping both on disk.
    async fn close(&self, q: &SendingQueue, carried: Option<Taken>, drained: bool);
}

/// Room admitted in a backend for one batch. Admission is two-phase so the fan-out can make it all-or-nothing:
/// [`Room::prepare`] does whatever can fail (a persistent queue writes the record, unseen by its workers),
/// [`Room::commit`] cannot fail. Dropping a room gives it back (and forgets a staged record).
#[async_trait]
pub(super) trait Room: Send {
    /// Whether [`Room::prepare`] writes (and may fail).
    fn writes(&self) -> bool;

    /// Writes the batch where that can fail, before the client is answered; nothing visible to the workers yet.
    async fn prepare(&mut self, batch: &Batch) -> Result<(), WriteFailed>;

    /// Forgets what [`Room::prepare`] wrote and gives the room back (the request is refused).
    async fn abort(self: Box<Self>);

    /// Hands the batch to the workers.
    async fn commit(self: Box<Self>, batch: Batch);
}
