//! The `batch` processor: groups small requests into larger ones by appending their encoded bytes.
//!
//! Nothing it accepted is lost and nothing is duplicated: the request that fills a batch hands it on; if the
//! pipeline refuses it (full queues), that request alone is refused (503 / UNAVAILABLE, its data dropped here so the
//! client's retry is its only copy) and the other requests' data goes back to be offered again by the timer, which
//! retries until the pipeline takes it. While the pipeline refuses, new requests are refused at once.

mod config;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use spanpipe_core::wire::{WireError, scan_traces, split_traces_after};
use spanpipe_core::{
    Batch, BuildContext, ComponentError, ConfigError, ConsumeError, Consumer, Metadata, Node,
    Payload, Processor, ProcessorFactory, Signal,
};
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use config::BatchConfig;

/// How long shutdown keeps offering the last batch to a refusing pipeline before counting it as lost.
const SHUTDOWN_FLUSH_LIMIT: Duration = Duration::from_secs(10);
/// Longest pause between offers of a refused batch.
const MAX_REFUSED_PAUSE: Duration = Duration::from_millis(100);

/// Builds `batch` processors.
pub struct BatchProcessorFactory;

impl ProcessorFactory for BatchProcessorFactory {
    fn type_name(&self) -> &'static str {
        "batch"
    }

    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces, Signal::Metrics, Signal::Logs]
    }

    fn build(
        &self,
        ctx: &BuildContext,
        node: &Node,
        signal: Signal,
        next: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Processor>, ConfigError> {
        let cfg: BatchConfig = ctx.config(node)?;
        cfg.validate()
            .map_err(|(k, m)| ctx.invalid(node, &[k], m))?;
        Ok(Arc::new(BatchProcessor {
            inner: Arc::new(Inner {
                id: ctx.id.to_string(),
                cfg,
                signal,
                next,
                pending: Mutex::new(Pending::default()),
                first_item: Notify::new(),
                stalled: AtomicBool::new(false),
                stop: CancellationToken::new(),
            }),
            timer: std::sync::Mutex::new(None),
        }))
    }
}

#[derive(Default)]
struct Pending {
    parts: Vec<Batch>,
    items: usize,
    metadata: Metadata,
    deadline: Option<Instant>,
}

impl Pending {
    fn take(&mut self) -> Vec<Batch> {
        self.items = 0;
        self.deadline = None;
        std::mem::take(&mut self.parts)
    }
}

/// One `batch` processor instance (one per pipeline).
pub struct BatchProcessor {
    inner: Arc<Inner>,
    timer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Inner {
    id: String,
    cfg: BatchConfig,
    signal: Signal,
    next: Arc<dyn Consumer>,
    pending: Mutex<Pending>,
    first_item: Notify,
    stalled: AtomicBool,
    stop: CancellationToken,
}

impl Inner {
    fn refused(&self) -> ConsumeError {
        ConsumeError::Refused {
            reason: format!("{}: downstream is saturated", self.id),
            retry_after: Duration::from_secs(1),
        }
    }

    fn cut(&self, batch: Batch) -> Result<Vec<Batch>, ConsumeError> {
        let max = self.cfg.send_batch_max_size;
        if max == 0 || batch.items <= max || self.signal != Signal::Traces {
            return Ok(vec![batch]);
        }
        let rejected = |e: WireError| ConsumeError::Rejected {
            reason: format!("cannot split batch: {e}"),
        };
        // Part by part: the received requests that fit are passed on shared, only a request that crosses a
        // `max` boundary is cut (its first piece fills what is left of the batch, as the Collector's split does).
        let mut out = Vec::new();
        let (mut parts, mut items) = (Vec::new(), 0usize);
        let mut close = |parts: &mut Vec<Bytes>, items: &mut usize| {
            out.push(Batch {
                signal: batch.signal,
                payload: Payload::from_parts(std::mem::take(parts)),
                items: std::mem::take(items),
                metadata: batch.metadata.clone(),
                // Pieces share the whole request's reservation until the last one is gone.
                held: batch.held.clone(),
            });
        };
        for part in batch.payload.parts() {
            let n = scan_traces(part, |_, _| {}).map_err(rejected)?.spans;
            if items + n <= max {
                parts.push(part.clone());
                items += n;
            } else {
                for (piece, k) in split_traces_after(part, max - items, max).map_err(rejected)? {
                    parts.push(Bytes::from(piece));
                    items += k;
                    if items == max {
                        close(&mut parts, &mut items);
                    }
                }
            }
            if items == max {
                close(&mut parts, &mut items);
            }
        }
        if items > 0 {
            close(&mut parts, &mut items);
        }
        Ok(out)
    }

    /// Hands `parts` on, offering each piece until the pipeline takes it or `give_up_at` passes.
    async fn flush(
        &self,
        parts: Vec<Batch>,
        give_up_at: Option<Instant>,
    ) -> Result<(), ConsumeError> {
        let Some(batch) = Batch::concat(parts) else {
            return Ok(());
        };
        for piece in self.cut(batch)? {
            self.offer(piece, give_up_at).await?;
        }
        Ok(())
    }

