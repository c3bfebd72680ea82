//! Building the pipeline graph from `service.pipelines`: which exporter queues, connectors and processors each
//! pipeline has, and which pipelines each receiver feeds. Nothing binds or connects here, so `validate` can run
//! it all without side effects.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use spanpipe_config::{CollectorConfig, Location, Pipeline};

use crate::component::{
    BuildContext, Connector, Extension, ExtensionHost, Processor, Receiver, SignalConsumers,
};
use crate::counting::ProcessorCounting;
use crate::fanout::{Fanout, PipelinesFanout};
use crate::queue::SendingQueue;
use crate::reload::Diff;
use crate::{ComponentId, ConfigError, Consumer, Node, PipelineId, Registry, Signal};

mod reuse;
use reuse::Reuse;
pub use reuse::{NamedProcessor, Parts, Route, same};

/// Extensions by id, in start order.
pub type Extensions = Vec<(ComponentId, Arc<dyn Extension>)>;
/// Receivers by id with the consumers each signal feeds.
pub type Receivers = Vec<(ComponentId, Arc<dyn Receiver>, SignalConsumers)>;

/// The built, not yet started, components in lifecycle order.
pub struct Graph {
    pub extensions: Extensions,
    pub queues: Vec<Arc<SendingQueue>>,
    /// Processors and connectors, downstream first (start in this order, stop in reverse).
    pub processors: Vec<(String, Arc<dyn Processor>)>,
    pub receivers: Receivers,
    /// The same instances by key (and each receiver's routes), for a reload to take over.
    pub parts: Parts,
}

fn unknown_type(
    section: &str,
    kind: &str,
    id: &ComponentId,
    key: &Node,
    known: Vec<&String>,
) -> ConfigError {
    let known: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
    let hint = match crate::registry::closest(id.type_name(), known.iter().copied()) {
        Some(near) => format!("did you mean `{near}`? "),
        None => String::new(),
    };
    ConfigError::new(
        key.location.clone(),
        format!("{section}.{id}"),
        format!(
            "unknown {kind} type \"{}\"; {hint}known types: {}",
            id.type_name(),
            known.join(", ")
        ),
    )
}

fn unsupported(
    pipeline: &Pipeline,
    loc: &Location,
    list: &str,
    kind: &str,
    id: &ComponentId,
) -> ConfigError {
    ConfigError::new(
        loc.clone(),
        format!("service.pipelines.{}.{list}", pipeline.id),
        format!("{kind} \"{id}\" does not support {}", pipeline.id.signal),
    )
}

struct Builder<'a> {
    cfg: &'a CollectorConfig,
    reg: &'a Registry,
    queues: BTreeMap<ComponentId, Arc<SendingQueue>>,
    queue_order: Vec<Arc<SendingQueue>>,
    connectors: BTreeMap<(ComponentId, Signal, Signal), Arc<dyn Connector>>,
    heads: BTreeMap<PipelineId, Arc<dyn Consumer>>,
    visiting: BTreeSet<PipelineId>,
    processors: Vec<(String, Arc<dyn Processor>)>,
    /// The extensions of `service.extensions`, built first so other components can look them up.
    host: ExtensionHost,
    /// On a reload: the running graph, whose unchanged parts are taken over instead of built.
    reuse: Option<Reuse<'a>>,
    chains: BTreeMap<PipelineId, Vec<NamedProcessor>>,
    routes: BTreeMap<ComponentId, Vec<Route>>,
}

fn find<'c>(
    list: &'c [(ComponentId, Node, Node)],
    id: &ComponentId,
) -> Option<&'c (ComponentId, Node, Node)> {
    list.iter().find(|(i, _, _)| i == id)
}

fn ctx_with(section: &str, id: &ComponentId, host: &ExtensionHost) -> BuildContext {
    BuildContext::new(id.clone(), format!("{section}.{id}")).with_extensions(host.clone())
}

impl Graph {
    /// Builds every configured component (validating its config) and wires the pipelines.
    pub fn build(cfg: &CollectorConfig, reg: &Registry) -> Result<Graph, ConfigError> {
        Self::build_with_status(cfg, reg, crate::ServiceStatus::default())
    }

