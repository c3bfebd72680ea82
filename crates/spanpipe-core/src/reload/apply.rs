//! The switch-over from a running graph to its rebuilt successor. Components carried over are the same instances
//! in both graphs and are left alone; the rest start or stop in this order:
//!
//! 1. Extensions: replaced and removed ones stop, then new ones start (an extension may hold a port the new
//!    instance needs).
//! 2. The queues of new and changed exporters start (nothing is routed to them yet). If one fails while the old
//!    exporter of the same id still runs — it may hold the same port, as a `prometheus` endpoint does — it is
//!    started again once the old one has drained; any other failure stops what started of the new graph and
//!    abandons the reload, leaving the old pipelines running.
//! 3. New processors and connectors start, downstream first (failures abandon the reload as in 2).
//! 4. Receivers: kept ones switch to the new pipeline heads, and we wait until no batch is still inside the old
//!    heads; changed and removed ones stop (their in-flight requests finish into the old heads); then new and
//!    changed ones start (after the old instance released the port).
//! 5. The old processors that were not carried over stop, upstream first: a batch processor flushes what it
//!    holds into its old downstream — queues that were kept, or queues about to drain.
//! 6. The queues of removed and changed exporters drain in the background until `shutdown_timeout`: their data
//!    is delivered by the exporter that accepted it (the old endpoint), and what is left at the deadline is
//!    counted as failed and logged, as on shutdown.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::ComponentError;
use crate::graph::{Graph, same};
use crate::queue::SendingQueue;
use crate::service::log_totals;

/// How many components a reload kept, replaced, added and removed, and which new ones failed to start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub kept: usize,
    pub replaced: usize,
    pub added: usize,
    pub removed: usize,
    /// Components that could not be started (logged with the reason); the rest of the new config runs.
    pub failed: Vec<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} kept, {} replaced, {} added, {} removed",
            self.kept, self.replaced, self.added, self.removed
        )?;
        if !self.failed.is_empty() {
            write!(f, "; failed to start: {}", self.failed.join(", "))?;
        }
        Ok(())
    }
}

type Named<T> = Vec<(String, Arc<T>)>;

/// A queue a reload retired, draining in the background.
pub struct Retiring {
    pub handle: JoinHandle<()>,
    /// The drain ends by starting the exporter's successor (which could not start next to it); a later reload
    /// waits for that before it may stop the successor.
    pub starts_successor: bool,
}

/// Logs one line per component of `kind` and returns (new instances to start, old instances to stop), each in
/// its graph's order.
fn changes<T: ?Sized>(
    kind: &'static str,
    old: &[(String, Arc<T>)],
    new: &[(String, Arc<T>)],
    summary: &mut Summary,
) -> (Named<T>, Named<T>) {
    let carried = |x: &Arc<T>, list: &[(String, Arc<T>)]| list.iter().any(|(_, y)| same(x, y));
    let named = |n: &str, list: &[(String, Arc<T>)]| list.iter().any(|(m, _)| m == n);
    let mut start = Vec::new();
    for (name, x) in new {
        if carried(x, old) {
            summary.kept += 1;
            tracing::info!(kind, component = %name, "reload: kept (unchanged)");
        } else {
            if named(name, old) {
                summary.replaced += 1;
                tracing::info!(kind, component = %name, "reload: replaced (config changed)");
            } else {
                summary.added += 1;
                tracing::info!(kind, component = %name, "reload: added");
            }
            start.push((name.clone(), x.clone()));
        }
    }
    let mut stop = Vec::new();
    for (name, x) in old {
        if !carried(x, new) {
            if !named(name, new) {
                summary.removed += 1;
                tracing::info!(kind, component = %name, "reload: removed");
            }
            stop.push((name.clone(), x.clone()));
        }
    }
    (start, stop)
}

fn queues(g: &Graph) -> Named<SendingQueue> {
    g.queues.iter().map(|q| (q.id.clone(), q.clone())).collect()
}

