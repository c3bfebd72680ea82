//! The `attributes` processor: the OTel Collector's actions on span attributes, for the spans `include` /
//! `exclude` select. Spans it does not change (not selected, or no action applied) keep their original bytes.

#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use spanpipe_core::wire::WireError;
use spanpipe_core::{
    Batch, BuildContext, ConfigError, ConsumeError, Consumer, Metadata, Node, Processor,
    ProcessorFactory, Signal,
};

use crate::actions::{Action, ActionConfig, apply, compile_actions};
use crate::attrs::{AttrList, replace_attributes};
use crate::config::Invalid;
use crate::matching::{MatchConfig, MatchProperties, SpanFilter};
use crate::rewrite::{Editor, SpanEdit, rewrite_batch};
use crate::span::SpanRef;

/// `attributes` settings: `actions` plus the optional `include` / `exclude` span selection.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AttributesConfig {
    pub actions: Vec<ActionConfig>,
    pub include: Option<MatchProperties>,
    pub exclude: Option<MatchProperties>,
}

/// What an `attributes` processor runs with.
#[derive(Debug)]
pub struct AttributesSettings {
    pub actions: Vec<Action>,
    pub filter: SpanFilter,
}

impl AttributesConfig {
    pub fn validate(&self) -> Result<AttributesSettings, Invalid> {
        let filter = SpanFilter::new(&MatchConfig {
            include: self.include.clone(),
            exclude: self.exclude.clone(),
        })?;
        Ok(AttributesSettings {
            actions: compile_actions(&self.actions, "actions")?,
            filter,
        })
    }
}

/// Builds `attributes` processors.
pub struct AttributesProcessorFactory;

impl ProcessorFactory for AttributesProcessorFactory {
    fn type_name(&self) -> &'static str {
        "attributes"
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
        let cfg: AttributesConfig = ctx.config(node)?;
        let settings = cfg.validate().map_err(|e| e.locate(ctx, node))?;
        Ok(Arc::new(AttributesProcessor {
            id: ctx.id.to_string(),
            settings,
            next,
        }))
    }
}

/// One `attributes` processor instance.
pub struct AttributesProcessor {
    id: String,
    settings: AttributesSettings,
    next: Arc<dyn Consumer>,
}

struct SpanActions<'s> {
    settings: &'s AttributesSettings,
    metadata: &'s Metadata,
}

impl Editor for SpanActions<'_> {
    fn span(&mut self, span: &SpanRef<'_>) -> Result<SpanEdit, WireError> {
        if !self.settings.filter.applies(span) {
            return Ok(SpanEdit::Keep);
        }
        let mut list = AttrList::parse(span.raw, 9)?;
        apply(&self.settings.actions, &mut list, self.metadata);
        if !list.changed() {
            return Ok(SpanEdit::Keep);
        }
        let mut out = Vec::with_capacity(span.raw.len() + 64);
        replace_attributes(span.raw, 9, &list, &mut out)?;
        Ok(SpanEdit::Replace(out))
    }
}

impl AttributesProcessor {
    /// The batch with the actions applied (the same buffer when nothing changed).
    pub fn process(&self, batch: Batch) -> Result<Batch, ConsumeError> {
        if batch.signal != Signal::Traces {
            return Ok(batch);
        }
        let metadata = batch.metadata.clone();
        let mut editor = SpanActions {
            settings: &self.settings,
            metadata: &metadata,
        };
        rewrite_batch(&self.id, batch, &mut editor)
    }
}

#[async_trait]
impl Consumer for AttributesProcessor {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let batch = self.process(batch)?;
        self.next.consume(batch).await
    }
}

impl Processor for AttributesProcessor {}
