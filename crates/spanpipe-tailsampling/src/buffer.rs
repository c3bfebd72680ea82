//! The trace table: undecided traces in arrival order (so the oldest is found first), the decisions remembered
//! after a trace's spans are gone, and the outbox of kept spans waiting to go downstream. Synchronous and
//! clock-free (callers pass `now`), so it is tested without a runtime.
//!
//! A trace is decided when its `decision_wait` has passed, early when it is the oldest and the table is past
//! `num_traces` or `max_buffered_bytes`, or at once when it alone passes `maximum_trace_size_bytes`. Spans of a
//! decided trace follow its decision for as long as it is remembered: in the decision caches
//! (`decision_cache`) or among the last `num_traces` decisions (the Collector keeps decided traces in its table
//! until `num_traces` newer ones push them out).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::lru::{Lru, TraceKey, trace_key};
use crate::metrics::Metrics;
use crate::policy::{Decision, Policy, final_decision};
use crate::trace::{Piece, TraceData};

/// The table's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub decision_wait: Duration,
    pub num_traces: usize,
    /// 0: none.
    pub max_trace_bytes: usize,
    /// 0: none.
    pub max_buffered_bytes: usize,
    pub sampled_cache: usize,
    pub non_sampled_cache: usize,
}

/// One undecided trace.
struct Pending {
    trace_id: Vec<u8>,
    pieces: Vec<Piece>,
    spans: usize,
    bytes: usize,
    seq: u64,
    deadline: Instant,
}

/// The policies of one processor, evaluated `drop` first as in the Collector.
pub struct Sampler {
    /// (index in config order, policy, is a `drop` policy), in evaluation order.
    policies: Vec<(usize, Policy)>,
    sample_on_first_match: bool,
}

impl Sampler {
    /// `policies` in config order with whether each is a `drop` policy.
    pub fn new(policies: Vec<(Policy, bool)>, sample_on_first_match: bool) -> Self {
        let mut indexed: Vec<(usize, Policy, bool)> = policies
            .into_iter()
            .enumerate()
            .map(|(i, (p, d))| (i, p, d))
            .collect();
        indexed.sort_by_key(|(i, _, is_drop)| (!*is_drop, *i));
        Sampler {
            policies: indexed.into_iter().map(|(i, p, _)| (i, p)).collect(),
            sample_on_first_match,
        }
    }

    /// The trace's decision, counting each policy's verdict and error.
    pub fn decide(&mut self, t: &TraceData<'_>, now: Instant, metrics: &Metrics) -> Decision {
        let mut verdicts = Vec::with_capacity(self.policies.len());
        for (i, p) in &mut self.policies {
            match p.evaluate(t, now) {
                Ok(d) => {
                    if let Some(m) = metrics.per_policy.get(*i) {
                        m.get(d).add(1);
                    }
                    verdicts.push(d);
                    if d == Decision::Dropped
                        || (self.sample_on_first_match && d == Decision::Sampled)
                    {
                        break;
                    }
                }
                Err(e) => {
                    if let Some(c) = metrics.policy_errors.get(*i) {
                        c.add(1);
                    }
                    tracing::debug!(error = %e, "tail_sampling: a policy could not read a trace");
                }
            }
        }
        let d = final_decision(verdicts);
        metrics.global.get(d).add(1);
        d
    }
}

/// Where an accepted piece went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Held until its trace is decided.
    Buffered,
    /// Its trace was decided "keep" before: into the outbox.
    Released,
    /// Its trace was decided "drop" before: dropped.
    Dropped,
}

/// Why a trace was decided before its `decision_wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Early {
    NumTraces,
    Bytes,
    TraceSize,
}

/// The trace table of one processor.
pub struct Buffer {
    limits: Limits,
    sampler: Sampler,
    metrics: Arc<Metrics>,
    pending: HashMap<TraceKey, Pending, foldhash::fast::RandomState>,
    /// Arrival sequence → trace: the oldest first (deadlines are in the same order).
    order: BTreeMap<u64, TraceKey>,
    next_seq: u64,
    bytes: usize,
    sampled: Lru<Instant>,
    non_sampled: Lru<Instant>,
    /// The last `num_traces` decisions: (kept, when).
    recent: Lru<(bool, Instant)>,
    /// Kept pieces waiting to be handed downstream, in order.
    pub outbox: Vec<Piece>,
}

impl Buffer {
    pub fn new(limits: Limits, sampler: Sampler, metrics: Arc<Metrics>, expected: usize) -> Self {
        let mut pending = HashMap::default();
        // A sizing hint, not a promise: never more than num_traces, nor a million entries up front.
        pending.reserve(expected.min(limits.num_traces).min(1 << 20));
        Buffer {
            limits,
            sampler,
            metrics,
            pending,
            order: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
            sampled: Lru::new(limits.sampled_cache),
            non_sampled: Lru::new(limits.non_sampled_cache),
            recent: Lru::new(limits.num_traces),
            outbox: Vec::new(),
        }
    }

    /// Undecided traces held.
    pub fn traces(&self) -> usize {
        self.pending.len()
    }

