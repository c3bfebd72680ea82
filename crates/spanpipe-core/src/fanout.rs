//! The end of a pipeline: hands each batch to every exporter's queue and every connector.
//!
//! Admission is all-or-nothing: room is reserved in every queue first, and only when every exporter (with the
//! `refuse` policy) can take the batch is it committed to all of them. So a full queue never leaves a batch in
//! some backends and not others, and the client's retry after a 503 duplicates nothing. Once admitted, each
//! exporter drains its own queue with its own workers: a slow or dead backend never stalls the others.

use std::sync::Arc;

use async_trait::async_trait;

use crate::queue::{OnFull, SendingQueue};
use crate::{Batch, ConsumeError, Consumer};

/// Fans a pipeline's batches out to its exporters (queued) and connectors (called directly).
pub struct Fanout {
    queues: Vec<Arc<SendingQueue>>,
    connectors: Vec<Arc<dyn Consumer>>,
}

impl Fanout {
    pub fn new(queues: Vec<Arc<SendingQueue>>, connectors: Vec<Arc<dyn Consumer>>) -> Self {
        Fanout { queues, connectors }
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
        // Connectors run inline (they are cheap); a refusal here still leaves every queue untouched.
        for c in &self.connectors {
            c.consume(batch.clone()).await?;
        }
        let mut rest = reservations.into_iter();
        let last = rest.next_back();
        for r in rest {
            r.send(batch.clone()).await;
        }
        if let Some(r) = last {
            r.send(batch).await;
        }
        Ok(())
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
