//! The `redaction` processor component: builds a [`Redactor`] from the config, applies it to every traces batch
//! and reports what it did as internal metrics (`spanpipe_redaction_{masked_values,truncated_values,deleted_keys}`
//! with a `processor` label). Values are never logged or recorded.

#[cfg(test)]
mod fail_closed;
mod redactor;
mod summary;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use metrics::Counter;
use spanpipe_core::{
    Batch, BuildContext, ConfigError, ConsumeError, Consumer, Node, Processor, ProcessorFactory,
    Signal,
};

pub use redactor::{Redactor, Stats};
pub use summary::KEYS as SUMMARY_KEYS;

use crate::config::RedactionConfig;

/// Builds `redaction` processors (traces).
pub struct RedactionProcessorFactory;

impl ProcessorFactory for RedactionProcessorFactory {
    fn type_name(&self) -> &'static str {
        "redaction"
    }

    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }

    fn build(
        &self,
        ctx: &BuildContext,
        node: &Node,
        _signal: Signal,
        next: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Processor>, ConfigError> {
        let cfg: RedactionConfig = ctx.config(node)?;
        cfg.validate().map_err(|(k, m)| ctx.invalid(node, &k, m))?;
        let redactor =
            Redactor::new(&cfg).map_err(|e| ctx.invalid(node, &[e.list], e.to_string()))?;
        let id = ctx.id.to_string();
        let counter = |what: &'static str| metrics::counter!(format!("spanpipe_redaction_{what}"), "processor" => id.clone());
        Ok(Arc::new(RedactionProcessor {
            masked: counter("masked_values"),
            truncated: counter("truncated_values"),
            deleted: counter("deleted_keys"),
            redactor,
            next,
            id,
        }))
    }
}

/// One `redaction` processor instance.
pub struct RedactionProcessor {
    redactor: Redactor,
    next: Arc<dyn Consumer>,
    id: String,
    masked: Counter,
    truncated: Counter,
    deleted: Counter,
}

#[async_trait]
impl Consumer for RedactionProcessor {
    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        if batch.signal != Signal::Traces {
            return self.next.consume(batch).await;
        }
        let mut stats = Stats::default();
        match (batch.payload).try_map_parts(|part| self.redactor.redact_request(part, &mut stats)) {
            Ok(None) => {}
            Ok(Some(payload)) => batch.payload = payload,
            Err(e) => {
                return Err(ConsumeError::Rejected {
                    reason: format!("{}: malformed request: {e}", self.id),
                });
            }
        }
        self.next.consume(batch).await?;
        // Counted once accepted downstream, so a client's retry of a refused request is not counted twice.
        self.masked.increment(stats.masked);
        self.truncated.increment(stats.truncated);
        self.deleted.increment(stats.deleted);
        if stats != Stats::default() {
            tracing::debug!(processor = %self.id, masked = stats.masked, truncated = stats.truncated,
                deleted = stats.deleted, "redacted");
        }
        Ok(())
    }
}

impl Processor for RedactionProcessor {}
