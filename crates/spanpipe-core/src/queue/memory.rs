//! The memory backend of the sending queue (the OTel Collector's `memory_queue`): an unbounded channel whose
//! capacity is a semaphore in the sizer's unit. A batch holds its permits until its export ended, so the queue
//! size counts in-flight work too. A stop drains what is queued within the shutdown deadline; what is left then is
//! counted as failed.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use super::backend::{Admit, QueueBackend, Room, Take, Taken, Token};
use super::{SendingQueue, WriteFailed};
use crate::{Batch, ComponentError};

/// A queued batch with its room.
struct Queued {
    batch: Batch,
    permit: Option<OwnedSemaphorePermit>,
}

/// The in-memory queue.
pub(super) struct MemoryQueue {
    capacity: usize,
    sem: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Queued>,
    rx: Mutex<mpsc::UnboundedReceiver<Queued>>,
}

impl MemoryQueue {
    /// A queue holding at most `capacity` sizer units.
    pub(super) fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        MemoryQueue {
            capacity,
            sem: Arc::new(Semaphore::new(capacity)),
            tx,
            rx: Mutex::new(rx),
        }
    }
}

#[async_trait]
impl QueueBackend for MemoryQueue {
    fn size(&self, _q: &SendingQueue) -> usize {
        self.capacity - self.sem.available_permits().min(self.capacity)
    }

    fn try_admit(&self, q: &Arc<SendingQueue>, cost: usize, _batch: &Batch) -> Admit {
        let units = u32::try_from(cost).unwrap_or(u32::MAX);
        match self.sem.clone().try_acquire_many_owned(units) {
            Ok(permit) => {
                q.update_size();
                Admit::Room(Box::new(MemoryRoom {
                    queue: q.clone(),
                    tx: self.tx.clone(),
                    permit: Some(permit),
                }))
            }
            Err(_) => Admit::Full,
        }
    }

    async fn open(&self, _q: &Arc<SendingQueue>) -> Result<(), ComponentError> {
        Ok(())
    }

    async fn take(&self, q: &Arc<SendingQueue>, until: Option<Instant>) -> Take {
        let mut rx = self.rx.lock().await;
        let next = if q.closing.is_cancelled() {
            // Draining at shutdown: what is queued, without waiting.
            match rx.try_recv() {
                Ok(m) => Some(m),
                Err(_) => return Take::Closed,
            }
        } else {
            let deadline = async {
                match until {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(m) => Some(m),
                    None => return Take::Closed,
                },
                _ = deadline => None,
                _ = q.closing.cancelled() => match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(_) => return Take::Closed,
                },
            }
        };
        match next {
            Some(m) => Take::Got(Taken {
                batch: m.batch,
                token: Token::Memory { _room: m.permit },
            }),
            None => Take::TimedOut,
        }
    }

    async fn done(&self, q: &Arc<SendingQueue>, tokens: Vec<Token>) {
        drop(tokens);
        q.update_size();
    }

    fn keeps_on_stop(&self) -> bool {
        false
    }

    async fn close(&self, q: &SendingQueue, carried: Option<Taken>, drained: bool) {
        // Whatever no worker took (the deadline passed, or the queue never started: a reload whose successor
        // failed to start) is counted as failed, never dropped silently.
        let mut rx = self.rx.lock().await;
        let mut lost = 0usize;
        if let Some(t) = carried {
            q.counters.send_failed.add(t.batch.signal, t.batch.items);
            lost += t.batch.items;
        }
        while let Ok(m) = rx.try_recv() {
            q.counters.send_failed.add(m.batch.signal, m.batch.items);
            lost += m.batch.items;
        }
        if lost > 0 || !drained {
            tracing::error!(exporter = %q.id, items = lost, "shutdown deadline reached or queue never started; queued data not delivered");
        }
    }
}

/// Room in the memory queue: its permits, moved into the queue on commit.
struct MemoryRoom {
    queue: Arc<SendingQueue>,
    tx: mpsc::UnboundedSender<Queued>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for MemoryRoom {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            drop(permit);
            self.queue.update_size();
        }
    }
}

#[async_trait]
impl Room for MemoryRoom {
    fn writes(&self) -> bool {
        false
    }

    async fn prepare(&mut self, _batch: &Batch) -> Result<(), WriteFailed> {
        Ok(())
    }

    async fn abort(self: Box<Self>) {}

    async fn commit(mut self: Box<Self>, batch: Batch) {
        let queued = Queued {
            batch,
            permit: self.permit.take(),
        };
        if let Err(mpsc::error::SendError(m)) = self.tx.send(queued) {
            // Only once the receiving side is gone: count, never lose silently.
            self.queue
                .counters
                .send_failed
                .add(m.batch.signal, m.batch.items);
            tracing::error!(exporter = %self.queue.id, items = m.batch.items, "queue closed; batch dropped");
        }
    }
}
