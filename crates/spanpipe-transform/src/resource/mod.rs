//! The `resource` processor: the OTel Collector's attribute actions on resource attributes (config key
//! `attributes`, as in the Collector). Spans are never read: each `ResourceSpans` keeps its span bytes and only
//! a resource an action changed is re-encoded.

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
use crate::rewrite::{Editor, rewrite_batch};

/// `resource` settings.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceConfig {
    /// The actions (`actions` is accepted as an alias).
    #[serde(alias = "actions")]
    pub attributes: Vec<ActionConfig>,
}

/// Builds `resource` processors.
pub struct ResourceProcessorFactory;

impl ProcessorFactory for ResourceProcessorFactory {
    fn type_name(&self) -> &'static str {
        "resource"
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
        let cfg: ResourceConfig = ctx.config(node)?;
        let actions =
            compile_actions(&cfg.attributes, "attributes").map_err(|e| e.locate(ctx, node))?;
        Ok(Arc::new(ResourceProcessor {
            id: ctx.id.to_string(),
            actions,
            next,
        }))
    }
}

/// One `resource` processor instance.
pub struct ResourceProcessor {
    id: String,
    actions: Vec<Action>,
    next: Arc<dyn Consumer>,
}

struct ResourceActions<'s> {
    actions: &'s [Action],
    metadata: &'s Metadata,
}

impl Editor for ResourceActions<'_> {
    fn resource(&mut self, resource: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
        let mut list = AttrList::parse(resource, 1)?;
        apply(self.actions, &mut list, self.metadata);
        if !list.changed() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(resource.len() + 64);
        replace_attributes(resource, 1, &list, &mut out)?;
        Ok(Some(out))
    }

    fn visits_spans(&self) -> bool {
        false
    }
}

impl ResourceProcessor {
    /// The batch with the actions applied to every resource (the same buffer when nothing changed).
    pub fn process(&self, batch: Batch) -> Result<Batch, ConsumeError> {
        if batch.signal != Signal::Traces {
            return Ok(batch);
        }
        let metadata = batch.metadata.clone();
        let mut editor = ResourceActions {
            actions: &self.actions,
            metadata: &metadata,
        };
        rewrite_batch(&self.id, batch, &mut editor)
    }
}

#[async_trait]
impl Consumer for ResourceProcessor {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let batch = self.process(batch)?;
        self.next.consume(batch).await
    }
}

impl Processor for ResourceProcessor {}
