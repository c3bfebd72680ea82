//! The end of a pipeline: hands each batch to every exporter's queue and every connector.
//!
//! Admission is all-or-nothing: room is reserved in every queue first, and only when every exporter (with the
//! `refuse` policy) can take the batch is it committed to all of them. So a full queue never leaves a batch in
//! some backends and not others, and the client's retry after a 503 duplicates nothing. Once admitted, each
//! exporter drains its own queue with its own workers: a slow or dead backend never stalls the others.
//!
//! Persistent queues write their record during admission, before the client is answered, so a failed write
//! (a full disk) is a refusal like a full queue; see `admit`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::queue::{OnFull, Reservation, SendingQueue};
use crate::{Batch, ConsumeError, Consumer};

/// Fans a pipeline's batches out to its exporters (queued) and connectors (called directly).
pub struct Fanout {
    queues: Vec<Arc<SendingQueue>>,
    connectors: Arc<[Arc<dyn Consumer>]>,
}

impl Fanout {
    pub fn new(queues: Vec<Arc<SendingQueue>>, connectors: Vec<Arc<dyn Consumer>>) -> Self {
        Fanout {
            queues,
            connectors: connectors.into(),
        }
    }
}

#[async_trait]
impl Consumer for Fanout {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let mut reservations = Vec::with_capacity(self.queues.len());
        for q in &self.queues {
            match q.try_reserve(&batch) {
                Ok(r) => reservations.push(r),
                Err(full) => match full.policy {
                    OnFull::Refuse => {
                        return Err(ConsumeError::Refused {
                            reason: format!("sending queue of exporter {} is full", q.id),
                            retry_after: q.retry_after(),
                        });
                    }
                    OnFull::Drop | OnFull::DropOldest => {
                        q.counters.enqueue_failed.add(batch.signal, batch.items)
                    }
                },
            }
        }
        if !reservations.iter().any(|r| r.is_persistent()) {
            return admit(reservations, &self.connectors, batch).await;
        }
        // Writes, withdrawals and publications run in their own task: a client that hangs up mid-way (the
        // request future dropped) cannot leave some exporters' records published and others not.
        let connectors = self.connectors.clone();
        tokio::spawn(async move { admit(reservations, &connectors, batch).await })
            .await
            .unwrap_or_else(|e| {
                Err(ConsumeError::Refused {
                    reason: format!("admission task failed: {e}"),
                    retry_after: std::time::Duration::from_secs(1),
                })
            })
    }
}

/// Prepares every reservation (persistent queues write their record), runs the connectors, then commits to
/// every queue. A failed write in a queue with the `refuse` policy refuses the request for all: what the other
/// exporters already wrote is withdrawn before any worker could see it, so the client's retry duplicates
/// nothing. With `drop`/`drop_oldest` only that exporter goes without (counted as an enqueue failure).
async fn admit(
    reservations: Vec<Reservation>,
    connectors: &[Arc<dyn Consumer>],
    batch: Batch,
) -> Result<(), ConsumeError> {
    let mut ready: Vec<Reservation> = Vec::with_capacity(reservations.len());
    for mut r in reservations {
        match r.prepare(&batch).await {
            Ok(()) => ready.push(r),
            Err(e) => {
                let q = r.queue().clone();
                if q.on_full() == OnFull::Refuse {
                    drop(r);
                    abort(ready).await;
                    return Err(ConsumeError::Refused {
                        reason: e.to_string(),
                        retry_after: q.retry_after(),
                    });
                }
                q.counters.enqueue_failed.add(batch.signal, batch.items);
            }
        }
    }
    // Connectors run inline (they are cheap); a refusal here still leaves every queue untouched.
    for c in connectors {
        if let Err(e) = c.consume(batch.clone()).await {
            abort(ready).await;
            return Err(e);
        }
    }
    let mut rest = ready.into_iter();
    let last = rest.next_back();
    for r in rest {
        r.commit(batch.clone()).await;
    }
    if let Some(r) = last {
        r.commit(batch).await;
    }
    Ok(())
}

async fn abort(ready: Vec<Reservation>) {
    for r in ready {
        r.abort().await;
    }
}

/// Feeds one signal from a receiver (or connector) into several pipelines.
pub struct PipelinesFanout {
    pub heads: Vec<Arc<dyn Consumer>>,
}

#[async_trait]
impl Consumer for PipelinesFanout {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        match self.heads.as_slice() {
            [one] => one.consume(batch).await,
            heads => {
                for h in heads {
                    h.consume(batch.clone()).await?;
                }
                Ok(())
            }
        }
    }
}
