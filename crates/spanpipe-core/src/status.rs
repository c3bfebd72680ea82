//! The service's own state and every exporter's recent send outcomes, shared with the components that report
//! on health (the `health_check` extension) without them knowing the graph.
//!
//! The service sets [`ServiceState`] as it starts and stops; each exporter's sending queue records whether a batch
//! was finally delivered or failed (through [`crate::telemetry::ExporterCounters`]), so a health check can tell
//! "an exporter has failed every send for a while" from "one send failed once".

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Where the service is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceState {
    /// Built, components starting; not every pipeline runs yet.
    Starting,
    /// Every component started.
    Running,
    /// A stop signal arrived: receivers stop, queues drain.
    Stopping,
}

impl ServiceState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => ServiceState::Running,
            2 => ServiceState::Stopping,
            _ => ServiceState::Starting,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            ServiceState::Starting => 0,
            ServiceState::Running => 1,
            ServiceState::Stopping => 2,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain values behind the locks; a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct Inner {
    state: AtomicU8,
    /// When the service last became `Running` (wall clock for display, monotonic for uptime).
    running_since: Mutex<Option<(SystemTime, Instant)>>,
    exporters: Mutex<BTreeMap<String, Arc<ExporterHealth>>>,
}

/// Shared, cheap to clone. One per service; a reloaded graph keeps using the same one, so an exporter that is
/// rebuilt under the same id keeps its history.
#[derive(Clone, Default)]
pub struct ServiceStatus(Arc<Inner>);

impl std::fmt::Debug for ServiceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceStatus")
            .field("state", &self.state())
            .finish()
    }
}

impl ServiceStatus {
    pub fn state(&self) -> ServiceState {
        ServiceState::from_u8(self.0.state.load(Ordering::Acquire))
    }

    /// Records a state change (logged once per change).
    pub fn set_state(&self, state: ServiceState) {
        let old = ServiceState::from_u8(self.0.state.swap(state.as_u8(), Ordering::AcqRel));
        if old == state {
            return;
        }
        if state == ServiceState::Running {
            *lock(&self.0.running_since) = Some((SystemTime::now(), Instant::now()));
        }
        tracing::debug!(from = ?old, to = ?state, "service state changed");
    }

    /// When the service last became `Running`, if it is running.
    pub fn running_since(&self) -> Option<(SystemTime, Instant)> {
        match self.state() {
            ServiceState::Running => *lock(&self.0.running_since),
            _ => None,
        }
    }

    /// The send-outcome record of exporter `id`, created on first use.
    pub fn exporter(&self, id: &str) -> Arc<ExporterHealth> {
        lock(&self.0.exporters)
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    /// Exporters whose sends have all failed for at least `interval` and more than `threshold` times in a row,
    /// with how long they have been failing.
    pub fn failing_exporters(&self, interval: Duration, threshold: u64) -> Vec<(String, Duration)> {
        let now = Instant::now();
        lock(&self.0.exporters)
            .iter()
            .filter_map(|(id, h)| {
                let (since, failures) = h.streak()?;
                let failing_for = now.saturating_duration_since(since);
                (failing_for >= interval && failures > threshold).then(|| (id.clone(), failing_for))
            })
            .collect()
    }
}

#[derive(Default, Clone, Copy)]
struct Streak {
    /// The first failure after the last success.
    failing_since: Option<Instant>,
    failures: u64,
}

/// One exporter's current run of failed sends (a "send" is a batch's final outcome, after retries).
#[derive(Default)]
pub struct ExporterHealth {
    streak: Mutex<Streak>,
}

impl ExporterHealth {
    /// A batch was delivered: the exporter is healthy again.
    pub fn success(&self) {
        *lock(&self.streak) = Streak::default();
    }

    /// A batch was given up on.
    pub fn failure(&self) {
        let mut s = lock(&self.streak);
        s.failing_since.get_or_insert_with(Instant::now);
        s.failures = s.failures.saturating_add(1);
    }

    /// Since when and how many times in a row sends have failed; `None` while the last send succeeded.
    pub fn streak(&self) -> Option<(Instant, u64)> {
        let s = *lock(&self.streak);
        Some((s.failing_since?, s.failures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_changes_and_running_since() {
        let s = ServiceStatus::default();
        assert_eq!(s.state(), ServiceState::Starting);
        assert!(s.running_since().is_none());
        s.set_state(ServiceState::Running);
        assert_eq!(s.state(), ServiceState::Running);
        let (_, first) = s.running_since().unwrap();
        s.set_state(ServiceState::Running);
        assert_eq!(
            s.running_since().unwrap().1,
            first,
            "same state keeps upSince"
        );
        s.clone().set_state(ServiceState::Stopping);
        assert_eq!(s.state(), ServiceState::Stopping, "clones share the state");
        assert!(s.running_since().is_none());
    }

    #[test]
    fn an_exporter_fails_only_after_interval_and_threshold() {
        let s = ServiceStatus::default();
        let a = s.exporter("otlp/a");
        assert!(Arc::ptr_eq(&a, &s.exporter("otlp/a")));
        s.exporter("otlp/b").success();
        assert!(s.failing_exporters(Duration::ZERO, 0).is_empty());
        a.failure();
        a.failure();
        assert_eq!(s.failing_exporters(Duration::ZERO, 1).len(), 1);
        assert!(
            s.failing_exporters(Duration::ZERO, 2).is_empty(),
            "2 failures are not more than 2"
        );
        assert!(
            s.failing_exporters(Duration::from_secs(3600), 0).is_empty(),
            "not failing long enough"
        );
        a.success();
        assert!(s.failing_exporters(Duration::ZERO, 0).is_empty());
        assert!(a.streak().is_none());
    }

    #[test]
    fn the_streak_starts_at_the_first_failure() {
        let h = ExporterHealth::default();
        h.failure();
        let (since, _) = h.streak().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        h.failure();
        assert_eq!(h.streak().unwrap(), (since, 2));
    }
}
