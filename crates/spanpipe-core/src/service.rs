//! The running collector: starts the graph exporters-first and stops it receivers-first, draining queues
//! within `service.shutdown_timeout`; on a reload swaps in the graph of a new configuration (see [`crate::reload`]).

use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;

use tokio::time::Instant;

use spanpipe_config::CollectorConfig;

use crate::graph::Graph;
use crate::queue::SendingQueue;
use crate::reload::{ReloadError, Retiring, Summary};
use crate::telemetry::item_noun;
use crate::{ComponentError, ConfigError, Registry, ServiceState, ServiceStatus, Signal};

/// A built collector.
pub struct Service {
    graph: Graph,
    shutdown_timeout: Duration,
    /// Starting → Running → Stopping, and exporter send outcomes; read by health checks.
    status: ServiceStatus,
    /// The configuration `graph` was built from, to compare a reloaded one with.
    config: CollectorConfig,
    /// Queues a reload retired, draining in the background; shutdown waits for them.
    retiring: Mutex<Vec<Retiring>>,
}

/// `service.memory_limit` in bytes for the process budget (0: unlimited).
fn memory_limit(config: &CollectorConfig) -> usize {
    usize::try_from(config.service.memory_limit.0).unwrap_or(usize::MAX)
}

impl Service {
    /// Builds and validates everything; binds nothing.
    pub fn build(config: &CollectorConfig, registry: &Registry) -> Result<Service, ConfigError> {
        let status = ServiceStatus::default();
        Ok(Service {
            graph: Graph::build_with_status(config, registry, status.clone())?,
            shutdown_timeout: config.service.shutdown_timeout.0,
            status,
            config: config.clone(),
            retiring: Mutex::new(Vec::new()),
        })
    }

    /// Applies a new configuration to the running service, replacing only the components whose config changed
    /// (an unchanged exporter keeps its queued data). An invalid configuration, or a new component that fails to
    /// start, leaves the running pipelines as they were. Logs one line per component and returns the counts.
    pub async fn reload(
        &mut self,
        config: CollectorConfig,
        registry: &Registry,
    ) -> Result<Summary, ReloadError> {
        // An exporter still waiting to start after its predecessor drains must have started before it can be
        // stopped again (bounded by the previous reload's drain deadline).
        let waiting: Vec<JoinHandle<()>> = {
            let mut retiring = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
            let (successors, rest) = std::mem::take(&mut *retiring)
                .into_iter()
                .partition(|r| r.starts_successor && !r.handle.is_finished());
            *retiring = rest;
            successors.into_iter().map(|r| r.handle).collect()
        };
        if !waiting.is_empty() {
            tracing::info!("reload: waiting for exporters of the previous reload to start");
            futures::future::join_all(waiting).await;
        }
        let status = self.status.clone();
        let graph = Graph::rebuild(&config, registry, status, &self.graph, &self.config)?;
        let timeout = config.service.shutdown_timeout.0;
        let mut retiring = Vec::new();
        let summary = crate::reload::apply(&self.graph, &graph, timeout, &mut retiring).await?;
        let mut pending = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|r| !r.handle.is_finished());
        pending.extend(retiring);
        drop(pending);
        crate::budget::MemoryBudget::global().set_limit(memory_limit(&config));
        self.graph = graph;
        self.config = config;
        self.shutdown_timeout = timeout;
        Ok(summary)
    }

    /// Starts extensions, exporters, processors and connectors (downstream first), then receivers.
    pub async fn start(&self) -> Result<(), ComponentError> {
        crate::budget::MemoryBudget::global().set_limit(memory_limit(&self.config));
        for (_, e) in &self.graph.extensions {
            e.start().await?;
        }
        for q in &self.graph.queues {
            q.start().await?;
        }
        for (_, p) in &self.graph.processors {
            p.start().await?;
        }
        for (id, r, consumers) in &self.graph.receivers {
            r.start(consumers.clone()).await?;
            tracing::info!(receiver = %id, "receiver started");
        }
        self.status.set_state(ServiceState::Running);
        Ok(())
    }

    /// Receivers stop accepting and finish in-flight requests, processors flush upstream-first, then every
    /// exporter drains its queue until the deadline; what is left is counted as failed and logged.
    pub async fn shutdown(&self) {
        self.status.set_state(ServiceState::Stopping);
        let deadline = Instant::now() + self.shutdown_timeout;
        for (id, r, _) in &self.graph.receivers {
            r.shutdown().await;
            tracing::info!(receiver = %id, "receiver stopped");
        }
        for (_, p) in self.graph.processors.iter().rev() {
            p.shutdown().await;
        }
        // Queues a reload retired first (each bounded by its own deadline): one may still start its successor,
        // which must not happen after that successor was stopped below.
        let retiring: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.retiring.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .map(|r| r.handle)
                .collect();
        futures::future::join_all(retiring).await;
        let drains = self.graph.queues.iter().map(|q| q.shutdown(deadline));
        futures::future::join_all(drains).await;
        for q in &self.graph.queues {
            log_totals(q);
        }
        for (_, e) in self.graph.extensions.iter().rev() {
            e.shutdown().await;
        }
    }

    /// The service's state and exporter send outcomes.
    pub fn status(&self) -> &ServiceStatus {
        &self.status
    }

    /// The exporters' queues, for counts in logs and tests.
    pub fn queues(&self) -> &[std::sync::Arc<SendingQueue>] {
        &self.graph.queues
    }
}

/// One line per signal an exporter handled: sent, failed, dropped.
pub(crate) fn log_totals(q: &SendingQueue) {
    for s in [Signal::Traces, Signal::Metrics, Signal::Logs] {
        let (sent, failed, dropped) = (
            q.counters.sent.get(s),
            q.counters.send_failed.get(s),
            q.counters.enqueue_failed.get(s),
        );
        if sent + failed + dropped > 0 {
            tracing::info!(exporter = %q.id, sent, send_failed = failed, enqueue_failed = dropped,
                noun = item_noun(s), "exporter totals");
        }
    }
}
