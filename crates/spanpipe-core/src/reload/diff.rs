//! Which components of a running configuration a new one leaves unchanged, so a reload can keep them running.
//!
//! Configs compare by value ([`Node::same_value`]), never by where they were written. A component also counts as
//! changed when its config names (as a plain string, the way every reference is written) an extension that was
//! added, removed or changed. A pipeline is unchanged when its processors and exporters are listed in the same
//! order with unchanged configs and every connector it feeds is unchanged down to the pipelines it feeds in turn:
//! only then can its whole processor chain be carried over with its state (a batch in progress, span-metric
//! histograms).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use spanpipe_config::{CollectorConfig, Section, Value};

use crate::{ComponentId, Node, PipelineId};

/// Compares a running configuration (`old`) with a new one.
pub struct Diff<'a> {
    old: &'a CollectorConfig,
    new: &'a CollectorConfig,
    /// Ids (as written) of extensions enabled in one config and not the other, or enabled in both but changed.
    changed_extensions: BTreeSet<String>,
    pipelines: RefCell<BTreeMap<PipelineId, bool>>,
}

fn node_of<'s>(section: &'s Section, id: &ComponentId) -> Option<&'s Node> {
    section.iter().find(|(i, _, _)| i == id).map(|(_, _, n)| n)
}

fn enabled_extensions(cfg: &CollectorConfig) -> BTreeMap<ComponentId, &Node> {
    cfg.service
        .extensions
        .iter()
        .filter_map(|(id, _)| node_of(&cfg.extensions, id).map(|n| (id.clone(), n)))
        .collect()
}

/// Whether any scalar in `node` is one of `names`.
fn mentions(node: &Node, names: &BTreeSet<String>) -> bool {
    match &node.value {
        Value::Null => false,
        Value::Scalar { text, .. } => names.contains(text),
        Value::Seq(items) => items.iter().any(|n| mentions(n, names)),
        Value::Map(entries) => entries
            .iter()
            .any(|(k, v)| mentions(k, names) || mentions(v, names)),
    }
}

/// The pipelines that list connector `id` as a receiver.
fn fed_by(cfg: &CollectorConfig, id: &ComponentId) -> Vec<PipelineId> {
    cfg.service
        .pipelines
        .iter()
        .filter(|p| p.receivers.iter().any(|(r, _)| r == id))
        .map(|p| p.id.clone())
        .collect()
}

fn ids(list: &[(ComponentId, spanpipe_config::Location)]) -> Vec<&ComponentId> {
    list.iter().map(|(id, _)| id).collect()
}

impl<'a> Diff<'a> {
    pub fn new(old: &'a CollectorConfig, new: &'a CollectorConfig) -> Self {
        let (before, after) = (enabled_extensions(old), enabled_extensions(new));
        let changed_extensions = before
            .keys()
            .chain(after.keys())
            .filter(|id| match (before.get(*id), after.get(*id)) {
                (Some(a), Some(b)) => !a.same_value(b),
                _ => true,
            })
            .map(|id| id.to_string())
            .collect();
        Diff {
            old,
            new,
            changed_extensions,
            pipelines: RefCell::new(BTreeMap::new()),
        }
    }

    /// The same enabled extension with the same config.
    pub fn extension_unchanged(&self, id: &ComponentId) -> bool {
        let enabled = |cfg: &CollectorConfig| cfg.service.extensions.iter().any(|(e, _)| e == id);
        enabled(self.old) && enabled(self.new) && !self.changed_extensions.contains(&id.to_string())
    }

    fn same(&self, old: &Section, new: &Section, id: &ComponentId) -> bool {
        match (node_of(old, id), node_of(new, id)) {
            (Some(a), Some(b)) => a.same_value(b) && !mentions(b, &self.changed_extensions),
            _ => false,
        }
    }

    pub fn receiver_unchanged(&self, id: &ComponentId) -> bool {
        self.same(&self.old.receivers, &self.new.receivers, id)
    }

    pub fn processor_unchanged(&self, id: &ComponentId) -> bool {
        self.same(&self.old.processors, &self.new.processors, id)
    }

    pub fn exporter_unchanged(&self, id: &ComponentId) -> bool {
        self.same(&self.old.exporters, &self.new.exporters, id)
    }

    /// Same config and the same downstream pipelines, each unchanged.
    pub fn connector_unchanged(&self, id: &ComponentId) -> bool {
        if !self.same(&self.old.connectors, &self.new.connectors, id) {
            return false;
        }
        let downstream = fed_by(self.new, id);
        downstream == fed_by(self.old, id) && downstream.iter().all(|p| self.pipeline_unchanged(p))
    }

    /// Whether pipeline `pid`'s head — its processor chain and everything below it — can be carried over.
    pub fn pipeline_unchanged(&self, pid: &PipelineId) -> bool {
        if let Some(known) = self.pipelines.borrow().get(pid) {
            return *known;
        }
        // Provisionally "changed", which also ends a (rejected anyway) connector cycle.
        self.pipelines.borrow_mut().insert(pid.clone(), false);
        let verdict = self.compute_pipeline(pid);
        self.pipelines.borrow_mut().insert(pid.clone(), verdict);
        verdict
    }

    fn compute_pipeline(&self, pid: &PipelineId) -> bool {
        let find = |cfg: &'a CollectorConfig| cfg.service.pipelines.iter().find(|p| &p.id == pid);
        let (Some(old), Some(new)) = (find(self.old), find(self.new)) else {
            return false;
        };
        if ids(&old.processors) != ids(&new.processors)
            || ids(&old.exporters) != ids(&new.exporters)
        {
            return false;
        }
        if !new
            .processors
            .iter()
            .all(|(id, _)| self.processor_unchanged(id))
        {
            return false;
        }
        new.exporters.iter().all(|(id, _)| {
            let is_exporter = |cfg: &CollectorConfig| node_of(&cfg.exporters, id).is_some();
            let is_connector = |cfg: &CollectorConfig| node_of(&cfg.connectors, id).is_some();
            match (is_exporter(self.old), is_exporter(self.new)) {
                (true, true) => self.exporter_unchanged(id),
                (false, false) => {
                    is_connector(self.old) && is_connector(self.new) && self.connector_unchanged(id)
                }
                _ => false,
            }
        })
    }
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
