//! The consumer side of a sending queue: where workers take requests from ([`Source`], one implementation per
//! backend — the memory channel and the persistent log) and the one worker loop that takes, optionally batches
//! (`sending_queue.batch`), delivers through the retry layer ([`SendingQueue::deliver_outcome`]) and marks done.
//!
//! The backends differ only in what a taken request holds until it is done (a memory queue's room, a persistent
//! queue's record to acknowledge) and in what a stop means: a memory queue drains what it holds, a persistent
//! queue stops at once and leaves what it holds on disk for the next start.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::batching::BatchSettings;
use super::{Outcome, SendingQueue, codec};
use crate::Batch;
use crate::storage::RecordId;

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

/// What [`Source::take`] found.
pub(super) enum Take {
    Got(Taken),
    /// Nothing arrived before the deadline.
    TimedOut,
    /// The queue is stopping: no more for this worker.
    Closed,
}

/// Where a sending queue's workers take requests from.
#[async_trait]
pub(super) trait Source: Send + Sync {
    /// The next request, waiting until `until` (`None`: until one comes or the queue stops).
    async fn take(&self, q: &Arc<SendingQueue>, until: Option<Instant>) -> Take;
    /// The export of these requests ended (delivered, or counted as failed): forget them.
    async fn done(&self, q: &Arc<SendingQueue>, tokens: Vec<Token>);
    /// Whether a stop leaves taken-but-unsent requests in place (persistent) rather than sending them (memory).
    fn keeps_on_stop(&self) -> bool;
}

/// The in-memory channel: a request holds its semaphore room until done.
pub(super) struct MemorySource;

#[async_trait]
impl Source for MemorySource {
    async fn take(&self, q: &Arc<SendingQueue>, until: Option<Instant>) -> Take {
        let mut rx = q.rx.lock().await;
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
                token: Token::Memory { _room: m._permit },
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
}

/// The persistent log: records oldest first; a record is acknowledged when done.
pub(super) struct PersistentSource;

#[async_trait]
impl Source for PersistentSource {
    async fn take(&self, q: &Arc<SendingQueue>, until: Option<Instant>) -> Take {
        let Some(p) = &q.persistent else {
            return Take::Closed;
        };
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
                let q2 = q.clone();
                tokio::task::spawn_blocking(move || q2.next_record()).await
            };
            match r {
                Ok(Ok(Some(record))) => {
                    // More may be waiting: let an idle worker look too.
                    p.notify.notify_one();
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
                            q.ack(id).await;
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
                        _ = p.notify.notified() => {}
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
        q.ack_all(ids).await;
    }

    fn keeps_on_stop(&self) -> bool {
        true
    }
}

impl SendingQueue {
    /// One worker: take a request (with `sending_queue.batch`, as many as make a batch), deliver it with
    /// retries, mark it done; until the queue stops.
    pub(super) async fn worker(self: Arc<Self>, source: Arc<dyn Source>) {
        let batch_cfg = self.settings.sending_queue.batch.clone();
        loop {
            let taken = self.collect(source.as_ref(), batch_cfg.as_ref()).await;
            if taken.is_empty() {
                break;
            }
            if source.keeps_on_stop() && self.closing.is_cancelled() {
                // Taken but not sent: stays in the log for the next start.
                break;
            }
            let (parts, tokens): (Vec<Batch>, Vec<Token>) =
                taken.into_iter().map(|t| (t.batch, t.token)).unzip();
            let Some(batch) = Batch::concat(parts) else {
                continue;
            };
            if self.deliver_outcome(&batch).await == Outcome::Interrupted {
                // A persistent queue's stop: the records stay, sent again after the restart.
                break;
            }
            source.done(&self, tokens).await;
        }
    }

    /// The requests of one export: one, or with batching those that make a batch (until `min_size`, the flush
    /// deadline or `max_size`; one signal and equal metadata). One worker collects at a time; a request that does
    /// not fit is carried over to start the next batch. Empty once the queue stopped.
    async fn collect(
        self: &Arc<Self>,
        source: &dyn Source,
        cfg: Option<&BatchSettings>,
    ) -> Vec<Taken> {
        let mut carry = self.carry.lock().await;
        let first = match carry.take() {
            Some(t) => t,
            None => match source.take(self, None).await {
                Take::Got(t) => t,
                Take::TimedOut | Take::Closed => return Vec::new(),
            },
        };
        let Some(cfg) = cfg else {
            return vec![first];
        };
        let deadline = Instant::now() + cfg.flush_timeout.0;
        let mut size = cfg.size_of(&first.batch);
        let mut taken = vec![first];
        // Bounded: by min_size, by the flush deadline, and by the stop (each round takes one request or ends).
        while size < cfg.min_size {
            let t = match source.take(self, Some(deadline)).await {
                Take::Got(t) => t,
                Take::TimedOut | Take::Closed => break,
            };
            let s = cfg.size_of(&t.batch);
            if !cfg.fits(&taken[0].batch, &t.batch, size, s) {
                *carry = Some(t);
                break;
            }
            size += s;
            taken.push(t);
        }
        taken
    }
}
