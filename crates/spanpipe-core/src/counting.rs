//! Item counts around every processor, recorded by the graph rather than by each processor (the OTel Collector's
//! processorhelper does the same): `otelcol_processor_incoming_items_total` counts what a processor took,
//! `otelcol_processor_outgoing_items_total` what it handed to the next consumer, both labelled `processor` (its
//! id) and `otel_signal` (`traces`, `metrics`, `logs`). A processor in several pipelines of one signal adds to
//! one series, as in the collector.
//!
//! Only batches that were taken are counted: a refusal is the receiver's `refused` count, and a batch the
//! batch processor offers again after a refusal is counted once, when it goes through.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use metrics::Counter;

use crate::component::Processor;
use crate::{Batch, ComponentError, ConsumeError, Consumer, Signal};

const INCOMING: &str = "otelcol_processor_incoming_items_total";
const OUTGOING: &str = "otelcol_processor_outgoing_items_total";

/// Registers the HELP text of the processor counters (see [`crate::telemetry::describe`]).
pub fn describe() {
    metrics::describe_counter!(
        INCOMING,
        metrics::Unit::Count,
        "Number of items passed to the processor."
    );
    metrics::describe_counter!(
        OUTGOING,
        metrics::Unit::Count,
        "Number of items emitted from the processor."
    );
}

/// One Prometheus counter plus an atomic copy for tests and logs.
pub struct ItemCounter {
    counter: Counter,
    total: AtomicU64,
}

impl ItemCounter {
    fn new(name: &'static str, processor: &str, signal: Signal) -> Self {
        ItemCounter {
            counter: metrics::counter!(name, "processor" => processor.to_string(), "otel_signal" => signal.as_str()),
            total: AtomicU64::new(0),
        }
    }

    fn add(&self, n: usize) {
        self.counter.increment(n as u64);
        self.total.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Items counted by this instance.
    pub fn get(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// The two counters of one processor instance; hands out the wrappers the graph puts around it.
pub struct ProcessorCounting {
    pub incoming: Arc<ItemCounter>,
    pub outgoing: Arc<ItemCounter>,
}

impl ProcessorCounting {
    /// Counters for processor `id` in a pipeline of `signal`.
    pub fn new(id: &str, signal: Signal) -> Self {
        ProcessorCounting {
            incoming: Arc::new(ItemCounter::new(INCOMING, id, signal)),
            outgoing: Arc::new(ItemCounter::new(OUTGOING, id, signal)),
        }
    }

    /// Wraps the `next` consumer handed to the processor's factory: counts what the processor emits.
    pub fn outgoing(&self, next: Arc<dyn Consumer>) -> Arc<dyn Consumer> {
        Arc::new(CountOutgoing {
            next,
            counter: self.outgoing.clone(),
        })
    }

    /// Wraps the built processor: counts what it takes; start and shutdown go straight through.
    pub fn incoming(&self, processor: Arc<dyn Processor>) -> Arc<dyn Processor> {
        Arc::new(CountIncoming {
            processor,
            counter: self.incoming.clone(),
        })
    }
}

struct CountOutgoing {
    next: Arc<dyn Consumer>,
    counter: Arc<ItemCounter>,
}

#[async_trait]
impl Consumer for CountOutgoing {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let items = batch.items;
        self.next.consume(batch).await?;
        self.counter.add(items);
        Ok(())
    }
}

struct CountIncoming {
    processor: Arc<dyn Processor>,
    counter: Arc<ItemCounter>,
}

#[async_trait]
impl Consumer for CountIncoming {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let items = batch.items;
        self.processor.consume(batch).await?;
        self.counter.add(items);
        Ok(())
    }
}

#[async_trait]
impl Processor for CountIncoming {
    async fn start(&self) -> Result<(), ComponentError> {
        self.processor.start().await
    }

    async fn shutdown(&self) {
        self.processor.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;

    /// Drops every other batch, holds nothing.
    struct HalfFilter {
        next: Arc<dyn Consumer>,
        seen: Mutex<u32>,
        shut: Mutex<bool>,
    }

    #[async_trait]
    impl Consumer for HalfFilter {
        async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
            let keep = {
                let mut seen = self.seen.lock().unwrap();
                *seen += 1;
                *seen % 2 == 1
            };
            if keep {
                self.next.consume(batch).await
            } else {
                Ok(())
            }
        }
    }

    #[async_trait]
    impl Processor for HalfFilter {
        async fn shutdown(&self) {
            *self.shut.lock().unwrap() = true;
        }
    }

    /// Refuses batches larger than 100 items.
    struct Sink;

    #[async_trait]
    impl Consumer for Sink {
        async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
            if batch.items > 100 {
                return Err(ConsumeError::Refused {
                    reason: "full".into(),
                    retry_after: std::time::Duration::from_secs(1),
                });
            }
            Ok(())
        }
    }

    fn batch(items: usize) -> Batch {
        Batch::new(Signal::Traces, Bytes::from_static(b"x"), items)
    }

    #[tokio::test]
    async fn counts_what_was_taken_and_what_went_on() {
        let c = ProcessorCounting::new("filter/half", Signal::Traces);
        let filter = Arc::new(HalfFilter {
            next: c.outgoing(Arc::new(Sink)),
            seen: Mutex::new(0),
            shut: Mutex::new(false),
        });
        let p = c.incoming(filter.clone());
        p.consume(batch(3)).await.unwrap(); // 1st: kept
        p.consume(batch(5)).await.unwrap(); // 2nd: dropped by the filter (taken, not emitted)
        assert!(p.consume(batch(200)).await.is_err()); // 3rd: kept, refused downstream: not counted
        p.consume(batch(7)).await.unwrap(); // 4th: dropped
        p.consume(batch(9)).await.unwrap(); // 5th: kept
        assert_eq!(c.incoming.get(), 3 + 5 + 7 + 9);
        assert_eq!(c.outgoing.get(), 3 + 9);
        p.shutdown().await;
        assert!(
            *filter.shut.lock().unwrap(),
            "shutdown reaches the processor"
        );
    }
}