    /// The caller's own batch is the last of `parts`. One attempt; on refusal the others' parts go back to wait
    /// for the timer and the caller is refused, so its client's retry does not duplicate anything.
    async fn flush_inline(&self, mut parts: Vec<Batch>) -> Result<(), ConsumeError> {
        let Some(batch) = Batch::concat(parts.clone()) else {
            return Ok(());
        };
        let mut pieces = self.cut(batch)?.into_iter();
        let Some(first) = pieces.next() else {
            return Ok(());
        };
        match self.next.consume(first).await {
            Ok(()) => {}
            Err(ConsumeError::Refused { reason, .. }) => {
                if !self.stalled.swap(true, Ordering::Relaxed) {
                    tracing::warn!(processor = %self.id, %reason, "pipeline refuses batches; refusing new data");
                }
                parts.pop();
                self.restore(parts).await;
                return Err(self.refused());
            }
            Err(e) => return Err(e),
        }
        for piece in pieces {
            self.offer(piece, None).await?;
        }
        Ok(())
    }

    /// Puts parts back in front of the pending ones, due now.
    async fn restore(&self, parts: Vec<Batch>) {
        if parts.is_empty() {
            return;
        }
        let mut p = self.pending.lock().await;
        if p.parts.is_empty() {
            p.metadata = parts[0].metadata.clone();
        }
        p.items += parts.iter().map(|b| b.items).sum::<usize>();
        let later = std::mem::replace(&mut p.parts, parts);
        p.parts.extend(later);
        p.deadline = Some(Instant::now());
        self.first_item.notify_one();
    }

    async fn offer(
        &self,
        batch: Batch,
        mut give_up_at: Option<Instant>,
    ) -> Result<(), ConsumeError> {
        loop {
            match self.next.consume(batch.clone()).await {
                Ok(()) => {
                    if self.stalled.swap(false, Ordering::Relaxed) {
                        tracing::info!(processor = %self.id, "pipeline accepts batches again");
                    }
                    return Ok(());
                }
                Err(ConsumeError::Refused {
                    retry_after,
                    reason,
                }) => {
                    if !self.stalled.swap(true, Ordering::Relaxed) {
                        tracing::warn!(processor = %self.id, %reason, "pipeline refuses batches; holding and refusing new data");
                    }
                    if give_up_at.is_none() && self.stop.is_cancelled() {
                        give_up_at = Some(Instant::now() + SHUTDOWN_FLUSH_LIMIT);
                    }
                    if give_up_at.is_some_and(|g| Instant::now() >= g) {
                        tracing::error!(processor = %self.id, items = batch.items, %reason,
                            "batch could not be handed on before shutdown; dropped");
                        return Err(ConsumeError::Refused {
                            reason,
                            retry_after,
                        });
                    }
                    tokio::time::sleep(retry_after.min(MAX_REFUSED_PAUSE)).await;
                }
                Err(e @ ConsumeError::Rejected { .. }) => {
                    tracing::error!(processor = %self.id, items = batch.items, error = %e, "batch rejected downstream; dropped");
                    return Err(e);
                }
            }
        }
    }

    async fn timer_loop(self: Arc<Self>) {
        loop {
            let deadline = self.pending.lock().await.deadline;
            match deadline {
                None => {
                    tokio::select! {
                        _ = self.first_item.notified() => continue,
                        _ = self.stop.cancelled() => return,
                    }
                }
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(d) => {}
                        _ = self.stop.cancelled() => return,
                    }
                }
            }
            let parts = {
                let mut p = self.pending.lock().await;
                match p.deadline {
                    Some(d) if d <= Instant::now() => p.take(),
                    _ => continue,
                }
            };
            // Refusals are retried inside; a rejection was logged. The data was acknowledged already.
            let _ = self.flush(parts, None).await;
        }
    }
}

#[async_trait]
impl Consumer for BatchProcessor {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let inner = &self.inner;
        if batch.items == 0 {
            return Ok(());
        }
        if inner.stalled.load(Ordering::Relaxed) {
            return Err(inner.refused());
        }
        let (earlier, full) = {
            let mut p = inner.pending.lock().await;
            // Batches from requests with different metadata are never merged.
            let earlier = if !p.parts.is_empty() && p.metadata != batch.metadata {
                p.take()
            } else {
                Vec::new()
            };
            if p.parts.is_empty() {
                p.metadata = batch.metadata.clone();
                p.deadline = Some(Instant::now() + inner.cfg.timeout.0);
                inner.first_item.notify_one();
            }
            p.items += batch.items;
            p.parts.push(batch);
            let size = inner.cfg.send_batch_size;
            let full = if size > 0 && p.items >= size {
                p.take()
            } else {
                Vec::new()
            };
            (earlier, full)
        };
        if !earlier.is_empty() {
            inner.restore(earlier).await;
        }
        inner.flush_inline(full).await
    }
}

#[async_trait]
impl Processor for BatchProcessor {
    async fn start(&self) -> Result<(), ComponentError> {
        let handle = tokio::spawn(self.inner.clone().timer_loop());
        *self.timer.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(())
    }

    /// Flushes what is pending, offering it for up to SHUTDOWN_FLUSH_LIMIT.
    async fn shutdown(&self) {
        self.inner.stop.cancel();
        let timer = self.timer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = timer {
            let _ = t.await;
        }
        let parts = self.inner.pending.lock().await.take();
        let _ = self
            .inner
            .flush(parts, Some(Instant::now() + SHUTDOWN_FLUSH_LIMIT))
            .await;
    }
}
