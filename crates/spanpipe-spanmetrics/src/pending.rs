//! Points held until their trace's root span arrives with the trace's tags (`tags_wait`).
//!
//! Over OTLP only the root span carries the tags (`mlflow.traceTag.*`), and it usually ends, and so arrives,
//! last. A trace's other points wait here (small structs, no labels) until the root comes or the wait ends.
//! Traces whose root was seen are remembered for the same wait, so stragglers still get the tags. Both maps are
//! bounded in count: the connector records points at once, without tags, rather than grow past the bound.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::labels::{OwnedPoint, TraceLabels};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

struct Waiting<P> {
    /// Distinguishes this wait from a later one of the same trace id in the expiry queue.
    generation: u64,
    points: Vec<P>,
}

struct Finished<F> {
    until: Instant,
    labels: F,
}

/// The waiting room. Generic over what waits (`P`) and what is remembered of a finished trace (`F`), so the
/// `genai_metrics` connector (crate `spanpipe-genai`) holds its own points with the same bounds and expiry.
pub struct Pending<P = OwnedPoint, F = TraceLabels> {
    wait: Duration,
    max_points: usize,
    traces: Map<[u8; 16], Waiting<P>>,
    /// Trace ids in the order they started waiting, with their deadline.
    queue: VecDeque<([u8; 16], u64, Instant)>,
    points: usize,
    next_generation: u64,
    finished: Map<[u8; 16], Finished<F>>,
    finished_queue: VecDeque<([u8; 16], Instant)>,
}

impl<P, F> Pending<P, F> {
    pub fn new(wait: Duration, max_points: usize) -> Self {
        Pending {
            wait,
            max_points,
            traces: Map::default(),
            queue: VecDeque::new(),
            points: 0,
            next_generation: 0,
            finished: Map::default(),
            finished_queue: VecDeque::new(),
        }
    }

    /// How many finished traces are remembered: a tenth of `max_pending_spans` (at least one). Spans after
    /// their root are rare, so this bounds the memory of remembering (with 100,000 distinct tag values in
    /// flight it would otherwise hold 100,000 label sets) at the cost of tags for very late stragglers.
    pub fn max_finished(&self) -> usize {
        (self.max_points / 10).max(1)
    }