    /// As [`Graph::build`], the components reporting to (and health checks reading) `status`.
    pub fn build_with_status(
        cfg: &CollectorConfig,
        reg: &Registry,
        status: crate::ServiceStatus,
    ) -> Result<Graph, ConfigError> {
        Self::build_reusing(cfg, reg, status, None)
    }

    /// Builds the graph of `cfg` for a reload of `running` (built from `running_cfg`): unchanged extensions,
    /// exporter queues, connectors, pipelines and receivers are the running instances (see [`reuse`]). Validates
    /// exactly as [`Graph::build`] and changes nothing that runs.
    pub fn rebuild(
        cfg: &CollectorConfig,
        reg: &Registry,
        status: crate::ServiceStatus,
        running: &Graph,
        running_cfg: &CollectorConfig,
    ) -> Result<Graph, ConfigError> {
        let reuse = Reuse {
            graph: running,
            diff: Diff::new(running_cfg, cfg),
        };
        Self::build_reusing(cfg, reg, status, Some(reuse))
    }

    /// Checks `cfg` as [`Graph::build`] does, reporting every component whose type or config is wrong rather than
    /// the first; with `wiring`, the pipelines are checked too (first problem only) when every component is fine.
    pub fn check(cfg: &CollectorConfig, reg: &Registry, wiring: bool) -> Vec<ConfigError> {
        let status = crate::ServiceStatus::default();
        let mut b = Builder::new(cfg, reg, status.clone(), None);
        let mut errors = b.check_extension_types();
        let mut built = Vec::new();
        // Extensions whose own config is wrong: what names them is not reported again.
        let mut broken = Vec::new();
        for (id, _) in &cfg.service.extensions {
            if let (Some((_, _, node)), Some(f)) = (
                find(&cfg.extensions, id),
                reg.extensions.get(id.type_name()),
            ) {
                match f.build(&ctx_with("extensions", id, &b.host), node) {
                    Ok(e) => built.push((id.clone(), e)),
                    Err(_) => broken.push(format!("extension \"{id}\"")),
                }
            } else {
                broken.push(format!("extension \"{id}\""));
            }
        }
        b.host = ExtensionHost::new(built).with_status(status.clone());
        let follow_on = |e: &ConfigError| broken.iter().any(|x| e.message.contains(x.as_str()));
        errors.extend(b.check_types().into_iter().filter(|e| !follow_on(e)));
        if wiring
            && errors.is_empty()
            && let Err(e) = Self::build_with_status(cfg, reg, status)
        {
            errors.push(e);
        }
        errors
    }

    fn build_reusing(
        cfg: &CollectorConfig,
        reg: &Registry,
        status: crate::ServiceStatus,
        reuse: Option<Reuse<'_>>,
    ) -> Result<Graph, ConfigError> {
        let mut b = Builder::new(cfg, reg, status.clone(), reuse);
        first(b.check_extension_types())?;
        let extensions = b.extensions()?;
        b.host = ExtensionHost::new(extensions.iter().cloned()).with_status(status);
        first(b.check_types())?;
        for p in &cfg.service.pipelines {
            b.pipeline(&p.id)?;
        }
        let receivers = b.receivers()?;
        Ok(Graph {
            extensions,
            queues: b.queue_order,
            processors: b.processors,
            receivers,
            parts: Parts {
                queues: b.queues,
                connectors: b.connectors,
                heads: b.heads,
                chains: b.chains,
                routes: b.routes,
            },
        })
    }
}

/// Records the error of `result`, if any.
fn push_err<T>(errors: &mut Vec<ConfigError>, result: Result<T, ConfigError>) {
    if let Err(e) = result {
        errors.push(e);
    }
}

