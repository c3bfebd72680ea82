//! The balancer: the set of backends (one queue each), the ring over the live ones, and routing a batch onto
//! them all-or-nothing.
//!
//! Membership is what the resolver lists minus the backends found dead ([`crate::backend`]); when every listed
//! backend is dead the ring takes them all, so data waits in their queues (retrying) rather than nowhere. A
//! backend the resolver drops keeps its queue until it is empty: its exporter re-routes what is left over the
//! new ring, then the queue is stopped.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use spanpipe_core::queue::{OnFull, SendingQueue};
use spanpipe_core::wire::split_payload_by;
use spanpipe_core::{Batch, ExportError};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, BackendExporter, accepts_connections};
use crate::config::RoutingKey;
use crate::exporter::BackendTemplate;
use crate::ring::Ring;
use crate::route::span_position;

/// How often an ejected backend is probed, and a retiring queue checked for emptiness.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How long a retiring backend's queue must stay empty before it is stopped (routes that took the old ring
/// just before the change have committed by then).
const RETIRE_GRACE: Duration = Duration::from_secs(2);
/// The deadline of a backend queue's stop (removed backends, and each backend when the exporter stops).
pub(crate) const BACKEND_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The ring and the backend behind each of its endpoints (same order).
#[derive(Default)]
pub(crate) struct Membership {
    pub ring: Ring,
    pub backends: Vec<Arc<Backend>>,
}

#[derive(Default)]
struct Inner {
    /// What the resolver lists now (sorted, deduplicated).
    resolved: Vec<String>,
    /// Every backend with a running queue: members, ejected and retiring ones.
    backends: BTreeMap<String, Arc<Backend>>,
}