    /// Points held now.
    pub fn len(&self) -> usize {
        self.points
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// Holds `point` for `trace`, or gives it back when `max_pending_spans` points are already held.
    pub fn hold(&mut self, trace: [u8; 16], point: P, now: Instant) -> Result<(), P> {
        if self.points >= self.max_points {
            return Err(point);
        }
        let w = self.traces.entry(trace).or_insert_with(|| {
            self.next_generation += 1;
            self.queue
                .push_back((trace, self.next_generation, now + self.wait));
            Waiting {
                generation: self.next_generation,
                points: Vec::new(),
            }
        });
        w.points.push(point);
        self.points += 1;
        Ok(())
    }

    /// Whether points of `trace` are waiting.
    pub fn is_waiting(&self, trace: &[u8; 16]) -> bool {
        self.traces.contains_key(trace)
    }

    /// The points held for `trace` (its root arrived).
    pub fn take(&mut self, trace: &[u8; 16]) -> Option<Vec<P>> {
        let w = self.traces.remove(trace)?;
        self.points -= w.points.len();
        Some(w.points)
    }

    /// Remembers a trace's labels for late spans, for the wait; past [`Self::max_finished`] traces the oldest
    /// are forgotten.
    pub fn finish(&mut self, trace: [u8; 16], labels: F, now: Instant) {
        let until = now + self.wait;
        while self.finished.len() >= self.max_finished() {
            let Some((old, old_until)) = self.finished_queue.pop_front() else {
                break;
            };
            if self
                .finished
                .get(&old)
                .is_some_and(|f| f.until == old_until)
            {
                self.finished.remove(&old);
            }
        }
        self.finished.insert(trace, Finished { until, labels });
        self.finished_queue.push_back((trace, until));
    }

    /// The labels of a trace whose root was seen within the wait.
    pub fn finished(&self, trace: &[u8; 16]) -> Option<&F> {
        self.finished.get(trace).map(|f| &f.labels)
    }

    /// Hands every point whose wait is over to `expired` (to be recorded without tags), and forgets finished
    /// traces past their wait.
    pub fn expire(&mut self, now: Instant, mut expired: impl FnMut(P)) {
        while let Some(&(trace, generation, deadline)) = self.queue.front() {
            if deadline > now {
                break;
            }
            self.queue.pop_front();
            if self
                .traces
                .get(&trace)
                .is_some_and(|w| w.generation == generation)
                && let Some(points) = self.take(&trace)
            {
                points.into_iter().for_each(&mut expired);
            }
        }
        while let Some(&(trace, until)) = self.finished_queue.front() {
            if until > now {
                break;
            }
            self.finished_queue.pop_front();
            if self.finished.get(&trace).is_some_and(|f| f.until == until) {
                self.finished.remove(&trace);
            }
        }
    }

    /// Everything held, whatever its deadline (shutdown).
    pub fn drain(&mut self, mut f: impl FnMut(P)) {
        for (_, w) in self.traces.drain() {
            w.points.into_iter().for_each(&mut f);
        }
        self.queue.clear();
        self.points = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Status;

    fn p(v: f64) -> OwnedPoint {
        OwnedPoint {
            value_ms: v,
            root: false,
            status: Status::Ok,
            span_type: "LLM".into(),
            experiment: "0".into(),
        }
    }

    #[test]
    fn holds_until_taken_or_expired_and_is_bounded() {
        let t0 = Instant::now();
        let mut pd = Pending::<OwnedPoint>::new(Duration::from_secs(10), 3);
        pd.hold([1; 16], p(1.0), t0).unwrap();
        pd.hold([1; 16], p(2.0), t0).unwrap();
        pd.hold([2; 16], p(3.0), t0 + Duration::from_secs(5))
            .unwrap();
        assert!(pd.hold([3; 16], p(4.0), t0).is_err(), "bound reached");
        assert_eq!(pd.len(), 3);
        let got = pd.take(&[1; 16]).unwrap();
        assert_eq!(
            got.iter().map(|p| p.value_ms).collect::<Vec<_>>(),
            [1.0, 2.0]
        );
        assert_eq!(pd.len(), 1);
        let mut expired = Vec::new();
        pd.expire(t0 + Duration::from_secs(10), |p| expired.push(p.value_ms));
        assert!(expired.is_empty(), "trace 2 waits until t0+15s");
        pd.expire(t0 + Duration::from_secs(15), |p| expired.push(p.value_ms));
        assert_eq!(expired, [3.0]);
        assert!(pd.is_empty());
    }

    #[test]
    fn a_new_wait_of_the_same_trace_is_not_expired_by_the_old_deadline() {
        let t0 = Instant::now();
        let mut pd = Pending::<OwnedPoint>::new(Duration::from_secs(10), 100);
        pd.hold([1; 16], p(1.0), t0).unwrap();
        pd.take(&[1; 16]).unwrap();
        pd.hold([1; 16], p(2.0), t0 + Duration::from_secs(8))
            .unwrap();
        let mut expired = Vec::new();
        pd.expire(t0 + Duration::from_secs(12), |p| expired.push(p.value_ms));
        assert!(expired.is_empty());
        pd.expire(t0 + Duration::from_secs(18), |p| expired.push(p.value_ms));
        assert_eq!(expired, [2.0]);
    }

    #[test]
    fn finished_traces_are_remembered_for_the_wait_and_bounded() {
        let t0 = Instant::now();
        let mut pd = Pending::<OwnedPoint>::new(Duration::from_secs(10), 20);
        let labels: TraceLabels = vec![Some("rust".into())].into();
        pd.finish([1; 16], labels.clone(), t0);
        pd.finish([2; 16], labels.clone(), t0);
        pd.finish([3; 16], labels.clone(), t0);
        assert!(
            pd.finished(&[1; 16]).is_none(),
            "oldest forgotten past the bound"
        );
        assert!(pd.finished(&[3; 16]).is_some());
        pd.expire(t0 + Duration::from_secs(10), |_| {});
        assert!(pd.finished(&[3; 16]).is_none());
        pd.hold([9; 16], p(1.0), t0).unwrap();
        let mut n = 0;
        pd.drain(|_| n += 1);
        assert_eq!((n, pd.len()), (1, 0));
    }
}