/// `Err` with the first of `errors`, if any.
fn first(errors: Vec<ConfigError>) -> Result<(), ConfigError> {
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl<'a> Builder<'a> {
    fn new(
        cfg: &'a CollectorConfig,
        reg: &'a Registry,
        status: crate::ServiceStatus,
        reuse: Option<Reuse<'a>>,
    ) -> Self {
        Builder {
            cfg,
            reg,
            queues: BTreeMap::new(),
            queue_order: Vec::new(),
            connectors: BTreeMap::new(),
            heads: BTreeMap::new(),
            visiting: BTreeSet::new(),
            processors: Vec::new(),
            host: ExtensionHost::default().with_status(status),
            reuse,
            chains: BTreeMap::new(),
            routes: BTreeMap::new(),
        }
    }
}

impl Builder<'_> {
    /// Unknown types are reported for every defined component, used or not; unused ones are also built, so their
    /// configs are validated. Every problem found is returned.
    fn check_types(&self) -> Vec<ConfigError> {
        let r = self.reg;
        let mut errors = Vec::new();
        for (id, key, node) in &self.cfg.receivers {
            match r.receivers.get(id.type_name()) {
                Some(f) => push_err(
                    &mut errors,
                    f.build(&ctx_with("receivers", id, &self.host), node),
                ),
                None => errors.push(unknown_type(
                    "receivers",
                    "receiver",
                    id,
                    key,
                    r.receivers.keys().collect(),
                )),
            }
        }
        for (id, key, node) in &self.cfg.processors {
            match r.processors.get(id.type_name()) {
                Some(f) => {
                    let sink: Arc<dyn Consumer> = Arc::new(PipelinesFanout { heads: vec![] });
                    let signal = f.signals().first().copied().unwrap_or(Signal::Traces);
                    let ctx = ctx_with("processors", id, &self.host);
                    push_err(&mut errors, f.build(&ctx, node, signal, sink));
                }
                None => errors.push(unknown_type(
                    "processors",
                    "processor",
                    id,
                    key,
                    r.processors.keys().collect(),
                )),
            }
        }
        for (id, key, node) in &self.cfg.exporters {
            match r.exporters.get(id.type_name()) {
                Some(f) => push_err(
                    &mut errors,
                    f.build(&ctx_with("exporters", id, &self.host), node),
                ),
                None => errors.push(unknown_type(
                    "exporters",
                    "exporter",
                    id,
                    key,
                    r.exporters.keys().collect(),
                )),
            }
        }
        for (id, key, node) in &self.cfg.connectors {
            match r.connectors.get(id.type_name()) {
                Some(f) => push_err(&mut errors, self.check_connector(f.as_ref(), id, node)),
                None => errors.push(unknown_type(
                    "connectors",
                    "connector",
                    id,
                    key,
                    r.connectors.keys().collect(),
                )),
            }
        }
        errors
    }

    /// Builds connector `id` for the first signal pair it supports, so its config is checked even when no
    /// pipeline uses it.
    fn check_connector(
        &self,
        f: &dyn crate::ConnectorFactory,
        id: &ComponentId,
        node: &Node,
    ) -> Result<(), ConfigError> {
        const SIGNALS: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];
        let pair = SIGNALS
            .iter()
            .flat_map(|from| SIGNALS.iter().map(move |to| (*from, *to)))
            .find(|(from, to)| f.supports(*from, *to));
        if let Some((from, to)) = pair {
            let sink: Arc<dyn Consumer> = Arc::new(PipelinesFanout { heads: vec![] });
            f.build(
                &ctx_with("connectors", id, &self.host),
                node,
                from,
                to,
                sink,
            )?;
        }
        Ok(())
    }

    /// Extensions come first: other components' configs may name them.
    fn check_extension_types(&self) -> Vec<ConfigError> {
        let r = self.reg;
        let mut errors = Vec::new();
        for (id, key, node) in &self.cfg.extensions {
            match r.extensions.get(id.type_name()) {
                Some(f) => push_err(
                    &mut errors,
                    f.build(&ctx_with("extensions", id, &self.host), node),
                ),
                None => errors.push(unknown_type(
                    "extensions",
                    "extension",
                    id,
                    key,
                    r.extensions.keys().collect(),
                )),
            }
        }
        errors
    }

    fn extensions(&self) -> Result<Extensions, ConfigError> {
        let mut out = Vec::new();
        for (id, _) in &self.cfg.service.extensions {
            if let (Some((_, _, node)), Some(f)) = (
                find(&self.cfg.extensions, id),
                self.reg.extensions.get(id.type_name()),
            ) {
                let e = match self.reused_extension(id) {
                    Some(e) => e,
                    None => f.build(&ctx_with("extensions", id, &self.host), node)?,
                };
                out.push((id.clone(), e));
            }
        }
        Ok(out)
    }

    /// Builds (once) the head consumer of pipeline `pid`, building the pipelines its connectors feed first.
    fn pipeline(&mut self, pid: &PipelineId) -> Result<Arc<dyn Consumer>, ConfigError> {
        if let Some(h) = self.heads.get(pid) {
            return Ok(h.clone());
        }
        let cfg: &CollectorConfig = self.cfg;
        let p = cfg
            .service
            .pipelines
            .iter()
            .find(|p| &p.id == pid)
            .ok_or_else(|| {
                ConfigError::new(
                    Location {
                        file: "<config>".into(),
                        line: 0,
                        column: 0,
                    },
                    "service.pipelines",
                    format!("pipeline {pid} is not defined"),
                )
            })?;
        if !self.visiting.insert(pid.clone()) {
            return Err(ConfigError::new(
                p.location.clone(),
                format!("service.pipelines.{pid}"),
                "connectors form a cycle through this pipeline",
            ));
        }
        let signal = pid.signal;
        let mut queues = Vec::new();
        let mut connectors: Vec<Arc<dyn Consumer>> = Vec::new();
        for (id, loc) in &p.exporters {
            if let Some((_, _, node)) = find(&cfg.exporters, id) {
                queues.push(self.exporter(p, loc, id, node)?);
            } else if let Some((_, _, node)) = find(&cfg.connectors, id) {
                connectors.extend(self.connector(p, loc, id, node)?);
            }
        }
        let mut next: Arc<dyn Consumer> = Arc::new(Fanout::new(queues, connectors));
        let reused = self.reused_pipeline(pid);
        let mut chain = Vec::new();
        for (id, loc) in p.processors.iter().rev().filter(|_| reused.is_none()) {
            let (_, _, node) = find(&cfg.processors, id).ok_or_else(|| {
                ConfigError::new(
                    loc.clone(),
                    format!("service.pipelines.{pid}.processors"),
                    format!("processor \"{id}\" is not configured"),
                )
            })?;
            let f = self.reg.processors.get(id.type_name()).ok_or_else(|| {
                ConfigError::new(
                    loc.clone(),
                    format!("processors.{id}"),
                    format!("unknown processor type \"{}\"", id.type_name()),
                )
            })?;
            if !f.signals().contains(&signal) {
                return Err(unsupported(p, loc, "processors", "processor", id));
            }
            let counting = ProcessorCounting::new(&id.to_string(), signal);
            let out = counting.outgoing(next);
            let proc = f.build(&ctx_with("processors", id, &self.host), node, signal, out)?;
            let proc = counting.incoming(proc);
            chain.push((format!("{id} in {pid}"), proc.clone()));
            next = proc;
        }
        if let Some((head, kept)) = reused {
            (next, chain) = (head, kept);
        }
        self.processors.extend(chain.iter().cloned());
        self.chains.insert(pid.clone(), chain);
        self.visiting.remove(pid);
        self.heads.insert(pid.clone(), next.clone());
        Ok(next)
    }

    fn exporter(
        &mut self,
        p: &Pipeline,
        loc: &Location,
        id: &ComponentId,
        node: &Node,
    ) -> Result<Arc<SendingQueue>, ConfigError> {
        let f = self.reg.exporters.get(id.type_name()).ok_or_else(|| {
            ConfigError::new(
                loc.clone(),
                format!("exporters.{id}"),
                format!("unknown exporter type \"{}\"", id.type_name()),
            )
        })?;
        if !f.signals().contains(&p.id.signal) {
            return Err(unsupported(p, loc, "exporters", "exporter", id));
        }
        if let Some(q) = self.queues.get(id) {
            return Ok(q.clone());
        }
        if let Some(q) = self.reused_queue(id) {
            self.queues.insert(id.clone(), q.clone());
            self.queue_order.push(q.clone());
            return Ok(q);
        }
        let built = f.build(&ctx_with("exporters", id, &self.host), node)?;
        let q = SendingQueue::new(id.to_string(), built.exporter, built.settings);
        q.counters
            .report_to(self.host.status().exporter(&id.to_string()));
        self.queues.insert(id.clone(), q.clone());
        self.queue_order.push(q.clone());
        Ok(q)
    }

    /// The connector instances pipeline `p` feeds, one per signal of the pipelines that list it as a receiver.
    fn connector(
        &mut self,
        p: &Pipeline,
        loc: &Location,
        id: &ComponentId,
        node: &Node,
    ) -> Result<Vec<Arc<dyn Consumer>>, ConfigError> {
        let f = self
            .reg
            .connectors
            .get(id.type_name())
            .cloned()
            .ok_or_else(|| {
                ConfigError::new(
                    loc.clone(),
                    format!("connectors.{id}"),
                    format!("unknown connector type \"{}\"", id.type_name()),
                )
            })?;
        let downstream: Vec<PipelineId> = self
            .cfg
            .service
            .pipelines
            .iter()
            .filter(|q| q.receivers.iter().any(|(r, _)| r == id))
            .map(|q| q.id.clone())
            .collect();
        if downstream.is_empty() {
            return Err(ConfigError::new(
                loc.clone(),
                format!("service.pipelines.{}.exporters", p.id),
                format!(
                    "connector \"{id}\" is used as an exporter but no pipeline uses it as a receiver"
                ),
            ));
        }
        let mut by_signal: BTreeMap<Signal, Vec<Arc<dyn Consumer>>> = BTreeMap::new();
        for d in &downstream {
            let head = self.pipeline(d)?;
            by_signal.entry(d.signal).or_default().push(head);
        }
        let mut out = Vec::new();
        for (to, heads) in by_signal {
            let from = p.id.signal;
            if !f.supports(from, to) {
                return Err(ConfigError::new(
                    loc.clone(),
                    format!("service.pipelines.{}.exporters", p.id),
                    format!("connector \"{id}\" cannot connect {from} to {to}"),
                ));
            }
            let key = (id.clone(), from, to);
            let c = match self.connectors.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let c = match self.reused_connector(&key) {
                        Some(c) => c,
                        None => f.build(
                            &ctx_with("connectors", id, &self.host),
                            node,
                            from,
                            to,
                            Arc::new(PipelinesFanout { heads }),
                        )?,
                    };
                    self.processors
                        .push((format!("connector {id} {from}->{to}"), c.clone()));
                    self.connectors.insert(key, c.clone());
                    c
                }
            };
            out.push(c as Arc<dyn Consumer>);
        }
        Ok(out)
    }

    fn receivers(&mut self) -> Result<Receivers, ConfigError> {
        let mut out = Vec::new();
        for (id, key, node) in &self.cfg.receivers {
            let f = self.reg.receivers.get(id.type_name()).ok_or_else(|| {
                unknown_type(
                    "receivers",
                    "receiver",
                    id,
                    key,
                    self.reg.receivers.keys().collect(),
                )
            })?;
            let mut targets = Vec::new();
            for signal in [Signal::Traces, Signal::Metrics, Signal::Logs] {
                let mut heads = Vec::new();
                for p in self
                    .cfg
                    .service
                    .pipelines
                    .iter()
                    .filter(|p| p.id.signal == signal)
                {
                    if let Some((_, loc)) = p.receivers.iter().find(|(r, _)| r == id) {
                        if !f.signals().contains(&signal) {
                            return Err(unsupported(p, loc, "receivers", "receiver", id));
                        }
                        heads.push(self.heads.get(&p.id).cloned().ok_or_else(|| {
                            ConfigError::new(
                                loc.clone(),
                                format!("service.pipelines.{}", p.id),
                                "pipeline was not built",
                            )
                        })?);
                    }
                }
                if !heads.is_empty() {
                    let c: Arc<dyn Consumer> = if heads.len() == 1 {
                        heads.remove(0)
                    } else {
                        Arc::new(PipelinesFanout { heads })
                    };
                    targets.push((signal, c));
                }
            }
            if !targets.is_empty() {
                let host = self.host.clone();
                let (r, consumers) = self.receiver_with_routes(id, targets, || {
                    f.build(&ctx_with("receivers", id, &host), node)
                })?;
                out.push((id.clone(), r, consumers));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
