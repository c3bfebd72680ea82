//! The `tail_sampling` processor: cuts each request per trace, holds every trace until it is decided, hands kept
//! traces downstream whole, and lets late spans follow their trace's decision.
//!
//! Data path: `consume` cuts the request with [`split_by_trace`] (no decode), reserves each held piece's bytes in
//! the process memory budget (refusing the request whole — 503 / UNAVAILABLE — when the budget is full, before
//! anything is kept), and files the pieces in the [`Buffer`]. One task decides traces as their `decision_wait`
//! passes and hands the outbox to the next consumer, retrying while it refuses; while it does, new requests are
//! refused, so memory stays bounded and clients back off. Shutdown decides every undecided trace and delivers
//! the kept ones (for at most [`SHUTDOWN_FLUSH_LIMIT`]).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use spanpipe_core::budget::MemoryBudget;
use spanpipe_core::wire::{TracePiece, split_by_trace};
use spanpipe_core::{Batch, ComponentError, ConsumeError, Consumer, Processor, Signal};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::buffer::Buffer;
use crate::metrics::Metrics;
use crate::trace::Piece;

/// How long shutdown keeps offering kept traces to a refusing pipeline before counting them as failed.
pub const SHUTDOWN_FLUSH_LIMIT: Duration = Duration::from_secs(10);
/// Longest pause between offers to a refusing pipeline.
const MAX_REFUSED_PAUSE: Duration = Duration::from_millis(100);
/// Traces decided per hold of the table's lock.
const DECIDE_AT_ONCE: usize = 256;
/// Spans per batch handed downstream at most.
const MAX_RELEASE_SPANS: usize = 8192;

/// One `tail_sampling` instance (one per pipeline).
pub struct TailSampling {
    inner: Arc<Inner>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Inner {
    id: String,
    next: Arc<dyn Consumer>,
    budget: Arc<MemoryBudget>,
    buffer: Mutex<Buffer>,
    metrics: Arc<Metrics>,
    drop_on_shutdown: bool,
    wake: Notify,
    stop: CancellationToken,
    /// The next consumer refuses: new data is refused until the outbox is delivered.
    stalled: AtomicBool,
}

impl TailSampling {
    /// A processor over `buffer`, handing kept traces to `next`, holding buffered bytes in `budget`.
    pub fn new(
        id: String,
        buffer: Buffer,
        metrics: Arc<Metrics>,
        next: Arc<dyn Consumer>,
        budget: Arc<MemoryBudget>,
        drop_on_shutdown: bool,
    ) -> Self {
        TailSampling {
            inner: Arc::new(Inner {
                id,
                next,
                budget,
                buffer: Mutex::new(buffer),
                metrics,
                drop_on_shutdown,
                wake: Notify::new(),
                stop: CancellationToken::new(),
                stalled: AtomicBool::new(false),
            }),
            task: Mutex::new(None),
        }
    }

