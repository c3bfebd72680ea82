//! Rebuilding a graph next to a running one (a config reload): what the new graph takes over instead of building.
//!
//! Taken over, as the same instances: extensions, exporter queues (with their queued data and workers) and
//! connectors whose config is unchanged, whole processor chains of unchanged pipelines, and receivers whose config
//! and fed signals are unchanged together with their [`SwapConsumer`]s. Nothing running is touched here: a kept
//! receiver's swaps still point at the old heads until the reload switches them, so a rebuild that fails leaves
//! the running collector exactly as it was.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::component::{Connector, Extension, Processor, Receiver, SignalConsumers};
use crate::queue::SendingQueue;
use crate::reload::Diff;
use crate::swap::SwapConsumer;
use crate::{ComponentId, Consumer, PipelineId, Signal};

use super::{Builder, Graph};

/// A processor or connector with the name it is logged under (`batch in traces`, `connector x traces->metrics`).
pub type NamedProcessor = (String, Arc<dyn Processor>);

/// One signal a receiver feeds: the swap it was started with and the pipeline head(s) the swap should point at.
#[derive(Clone)]
pub struct Route {
    pub signal: Signal,
    pub swap: Arc<SwapConsumer>,
    pub target: Arc<dyn Consumer>,
}

/// The graph's instances by key, for a later rebuild to take over.
#[derive(Default)]
pub struct Parts {
    pub queues: BTreeMap<ComponentId, Arc<SendingQueue>>,
    pub connectors: BTreeMap<(ComponentId, Signal, Signal), Arc<dyn Connector>>,
    pub heads: BTreeMap<PipelineId, Arc<dyn Consumer>>,
    /// Each pipeline's processors, downstream first.
    pub chains: BTreeMap<PipelineId, Vec<NamedProcessor>>,
    pub routes: BTreeMap<ComponentId, Vec<Route>>,
}

/// The running graph and how the new config differs from the one it was built from.
pub struct Reuse<'a> {
    pub graph: &'a Graph,
    pub diff: Diff<'a>,
}

/// Whether two `Arc`s hold the same instance (also for trait objects, whose vtable pointers may differ).
pub fn same<T: ?Sized>(a: &Arc<T>, b: &Arc<T>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

impl Builder<'_> {
    pub(super) fn reused_extension(&self, id: &ComponentId) -> Option<Arc<dyn Extension>> {
        let r = self.reuse.as_ref()?;
        if !r.diff.extension_unchanged(id) {
            return None;
        }
        let found = r.graph.extensions.iter().find(|(i, _)| i == id);
        found.map(|(_, e)| e.clone())
    }

    pub(super) fn reused_queue(&self, id: &ComponentId) -> Option<Arc<SendingQueue>> {
        let r = self.reuse.as_ref()?;
        if !r.diff.exporter_unchanged(id) {
            return None;
        }
        r.graph.parts.queues.get(id).cloned()
    }

    pub(super) fn reused_connector(
        &self,
        key: &(ComponentId, Signal, Signal),
    ) -> Option<Arc<dyn Connector>> {
        let r = self.reuse.as_ref()?;
        if !r.diff.connector_unchanged(&key.0) {
            return None;
        }
        r.graph.parts.connectors.get(key).cloned()
    }

    /// The running head and processor chain of pipeline `pid`, when nothing in or below it changed.
    pub(super) fn reused_pipeline(
        &self,
        pid: &PipelineId,
    ) -> Option<(Arc<dyn Consumer>, Vec<NamedProcessor>)> {
        let r = self.reuse.as_ref()?;
        if !r.diff.pipeline_unchanged(pid) {
            return None;
        }
        let parts = &r.graph.parts;
        Some((
            parts.heads.get(pid)?.clone(),
            parts.chains.get(pid)?.clone(),
        ))
    }

    /// The running receiver `id` and its routes retargeted at `targets`, when its config and the signals it
    /// feeds are unchanged.
    fn reused_receiver(
        &self,
        id: &ComponentId,
        targets: &[(Signal, Arc<dyn Consumer>)],
    ) -> Option<(Arc<dyn Receiver>, Vec<Route>)> {
        let r = self.reuse.as_ref()?;
        if !r.diff.receiver_unchanged(id) {
            return None;
        }
        let (_, receiver, _) = r.graph.receivers.iter().find(|(i, _, _)| i == id)?;
        let old = r.graph.parts.routes.get(id)?;
        let signals = |s: &mut dyn Iterator<Item = Signal>| s.collect::<Vec<Signal>>();
        if signals(&mut old.iter().map(|r| r.signal)) != signals(&mut targets.iter().map(|t| t.0)) {
            return None;
        }
        let routes = old
            .iter()
            .zip(targets)
            .map(|(o, (signal, target))| Route {
                signal: *signal,
                swap: o.swap.clone(),
                target: target.clone(),
            })
            .collect();
        Some((receiver.clone(), routes))
    }

    /// The receiver to run for `id` (taken over, or built by `build`) and the consumers it is started with.
    pub(super) fn receiver_with_routes(
        &mut self,
        id: &ComponentId,
        targets: Vec<(Signal, Arc<dyn Consumer>)>,
        build: impl FnOnce() -> Result<Arc<dyn Receiver>, crate::ConfigError>,
    ) -> Result<(Arc<dyn Receiver>, SignalConsumers), crate::ConfigError> {
        let (receiver, routes) = match self.reused_receiver(id, &targets) {
            Some(kept) => kept,
            None => {
                let routes = targets
                    .into_iter()
                    .map(|(signal, target)| Route {
                        signal,
                        swap: SwapConsumer::new(target.clone()),
                        target,
                    })
                    .collect();
                (build()?, routes)
            }
        };
        let mut consumers = SignalConsumers::default();
        for r in &routes {
            consumers.set(r.signal, r.swap.clone());
        }
        self.routes.insert(id.clone(), routes);
        Ok((receiver, consumers))
    }
}