    /// Bytes of undecided traces held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the oldest undecided trace is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let key = self.order.first_key_value()?.1;
        self.pending.get(key).map(|p| p.deadline)
    }

    fn late(&self, piece: &Piece, kept: bool, decided: Instant, now: Instant) {
        let m = &self.metrics;
        let count = if kept {
            &m.late_sampled
        } else {
            &m.late_not_sampled
        };
        count.add(piece.spans as u64);
        m.late_span_age
            .record(now.saturating_duration_since(decided).as_secs_f64());
    }

    /// Takes one trace's piece.
    pub fn accept(&mut self, trace_id: &[u8], piece: Piece, now: Instant) -> Route {
        let key = trace_key(trace_id);
        if let Some(at) = self.sampled.get(key) {
            self.late(&piece, true, at, now);
            self.outbox.push(piece);
            return Route::Released;
        }
        if let Some(at) = self.non_sampled.get(key) {
            self.late(&piece, false, at, now);
            return Route::Dropped;
        }
        if let Some(p) = self.pending.get_mut(&key) {
            let len = piece.bytes.len();
            p.spans += piece.spans;
            p.bytes += len;
            p.pieces.push(piece);
            self.bytes += len;
            if self.limits.max_trace_bytes > 0 && p.bytes > self.limits.max_trace_bytes {
                self.decide(key, now, Some(Early::TraceSize));
            }
            self.enforce(now);
            self.publish();
            return Route::Buffered;
        }
        if let Some((kept, at)) = self.recent.get(key) {
            self.late(&piece, kept, at, now);
            if kept {
                self.outbox.push(piece);
                return Route::Released;
            }
            return Route::Dropped;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let len = piece.bytes.len();
        self.pending.insert(
            key,
            Pending {
                trace_id: trace_id.to_vec(),
                spans: piece.spans,
                bytes: len,
                pieces: vec![piece],
                seq,
                deadline: now + self.limits.decision_wait,
            },
        );
        self.order.insert(seq, key);
        self.bytes += len;
        self.metrics.new_traces.add(1);
        if self.limits.max_trace_bytes > 0 && len > self.limits.max_trace_bytes {
            self.decide(key, now, Some(Early::TraceSize));
        }
        self.enforce(now);
        self.publish();
        Route::Buffered
    }

    /// Decides the oldest traces while the table is past `num_traces` or `max_buffered_bytes`.
    fn enforce(&mut self, now: Instant) {
        loop {
            let reason = if self.pending.len() > self.limits.num_traces {
                Early::NumTraces
            } else if self.limits.max_buffered_bytes > 0
                && self.bytes > self.limits.max_buffered_bytes
            {
                Early::Bytes
            } else {
                return;
            };
            let Some((_, key)) = self.order.first_key_value() else {
                return;
            };
            let key = *key;
            self.decide(key, now, Some(reason));
        }
    }

    fn publish(&self) {
        self.metrics.traces_on_memory.set(self.pending.len() as f64);
        self.metrics.buffered_bytes.set(self.bytes as f64);
    }

    /// Decides up to `max` traces whose `decision_wait` has passed (oldest first); returns how many.
    pub fn decide_due(&mut self, now: Instant, max: usize) -> usize {
        let mut n = 0;
        while n < max
            && let Some(d) = self.next_deadline()
            && d <= now
        {
            let Some((_, key)) = self.order.first_key_value() else {
                break;
            };
            let key = *key;
            self.decide(key, now, None);
            n += 1;
        }
        self.publish();
        n
    }

    /// Decides (or, with `drop`, drops uncounted by policies but counted as dropped too early) every undecided
    /// trace: the drain at shutdown.
    pub fn decide_all(&mut self, now: Instant, drop: bool) {
        while let Some((_, key)) = self.order.first_key_value() {
            let key = *key;
            if drop {
                if let Some(p) = self.remove(key) {
                    drop_pending(p, &self.metrics);
                }
            } else {
                self.decide(key, now, None);
            }
        }
        self.publish();
    }

    fn remove(&mut self, key: TraceKey) -> Option<Pending> {
        let p = self.pending.remove(&key)?;
        self.order.remove(&p.seq);
        self.bytes -= p.bytes;
        Some(p)
    }

    fn decide(&mut self, key: TraceKey, now: Instant, early: Option<Early>) {
        let Some(p) = self.remove(key) else {
            return;
        };
        match early {
            Some(Early::NumTraces) => self.metrics.decided_early_num_traces.add(1),
            Some(Early::Bytes) => self.metrics.decided_early_bytes.add(1),
            Some(Early::TraceSize) => self.metrics.decided_early_trace_size.add(1),
            None => {}
        }
        let data = TraceData::new(&p.trace_id, &p.pieces, p.spans);
        let keep = self.sampler.decide(&data, now, &self.metrics) == Decision::Sampled;
        if keep {
            self.sampled.put(key, now);
            self.outbox.extend(p.pieces);
        } else {
            self.non_sampled.put(key, now);
        }
        self.recent.put(key, (keep, now));
    }
}

fn drop_pending(p: Pending, metrics: &Metrics) {
    metrics.dropped_too_early.add(1);
    tracing::debug!(
        spans = p.spans,
        "tail_sampling: undecided trace dropped at shutdown"
    );
}
