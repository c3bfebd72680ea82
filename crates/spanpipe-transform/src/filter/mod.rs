//! The `filter` processor: drops spans matching conditions, counted in
//! `otelcol_processor_filter_spans_filtered_total{filter="<id>"}` (the OTel Collector's
//! `otelcol_processor_filter_spans.filtered` as its Prometheus endpoint names it).
//!
//! Conditions read the encoded span; dropping a span means not copying its bytes, so nothing is decoded. A batch
//! left without spans is acknowledged and not forwarded; `Batch.items` counts what remains.

mod config;
pub mod ottl;
pub mod signals;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use metrics::Counter;
use spanpipe_core::wire::WireError;
use spanpipe_core::{
    Batch, BuildContext, ConfigError, ConsumeError, Consumer, Node, Processor, ProcessorFactory,
    Signal,
};

pub use config::{ErrorMode, FilterConfig, FilterSettings, Rule, TraceConditions};

use crate::rewrite::{Editor, Outcome, SpanEdit, rewrite};
use crate::span::SpanRef;

/// The internal metric of dropped spans.
pub const FILTERED_SPANS_METRIC: &str = "otelcol_processor_filter_spans_filtered_total";
/// The internal metric of dropped metric data points.
pub const FILTERED_POINTS_METRIC: &str = "otelcol_processor_filter_datapoints_filtered_total";
/// The internal metric of dropped log records.
pub const FILTERED_LOGS_METRIC: &str = "otelcol_processor_filter_logs_filtered_total";

/// Builds `filter` processors.
pub struct FilterProcessorFactory;

impl ProcessorFactory for FilterProcessorFactory {
    fn type_name(&self) -> &'static str {
        "filter"
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
        let cfg: FilterConfig = ctx.config(node)?;
        let settings = cfg.validate().map_err(|e| e.locate(ctx, node))?;
        let id = ctx.id.to_string();
        let name = match signal {
            Signal::Traces => FILTERED_SPANS_METRIC,
            Signal::Metrics => FILTERED_POINTS_METRIC,
            Signal::Logs => FILTERED_LOGS_METRIC,
        };
        Ok(Arc::new(FilterProcessor {
            filtered: metrics::counter!(name, "filter" => id.clone()),
            id,
            settings,
            next,
        }))
    }
}

/// One `filter` processor instance.
pub struct FilterProcessor {
    id: String,
    settings: FilterSettings,
    next: Arc<dyn Consumer>,
    filtered: Counter,
}

impl FilterSettings {
    /// Whether the span is to be dropped.
    pub fn drops(&self, span: &SpanRef<'_>) -> bool {
        match &self.rule {
            Rule::None => false,
            Rule::Legacy(f) => !f.applies(span),
            Rule::Conditions(conds) => conds.iter().any(|c| ottl::eval(c, span)),
        }
    }
}

/// Drops the spans the rule selects.
struct DropMatching<'s>(&'s FilterSettings);

impl Editor for DropMatching<'_> {
    fn span(&mut self, span: &SpanRef<'_>) -> Result<SpanEdit, WireError> {
        Ok(if self.0.drops(span) {
            SpanEdit::Drop
        } else {
            SpanEdit::Keep
        })
    }
}

/// First pass of `drop_whole_trace`: the trace ids with a span the rule selects.
struct CollectTraces<'s> {
    settings: &'s FilterSettings,
    traces: HashSet<Vec<u8>>,
}

impl Editor for CollectTraces<'_> {
    fn span(&mut self, span: &SpanRef<'_>) -> Result<SpanEdit, WireError> {
        if !self.traces.contains(span.trace_id) && self.settings.drops(span) {
            self.traces.insert(span.trace_id.to_vec());
        }
        Ok(SpanEdit::Keep)
    }
}

/// Second pass: every span of those traces.
struct DropTraces<'s>(&'s HashSet<Vec<u8>>);

impl Editor for DropTraces<'_> {
    fn span(&mut self, span: &SpanRef<'_>) -> Result<SpanEdit, WireError> {
        Ok(if self.0.contains(span.trace_id) {
            SpanEdit::Drop
        } else {
            SpanEdit::Keep
        })
    }
}

impl FilterProcessor {
    fn walk(&self, payload: &[u8]) -> Result<Outcome, WireError> {
        if matches!(self.settings.rule, Rule::None) {
            return Ok(Outcome::default());
        }
        if !self.settings.drop_whole_trace {
            return rewrite(payload, &mut DropMatching(&self.settings));
        }
        let mut collect = CollectTraces {
            settings: &self.settings,
            traces: HashSet::new(),
        };
        rewrite(payload, &mut collect)?;
        if collect.traces.is_empty() {
            return Ok(Outcome::default());
        }
        rewrite(payload, &mut DropTraces(&collect.traces))
    }

    /// The batch without the dropped spans, or `None` when none is left.
    pub fn process(&self, mut batch: Batch) -> Result<Option<Batch>, ConsumeError> {
        let rejected = |e: &dyn std::fmt::Display| ConsumeError::Rejected {
            reason: format!("{}: malformed {}: {e}", self.id, batch.signal),
        };
        // One contiguous request (a copy only for a batch of several parts): a trace-level condition needs every
        // part's spans at once. A signal without conditions passes untouched.
        let applied = match (batch.signal, &self.settings.metrics, &self.settings.logs) {
            (Signal::Traces, _, _) => None,
            (Signal::Metrics, Some(f), _) => Some(f.apply(&batch.payload.to_bytes())),
            (Signal::Logs, _, Some(f)) => Some(f.apply(&batch.payload.to_bytes())),
            _ => return Ok(Some(batch)),
        };
        let outcome = match applied {
            Some(r) => r
                .map(|(payload, dropped)| Outcome { payload, dropped })
                .map_err(|e| rejected(&e))?,
            None => self
                .walk(&batch.payload.to_bytes())
                .map_err(|e| rejected(&e))?,
        };
        if outcome.dropped > 0 {
            self.filtered.increment(outcome.dropped as u64);
        }
        if let Some(p) = outcome.payload {
            batch.payload = p.into();
            batch.items = batch.items.saturating_sub(outcome.dropped);
        }
        Ok((batch.items > 0 && !batch.payload.is_empty()).then_some(batch))
    }
}

#[async_trait]
impl Consumer for FilterProcessor {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        match self.process(batch)? {
            Some(b) => self.next.consume(b).await,
            None => Ok(()),
        }
    }
}

impl Processor for FilterProcessor {}