    /// The metrics of this instance.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Undecided traces held now.
    pub fn pending_traces(&self) -> usize {
        self.inner.lock().traces()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refused(&self, why: &str) -> ConsumeError {
        ConsumeError::Refused {
            reason: format!("{}: {why}", self.id),
            retry_after: Duration::from_secs(1),
        }
    }

    /// Decides what is due and delivers the outbox, [`DECIDE_AT_ONCE`] traces per hold of the table's lock so
    /// requests are never held up for long; returns when the next trace is due.
    async fn run_once(&self) -> Option<Instant> {
        loop {
            let (out, decided, next) = {
                let mut b = self.lock();
                let decided = b.decide_due(Instant::now().into_std(), DECIDE_AT_ONCE);
                (std::mem::take(&mut b.outbox), decided, b.next_deadline())
            };
            self.deliver(out, None).await;
            if decided < DECIDE_AT_ONCE {
                return next.map(Instant::from_std);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Hands kept pieces downstream, consecutive pieces with equal metadata joined into batches.
    async fn deliver(&self, pieces: Vec<Piece>, give_up_at: Option<Instant>) {
        let mut group: Vec<Piece> = Vec::new();
        let mut spans = 0;
        for p in pieces {
            if !group.is_empty()
                && (group[0].metadata != p.metadata || spans + p.spans > MAX_RELEASE_SPANS)
            {
                self.offer(std::mem::take(&mut group), give_up_at).await;
                spans = 0;
            }
            spans += p.spans;
            group.push(p);
        }
        if !group.is_empty() {
            self.offer(group, give_up_at).await;
        }
    }

    /// One batch of kept pieces, offered until the next consumer takes it (or `give_up_at` / shutdown passes).
    async fn offer(&self, group: Vec<Piece>, mut give_up_at: Option<Instant>) {
        let parts: Vec<Batch> = group
            .into_iter()
            .map(|p| Batch {
                signal: Signal::Traces,
                payload: p.bytes,
                items: p.spans,
                metadata: p.metadata,
                held: p.held,
            })
            .collect();
        let Some(batch) = Batch::concat(parts) else {
            return;
        };
        loop {
            match self.next.consume(batch.clone()).await {
                Ok(()) => {
                    if self.stalled.swap(false, Ordering::Relaxed) {
                        tracing::info!(processor = %self.id, "pipeline accepts kept traces again");
                    }
                    return;
                }
                Err(ConsumeError::Refused {
                    reason,
                    retry_after,
                }) => {
                    if !self.stalled.swap(true, Ordering::Relaxed) {
                        tracing::warn!(processor = %self.id, %reason, "pipeline refuses kept traces; holding them and refusing new data");
                    }
                    if give_up_at.is_none() && self.stop.is_cancelled() {
                        give_up_at = Some(Instant::now() + SHUTDOWN_FLUSH_LIMIT);
                    }
                    if give_up_at.is_some_and(|g| Instant::now() >= g) {
                        self.metrics.release_failed.add(batch.items as u64);
                        tracing::error!(processor = %self.id, spans = batch.items, %reason,
                            "kept traces could not be handed on before shutdown; dropped");
                        return;
                    }
                    tokio::time::sleep(retry_after.min(MAX_REFUSED_PAUSE)).await;
                }
                Err(e @ ConsumeError::Rejected { .. }) => {
                    self.metrics.release_failed.add(batch.items as u64);
                    tracing::error!(processor = %self.id, spans = batch.items, error = %e, "kept traces rejected downstream; dropped");
                    return;
                }
            }
        }
    }

    async fn run(self: Arc<Self>) {
        loop {
            let next = self.run_once().await;
            let sleep_until = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => {}
                _ = self.wake.notified() => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }
}

#[async_trait]
impl Consumer for TailSampling {
    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        let inner = &self.inner;
        if batch.items == 0 {
            return Ok(());
        }
        if inner.stalled.load(Ordering::Relaxed) {
            return Err(inner.refused("downstream is saturated"));
        }
        // Cut part by part (a received request each): no copy of the whole batch, and a part holding one trace
        // is kept as it is.
        let mut cut = Vec::with_capacity(batch.payload.parts().len());
        for part in batch.payload.parts() {
            match split_by_trace(part) {
                Ok(traces) => cut.push((part, traces)),
                Err(e) => {
                    // After the receiver's door this is a bug; pass the data on rather than lose it.
                    inner.metrics.unreadable.add(1);
                    tracing::error!(processor = %inner.id, error = %e, spans = batch.items,
                        "cannot cut a batch per trace; passing it on unsampled");
                    return inner.next.consume(batch).await;
                }
            }
        }
        // Each held piece gets its own share of the memory budget, so a trace held for `decision_wait` does not
        // keep its whole request counted; the request's own share is given back first.
        let mut pieces = Vec::new();
        if let Some((id, spans)) = one_trace(&cut) {
            let piece = Piece {
                bytes: batch.payload.clone(),
                spans,
                metadata: batch.metadata.clone(),
                held: std::mem::take(&mut batch.held),
            };
            pieces.push((id, piece));
        } else {
            drop(std::mem::take(&mut batch.held));
            for (part, traces) in cut {
                for t in traces {
                    let Some(held) = inner.budget.try_reserve(t.request.len()) else {
                        return Err(inner.refused("memory budget is full"));
                    };
                    // A part holding one trace comes back borrowed: keep the received buffer itself.
                    let bytes = match t.request {
                        Cow::Borrowed(_) => part.clone().into(),
                        Cow::Owned(v) => v.into(),
                    };
                    pieces.push((
                        t.trace_id,
                        Piece {
                            bytes,
                            spans: t.spans,
                            metadata: batch.metadata.clone(),
                            held,
                        },
                    ));
                }
            }
        }
        let now = Instant::now().into_std();
        let wake = {
            let mut b = inner.lock();
            // The task sleeps until the oldest trace is due: wake it when that changes or there is output.
            let was_empty = b.traces() == 0;
            for (id, piece) in pieces {
                b.accept(&id, piece, now);
            }
            was_empty || !b.outbox.is_empty()
        };
        if wake {
            inner.wake.notify_one();
        }
        Ok(())
    }
}

/// The trace id and span count when every span of every part belongs to one trace (the batch is then held as it
/// is).
fn one_trace(cut: &[(&bytes::Bytes, Vec<TracePiece<'_>>)]) -> Option<(Vec<u8>, usize)> {
    let mut traces = cut.iter().flat_map(|(_, traces)| traces.iter());
    let first = traces.next()?;
    let mut spans = first.spans;
    for t in traces {
        if t.trace_id != first.trace_id {
            return None;
        }
        spans += t.spans;
    }
    Some((first.trace_id.clone(), spans))
}

#[async_trait]
impl Processor for TailSampling {
    async fn start(&self) -> Result<(), ComponentError> {
        let handle = tokio::spawn(self.inner.clone().run());
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(())
    }

    /// Decides every undecided trace (or drops them with `drop_pending_traces_on_shutdown`) and delivers the
    /// kept ones, offering them for up to [`SHUTDOWN_FLUSH_LIMIT`].
    async fn shutdown(&self) {
        let inner = &self.inner;
        inner.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
        let out = {
            let mut b = inner.lock();
            b.decide_all(Instant::now().into_std(), inner.drop_on_shutdown);
            std::mem::take(&mut b.outbox)
        };
        inner
            .deliver(out, Some(Instant::now() + SHUTDOWN_FLUSH_LIMIT))
            .await;
    }
}
