//! The connector's state behind its lock: series, waiting points, and the counters of what did not go as
//! planned. Synchronous and clock-free (callers pass `now`), so tests and benches drive it directly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Settings;
use crate::extract::{BatchFacts, SpanFacts};
use crate::labels::{LabelsRef, OwnedPoint, TraceLabels, untagged};
use crate::pending::Pending;
use crate::series::{Outcome, SeriesTable, Symbols};

/// Distinct span types and experiments interned before the table starts over.
const SYMBOLS: usize = 4096;

/// Counts of points that lost something (all also exported as internal metrics by the connector).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Points recorded into the overflow series (`max_series` reached).
    pub overflow_points: u64,
    /// Points recorded without their trace's tags because `max_pending_spans` were already waiting.
    pub untagged_pending_full: u64,
    /// Points recorded without tags because their trace's root did not arrive within `tags_wait`.
    pub untagged_no_root: u64,
    /// Series dropped after `series_expiration`.
    pub expired_series: u64,
}

pub struct State {
    settings: Arc<Settings>,
    series: SeriesTable,
    pending: Pending,
    syms: Symbols,
    untagged: TraceLabels,
    pub counts: Counts,
}

impl State {
    pub fn new(settings: Arc<Settings>) -> Self {
        State {
            series: SeriesTable::new(settings.bounds.clone(), settings.max_series),
            pending: Pending::new(settings.tags_wait, settings.max_pending_spans),
            syms: Symbols::new(SYMBOLS),
            untagged: untagged(&settings),
            settings,
            counts: Counts::default(),
        }
    }

    pub fn series(&self) -> &SeriesTable {
        &self.series
    }

    pub fn pending_points(&self) -> usize {
        self.pending.len()
    }

    /// Records a request's spans: with their trace's labels when the root is in this request or was seen within
    /// the wait, held when it may still come, else untagged.
    pub fn record_batch(&mut self, facts: &BatchFacts<'_>, now: Instant, wall_ns: u64) {
        let wait = self.settings.waits_for_root();
        let roots: HashMap<[u8; 16], &TraceLabels, foldhash::fast::RandomState> =
            facts.roots.iter().map(|(t, l)| (*t, l)).collect();
        for (trace, labels) in &facts.roots {
            if let Some(points) = self.pending.take(trace) {
                for p in points {
                    self.record_owned(&p, labels, now, wall_ns);
                }
            }
            if wait {
                self.pending.finish(*trace, (*labels).clone(), now);
            }
        }
        for span in &facts.spans {
            if let Some(labels) = roots.get(&span.trace_id).copied() {
                self.record_facts(span, labels, now, wall_ns);
            } else if let Some(labels) = self.pending.finished(&span.trace_id).cloned() {
                self.record_facts(span, &labels, now, wall_ns);
            } else if !wait || span.root {
                let untagged = self.untagged.clone();
                self.record_facts(span, &untagged, now, wall_ns);
            } else {
                let point = OwnedPoint {
                    value_ms: span.value_ms,
                    root: span.root,
                    status: span.status,
                    span_type: self.syms.get(&span.span_type),
                    experiment: self.syms.get(&span.experiment),
                };
                if let Err(p) = self.pending.hold(span.trace_id, point, now) {
                    self.counts.untagged_pending_full += 1;
                    let untagged = self.untagged.clone();
                    self.record_owned(&p, &untagged, now, wall_ns);
                }
            }
        }
    }

    fn record_facts(&mut self, s: &SpanFacts<'_>, trace: &TraceLabels, now: Instant, wall: u64) {
        let l = LabelsRef {
            root: s.root,
            status: s.status,
            span_type: &s.span_type,
            experiment: &s.experiment,
            trace,
        };
        self.record(&l, s.value_ms, now, wall);
    }

    fn record_owned(&mut self, p: &OwnedPoint, trace: &TraceLabels, now: Instant, wall: u64) {
        let l = LabelsRef {
            root: p.root,
            status: p.status,
            span_type: &p.span_type,
            experiment: &p.experiment,
            trace,
        };
        self.record(&l, p.value_ms, now, wall);
    }

    #[inline]
    fn record(&mut self, l: &LabelsRef<'_>, value: f64, now: Instant, wall: u64) {
        if self.series.record(l, value, now, wall, &mut self.syms) == Outcome::Overflow {
            self.counts.overflow_points += 1;
        }
    }

    /// Periodic housekeeping: records the points whose wait is over (untagged) and drops idle series.
    pub fn sweep(&mut self, now: Instant, wall_ns: u64) {
        let mut expired = Vec::new();
        self.pending.expire(now, |p| expired.push(p));
        self.counts.untagged_no_root += expired.len() as u64;
        let untagged = self.untagged.clone();
        for p in &expired {
            self.record_owned(p, &untagged, now, wall_ns);
        }
        if let Some(idle) = self.settings.series_expiration {
            self.counts.expired_series += self.series.expire(now, idle) as u64;
        }
    }

    /// Records every waiting point untagged (shutdown: no root will come any more).
    pub fn drain_pending(&mut self, now: Instant, wall_ns: u64) {
        let mut all = Vec::new();
        self.pending.drain(|p| all.push(p));
        self.counts.untagged_no_root += all.len() as u64;
        let untagged = self.untagged.clone();
        for p in &all {
            self.record_owned(p, &untagged, now, wall_ns);
        }
    }
}

#[cfg(test)]
mod tests;
