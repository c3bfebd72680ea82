//! The workers of a sending queue: one loop that takes requests from the queue's backend (`backend.rs`),
//! optionally batches them (`sending_queue.batch`, `batching.rs`), delivers them through the retry layer
//! ([`SendingQueue::deliver_outcome`], `deliver.rs`) and tells the backend they are done.

use std::sync::Arc;

use tokio::time::Instant;

use super::backend::{Take, Taken, Token};
use super::batching::BatchSettings;
use super::{Outcome, SendingQueue};
use crate::Batch;

impl SendingQueue {
    /// One worker: take a request (with `sending_queue.batch`, as many as make a batch), deliver it with
    /// retries, mark it done; until the queue stops.
    pub(super) async fn worker(self: Arc<Self>) {
        let batch_cfg = self.settings.sending_queue.batch.clone();
        loop {
            let taken = self.collect(batch_cfg.as_ref()).await;
            if taken.is_empty() {
                break;
            }
            if self.backend.keeps_on_stop() && self.closing.is_cancelled() {
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
            self.backend.done(&self, tokens).await;
        }
    }

    /// The requests of one export: one, or with batching those that make a batch (until `min_size`, the flush
    /// deadline or `max_size`; one signal and equal metadata). One worker collects at a time; a request that does
    /// not fit is carried over to start the next batch. Empty once the queue stopped.
    async fn collect(self: &Arc<Self>, cfg: Option<&BatchSettings>) -> Vec<Taken> {
        let mut carry = self.carry.lock().await;
        let first = match carry.take() {
            Some(t) => t,
            None => match self.backend.take(self, None).await {
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
            let t = match self.backend.take(self, Some(deadline)).await {
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
