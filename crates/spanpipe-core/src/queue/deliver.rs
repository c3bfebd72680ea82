//! One delivery: an export attempt under the per-attempt timeout, retried with backoff (or the backend's own
//! delay) until success, a permanent error, `max_elapsed_time` or shutdown. Every outcome is counted.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::{Outcome, SendingQueue};
use crate::component::ExportError;
use crate::telemetry::item_noun;
use crate::{Batch, RetrySettings};

impl SendingQueue {
    /// Exports with timeout and retries until success, a permanent error, `max_elapsed_time` or the shutdown
    /// deadline. Every outcome is counted.
    pub async fn deliver(&self, batch: &Batch) -> bool {
        self.deliver_outcome(batch).await == Outcome::Sent
    }

    /// [`SendingQueue::deliver`]; a persistent queue's stop interrupts it without counting (the record stays).
    pub(super) async fn deliver_outcome(&self, batch: &Batch) -> Outcome {
        self.deliver_attempts(batch, true).await
    }

    /// The retry loop; `may_salvage` lets an undecodable batch be cut up once (see `salvage.rs`).
    pub(super) async fn deliver_attempts(&self, batch: &Batch, may_salvage: bool) -> Outcome {
        let retry: &RetrySettings = &self.settings.retry_on_failure;
        let persistent = self.backend.keeps_on_stop();
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            let result = tokio::select! {
                r = self.attempt(batch) => r,
                _ = self.hard_stop.cancelled() => {
                    if persistent {
                        return Outcome::Interrupted;
                    }
                    Err(ExportError::permanent("shutdown deadline reached"))
                }
            };
            let (reason, delay) = match result {
                Ok(()) => {
                    self.counters.sent.add(batch.signal, batch.items);
                    if self.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(exporter = %self.id, "exports succeed again");
                    }
                    return Outcome::Sent;
                }
                Err(ExportError::Permanent { reason }) => {
                    self.fail(batch, &reason, "permanent error, not retried");
                    return Outcome::Failed;
                }
                Err(ExportError::Undecodable { reason }) if may_salvage => {
                    return self.salvage(batch, &reason).await;
                }
                Err(ExportError::Undecodable { reason }) => {
                    self.fail(batch, &reason, "undecodable, not retried");
                    return Outcome::Failed;
                }
                Err(ExportError::Retryable { reason, delay }) => (reason, delay),
            };
            if !retry.enabled {
                self.fail(batch, &reason, "retry_on_failure disabled");
                return Outcome::Failed;
            }
            if persistent && self.closing.is_cancelled() {
                return Outcome::Interrupted;
            }
            let backoff = retry.backoff(attempt, rand::random::<f64>());
            attempt = attempt.saturating_add(1);
            let wait = delay.unwrap_or(backoff);
            let max_elapsed = retry.max_elapsed_time.0;
            if !max_elapsed.is_zero() && started.elapsed() + wait > max_elapsed {
                self.fail(batch, &reason, "retries exhausted (max_elapsed_time)");
                return Outcome::Failed;
            }
            self.gauges.retries.increment(1);
            if !self.failing.swap(true, Ordering::Relaxed) {
                tracing::warn!(exporter = %self.id, error = %reason, retry_in = ?wait, "export failed; retrying");
            }
            // A persistent queue stops waiting at once on shutdown: the record stays on disk.
            let stop = async {
                match persistent {
                    true => self.closing.cancelled().await,
                    false => self.hard_stop.cancelled().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop => {
                    if persistent {
                        return Outcome::Interrupted;
                    }
                    self.fail(batch, &reason, "shutdown deadline reached while retrying");
                    return Outcome::Failed;
                }
            }
        }
    }

    async fn attempt(&self, batch: &Batch) -> Result<(), ExportError> {
        let timeout = self.settings.timeout;
        if timeout.is_zero() {
            return self.exporter.export(batch).await;
        }
        match tokio::time::timeout(timeout, self.exporter.export(batch)).await {
            Ok(r) => r,
            Err(_) => Err(ExportError::retryable(format!(
                "timeout: no answer within {timeout:?}"
            ))),
        }
    }

    fn fail(&self, batch: &Batch, reason: &str, why: &str) {
        self.counters.send_failed.add(batch.signal, batch.items);
        let kind = format!("{why}: {}", reason.split(':').next().unwrap_or(reason));
        let mut logged = self
            .logged_permanent
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !logged.contains(&kind) {
            if logged.len() < 64 {
                logged.push(kind);
            }
            tracing::error!(exporter = %self.id, error = %reason, items = batch.items,
                noun = item_noun(batch.signal), "{why}; data dropped (further errors of this kind are only counted)");
        }
    }
}