/// Routes batches over the backends; see the module doc.
pub(crate) struct Balancer {
    pub id: String,
    routing: RoutingKey,
    template: BackendTemplate,
    weak: Weak<Balancer>,
    inner: Mutex<Inner>,
    membership: RwLock<Arc<Membership>>,
    pub stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Balancer {
    pub fn new(id: String, routing: RoutingKey, template: BackendTemplate) -> Arc<Self> {
        Arc::new_cyclic(|weak| Balancer {
            id,
            routing,
            template,
            weak: weak.clone(),
            inner: Mutex::new(Inner::default()),
            membership: RwLock::new(Arc::default()),
            stop: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current ring and its backends.
    pub fn membership(&self) -> Arc<Membership> {
        self.membership
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `endpoint` is on the current ring.
    pub fn is_member(&self, endpoint: &str) -> bool {
        self.membership()
            .ring
            .endpoints()
            .iter()
            .any(|e| e == endpoint)
    }

    /// Keeps a task to stop with the balancer.
    pub fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(f);
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(h);
    }

    /// The resolver's answer: starts queues for new backends, rebuilds the ring, retires the ones gone.
    pub async fn set_resolved(&self, endpoints: Vec<String>) {
        let mut endpoints = endpoints;
        endpoints.sort();
        endpoints.dedup();
        let new: Vec<String> = {
            let mut inner = self.inner();
            if inner.resolved == endpoints {
                return;
            }
            tracing::info!(exporter = %self.id, backends = ?endpoints, "loadbalancing: backends changed");
            inner.resolved = endpoints.clone();
            endpoints
                .iter()
                .filter(|e| !inner.backends.contains_key(*e))
                .cloned()
                .collect()
        };
        for endpoint in new {
            if let Some(b) = self.start_backend(&endpoint).await {
                self.inner().backends.insert(endpoint, b);
            }
        }
        let retire: Vec<Arc<Backend>> = {
            let inner = self.inner();
            for b in inner.backends.values() {
                if inner.resolved.contains(&b.endpoint) {
                    b.retiring.store(false, Ordering::Relaxed);
                }
            }
            inner
                .backends
                .values()
                .filter(|b| !inner.resolved.contains(&b.endpoint))
                .filter(|b| !b.retiring.swap(true, Ordering::Relaxed))
                .cloned()
                .collect()
        };
        self.recompute();
        for b in retire {
            let me = self.weak.clone();
            self.spawn(async move { retire_when_empty(me, b).await });
        }
    }

    async fn start_backend(&self, endpoint: &str) -> Option<Arc<Backend>> {
        let inner = match self.template.exporter(endpoint) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(exporter = %self.id, backend = endpoint, error = %e, "loadbalancing: backend skipped");
                return None;
            }
        };
        let exporter = Arc::new(BackendExporter {
            endpoint: endpoint.to_string(),
            inner,
            balancer: self.weak.clone(),
        });
        let queue = SendingQueue::new(
            format!("{}/{endpoint}", self.id),
            exporter,
            self.template.settings.clone(),
        );
        if let Err(e) = queue.start().await {
            tracing::error!(exporter = %self.id, backend = endpoint, error = %e, "loadbalancing: backend queue did not start");
            return None;
        }
        Some(Arc::new(Backend::new(endpoint.to_string(), queue)))
    }

    /// Rebuilds the ring from the listed backends that are alive (all listed ones when none is).
    fn recompute(&self) {
        let inner = self.inner();
        let listed: Vec<&Arc<Backend>> = inner
            .resolved
            .iter()
            .filter_map(|e| inner.backends.get(e))
            .collect();
        let alive: Vec<&Arc<Backend>> = listed.iter().copied().filter(|b| b.is_healthy()).collect();
        let chosen = if alive.is_empty() { listed } else { alive };
        let ring = Ring::new(
            &chosen
                .iter()
                .map(|b| b.endpoint.as_str())
                .collect::<Vec<_>>(),
        );
        let backends = ring
            .endpoints()
            .iter()
            .filter_map(|e| inner.backends.get(e).cloned())
            .collect();
        metrics::gauge!("otelcol_loadbalancer_num_backends", "exporter" => self.id.clone())
            .set(ring.endpoints().len() as f64);
        let mut m = self.membership.write().unwrap_or_else(|e| e.into_inner());
        if m.ring != ring {
            *m = Arc::new(Membership { ring, backends });
        }
    }

    /// After a retryable failure of `endpoint`: if it no longer accepts connections, eject it and probe it until
    /// it does. One check at a time per backend; concurrent failures just retry.
    pub async fn check_liveness(&self, endpoint: &str) {
        let Some(b) = self.inner().backends.get(endpoint).cloned() else {
            return;
        };
        if !b.is_healthy() || b.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let alive = accepts_connections(endpoint).await;
        b.checking.store(false, Ordering::Release);
        if alive || !b.healthy.swap(false, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(exporter = %self.id, backend = endpoint,
            "loadbalancing: backend refuses connections; its keys move to the others until it is back");
        self.recompute();
        let me = self.weak.clone();
        self.spawn(async move { probe_until_back(me, b).await });
    }

    /// Routes `batch` over the current ring into the backends' queues, all-or-nothing: room is reserved in every
    /// queue a piece goes to before any piece is committed, so a retry after an error duplicates nothing.
    pub async fn route(&self, batch: &Batch) -> Result<(), ExportError> {
        for _ in 0..3 {
            let m = self.membership();
            if m.ring.is_empty() {
                return Err(ExportError::retryable("loadbalancing: no backends"));
            }
            // Cut part by part: a received request whose spans all go to one backend is passed on, not copied.
            let pieces = split_payload_by(&batch.payload, |ctx| {
                let pos = span_position(&self.routing, ctx)?;
                Ok(m.ring.owner(pos).unwrap_or(0) as u64)
            })
            .map_err(|e| ExportError::undecodable(format!("loadbalancing: {e}")))?;
            let whole = pieces.len() == 1;
            let mut ready = Vec::with_capacity(pieces.len());
            for p in pieces {
                let Some(backend) = m.backends.get(p.group as usize) else {
                    return Err(ExportError::retryable("loadbalancing: ring changed"));
                };
                let part = if whole {
                    batch.clone()
                } else {
                    Batch {
                        signal: batch.signal,
                        payload: p.payload,
                        items: p.spans,
                        metadata: batch.metadata.clone(),
                        held: batch.held.clone(),
                    }
                };
                match backend.queue.try_reserve(&part) {
                    Ok(r) => ready.push((r, part)),
                    Err(full) if full.policy == OnFull::Refuse => {
                        return Err(ExportError::retryable(format!(
                            "loadbalancing: sending queue of backend {} is full",
                            backend.endpoint
                        )));
                    }
                    Err(_) => {
                        backend
                            .queue
                            .counters
                            .enqueue_failed
                            .add(part.signal, part.items);
                    }
                }
            }
            if !Arc::ptr_eq(&m, &self.membership()) {
                continue; // the ring changed while reserving: route again on the new one
            }
            for (r, part) in ready {
                r.send(part).await;
            }
            return Ok(());
        }
        Err(ExportError::retryable("loadbalancing: backends changing"))
    }

    /// Stops the resolver and probes, then every backend queue: the ones off the ring first, so what they hold
    /// is re-routed into the members' queues before those drain.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        let deadline = Instant::now() + BACKEND_STOP_TIMEOUT;
        let all: Vec<Arc<Backend>> = self.inner().backends.values().cloned().collect();
        let (members, others): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|b| self.is_member(&b.endpoint));
        for b in others.iter().chain(members.iter()) {
            b.queue.shutdown(deadline).await;
        }
        self.inner().backends.clear();
    }
}

/// Waits until a backend the resolver dropped has an empty queue for [`RETIRE_GRACE`], then stops it, unless it
/// is listed again meanwhile.
async fn retire_when_empty(me: Weak<Balancer>, b: Arc<Backend>) {
    let mut empty_since: Option<Instant> = None;
    loop {
        let Some(balancer) = me.upgrade() else { return };
        if !b.retiring.load(Ordering::Relaxed) {
            return;
        }
        if b.queue.size() == 0 {
            let since = *empty_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= RETIRE_GRACE {
                let removed = {
                    let mut inner = balancer.inner();
                    if inner.resolved.contains(&b.endpoint) {
                        false
                    } else {
                        inner.backends.remove(&b.endpoint).is_some()
                    }
                };
                if removed {
                    tracing::info!(exporter = %balancer.id, backend = %b.endpoint, "loadbalancing: backend removed");
                    b.queue
                        .shutdown(Instant::now() + BACKEND_STOP_TIMEOUT)
                        .await;
                }
                return;
            }
        } else {
            empty_since = None;
        }
        let stop = balancer.stop.clone();
        drop(balancer);
        tokio::select! {
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Probes an ejected backend until it accepts connections again, then puts it back on the ring.
async fn probe_until_back(me: Weak<Balancer>, b: Arc<Backend>) {
    loop {
        let Some(stop) = me.upgrade().map(|m| m.stop.clone()) else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
        if accepts_connections(&b.endpoint).await {
            let Some(balancer) = me.upgrade() else { return };
            b.healthy.store(true, Ordering::Release);
            tracing::info!(exporter = %balancer.id, backend = %b.endpoint, "loadbalancing: backend is back");
            balancer.recompute();
            return;
        }
    }
}

#[cfg(test)]
mod tests;