/// Stops what started of an abandoned new graph; nothing was routed to it, so nothing is lost.
async fn roll_back(queues: &[Arc<SendingQueue>], processors: &[Arc<dyn crate::Processor>]) {
    for p in processors.iter().rev() {
        p.shutdown().await;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    futures::future::join_all(queues.iter().map(|q| q.shutdown(deadline))).await;
}

/// Switches from `old` to `new` (see the module docs). `timeout` bounds the wait for in-flight batches and each
/// retired queue's drain; the drains run in the background and are pushed to `retiring` for the final shutdown
/// to await.
pub async fn apply(
    old: &Graph,
    new: &Graph,
    timeout: Duration,
    retiring: &mut Vec<Retiring>,
) -> Result<Summary, ComponentError> {
    let mut summary = Summary::default();
    let named_ext = |g: &Graph| -> Named<dyn crate::Extension> {
        let ext = g.extensions.iter();
        ext.map(|(id, e)| (id.to_string(), e.clone())).collect()
    };
    let named_rcv = |g: &Graph| -> Named<dyn crate::Receiver> {
        let rcv = g.receivers.iter();
        rcv.map(|(id, r, _)| (id.to_string(), r.clone())).collect()
    };
    let (ext_start, ext_stop) =
        changes("extension", &named_ext(old), &named_ext(new), &mut summary);
    let (q_start, q_stop) = changes("exporter", &queues(old), &queues(new), &mut summary);
    let (p_start, p_stop) = changes("processor", &old.processors, &new.processors, &mut summary);
    let (r_start, r_stop) = changes("receiver", &named_rcv(old), &named_rcv(new), &mut summary);

    // 1. Extensions.
    for (_, e) in ext_stop.iter().rev() {
        e.shutdown().await;
    }
    for (name, e) in &ext_start {
        if let Err(err) = e.start().await {
            tracing::error!(extension = %name, error = %err, "reload: extension failed to start");
            summary.failed.push(name.clone());
        }
    }

    // 2. Exporter queues.
    let mut started_queues = Vec::new();
    let mut deferred: Named<SendingQueue> = Vec::new();
    for (name, q) in &q_start {
        match q.start().await {
            Ok(()) => started_queues.push(q.clone()),
            Err(err) if q_stop.iter().any(|(n, _)| n == name) => {
                tracing::warn!(exporter = %name, error = %err,
                    "reload: cannot start next to the running instance; starting it once that one has drained");
                deferred.push((name.clone(), q.clone()));
            }
            Err(err) => {
                tracing::error!(exporter = %name, error = %err, "reload abandoned: exporter failed to start");
                roll_back(&started_queues, &[]).await;
                return Err(err);
            }
        }
    }

    // 3. Processors and connectors.
    let mut started_processors = Vec::new();
    for (name, p) in &p_start {
        if let Err(err) = p.start().await {
            tracing::error!(processor = %name, error = %err, "reload abandoned: processor failed to start");
            roll_back(&started_queues, &started_processors).await;
            return Err(err);
        }
        started_processors.push(p.clone());
    }

    // 4. Receivers: switch the kept ones, stop the old, start the new.
    let deadline = Instant::now() + timeout;
    let switches = new.parts.routes.values().flatten().filter_map(|route| {
        let kept = !same(&route.swap.current(), &route.target);
        kept.then(|| route.swap.switch(route.target.clone()))
    });
    if tokio::time::timeout_at(deadline, futures::future::join_all(switches))
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?timeout, "reload: batches still inside the old pipelines; stopping them anyway");
    }
    for (name, r) in &r_stop {
        r.shutdown().await;
        tracing::info!(receiver = %name, "receiver stopped");
    }
    for (id, r, consumers) in &new.receivers {
        if !r_start.iter().any(|(_, s)| same(s, r)) {
            continue;
        }
        match r.start(consumers.clone()).await {
            Ok(()) => tracing::info!(receiver = %id, "receiver started"),
            Err(err) => {
                tracing::error!(receiver = %id, error = %err, "reload: receiver failed to start");
                summary.failed.push(id.to_string());
            }
        }
    }

    // 5. Old processors, upstream first: they flush into their old downstream.
    for (_, p) in p_stop.iter().rev() {
        p.shutdown().await;
    }

    // 6. Retired queues drain in the background; a deferred successor starts after its predecessor.
    let drain_deadline = Instant::now() + timeout;
    for (name, q) in q_stop {
        let next: Vec<Arc<SendingQueue>> = deferred
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, q)| q.clone())
            .collect();
        let starts_successor = !next.is_empty();
        let handle = tokio::spawn(async move {
            q.shutdown(drain_deadline).await;
            log_totals(&q);
            tracing::info!(exporter = %name, "reload: previous instance drained");
            for n in next {
                if let Err(err) = n.start().await {
                    tracing::error!(exporter = %name, error = %err,
                        "reload: exporter failed to start; its queue fills and then refuses data");
                }
            }
        });
        retiring.push(Retiring {
            handle,
            starts_successor,
        });
    }
    Ok(summary)
}
