//! The running collector: starts the graph exporters-first and stops it receivers-first, draining queues
//! within `service.shutdown_timeout`.

use std::time::Duration;

use tokio::time::Instant;

use spanpipe_config::CollectorConfig;

use crate::graph::Graph;
use crate::queue::SendingQueue;
use crate::telemetry::item_noun;
use crate::{ComponentError, ConfigError, Registry, Signal};

/// A built collector.
pub struct Service {
    graph: Graph,
    shutdown_timeout: Duration,
}

impl Service {
    /// Builds and validates everything; binds nothing.
    pub fn build(config: &CollectorConfig, registry: &Registry) -> Result<Service, ConfigError> {
        Ok(Service {
            graph: Graph::build(config, registry)?,
            shutdown_timeout: config.service.shutdown_timeout.0,
        })
    }

    /// Starts extensions, exporters, processors and connectors (downstream first), then receivers.
    pub async fn start(&self) -> Result<(), ComponentError> {
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
        Ok(())
    }

    /// Receivers stop accepting and finish in-flight requests, processors flush upstream-first, then every
    /// exporter drains its queue until the deadline; what is left is counted as failed and logged.
    pub async fn shutdown(&self) {
        let deadline = Instant::now() + self.shutdown_timeout;
        for (id, r, _) in &self.graph.receivers {
            r.shutdown().await;
            tracing::info!(receiver = %id, "receiver stopped");
        }
        for (_, p) in self.graph.processors.iter().rev() {
            p.shutdown().await;
        }
        let drains = self.graph.queues.iter().map(|q| q.shutdown(deadline));
        futures::future::join_all(drains).await;
        for q in &self.graph.queues {
            log_totals(q);
        }
        for (_, e) in self.graph.extensions.iter().rev() {
            e.shutdown().await;
        }
    }

    /// The exporters' queues, for counts in logs and tests.
    pub fn queues(&self) -> &[std::sync::Arc<SendingQueue>] {
        &self.graph.queues
    }
}

fn log_totals(q: &SendingQueue) {
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
