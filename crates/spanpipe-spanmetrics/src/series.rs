//! Cumulative histograms per label set, with a cap on the number of series, an overflow series, and expiry.
//!
//! A point is looked up by a hash of its borrowed labels in a `hashbrown::HashTable` of slot indices, so
//! recording into an existing series allocates nothing; only a new series copies its labels (as shared
//! `Arc<str>`s). Memory is bounded by `max_series`: past it, points go to the single overflow series.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use crate::labels::{LabelsRef, Status, TraceLabels};

/// Explicit-bucket histogram state, as OTLP's `HistogramDataPoint` carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// `bounds.len() + 1` counts; bucket `i` holds values in `(bounds[i-1], bounds[i]]`, the last one the rest.
    pub counts: Box<[u64]>,
    pub sum: f64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
}

impl Histogram {
    pub fn new(bounds: usize) -> Self {
        Histogram {
            counts: vec![0; bounds + 1].into(),
            sum: 0.0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Adds one value (upper bounds are inclusive, as in the OTel SDKs).
    #[inline]
    pub fn record(&mut self, bounds: &[f64], v: f64) {
        let i = bounds.partition_point(|b| *b < v);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += v;
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

/// One label set's histogram.
#[derive(Debug)]
pub struct Series {
    hash: u64,
    pub root: bool,
    pub status: Status,
    pub span_type: Arc<str>,
    pub experiment: Arc<str>,
    pub trace: TraceLabels,
    pub hist: Histogram,
    /// Fixed while the series lives: the start of its cumulative count.
    pub start_unix_nano: u64,
    last_update: Instant,
}

impl Series {
    fn matches(&self, l: &LabelsRef<'_>) -> bool {
        self.root == l.root
            && self.status == l.status
            && *self.span_type == *l.span_type
            && *self.experiment == *l.experiment
            && (Arc::ptr_eq(&self.trace, l.trace) || self.trace[..] == l.trace[..])
    }
}

/// The series points go to once `max_series` is reached, labelled only `otel.metric.overflow="true"`.
#[derive(Debug)]
pub struct Overflow {
    pub hist: Histogram,
    pub start_unix_nano: u64,
    last_update: Instant,
}

/// Where a point went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Existing,
    Created,
    Overflow,
}

/// Interned label strings: the few span types and experiments are shared by all series and pending points.
/// Bounded: when full it starts over (live holders keep their `Arc`s).
pub struct Symbols {
    set: HashSet<Arc<str>, foldhash::fast::RandomState>,
    cap: usize,
}

impl Symbols {
    pub fn new(cap: usize) -> Self {
        Symbols {
            set: HashSet::default(),
            cap,
        }
    }

    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        if self.set.len() >= self.cap {
            self.set.clear();
        }
        let a: Arc<str> = Arc::from(s);
        self.set.insert(a.clone());
        a
    }
}

/// All series of one connector.
pub struct SeriesTable {
    bounds: Arc<[f64]>,
    max_series: usize,
    index: HashTable<u32>,
    slots: Vec<Option<Series>>,
    free: Vec<u32>,
    live: usize,
    overflow: Option<Overflow>,
    /// Randomly seeded: label values come from clients, so collisions must not be chosen by them.
    hasher: foldhash::fast::RandomState,
}

impl SeriesTable {
    pub fn new(bounds: Arc<[f64]>, max_series: usize) -> Self {
        SeriesTable {
            bounds,
            max_series,
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            overflow: None,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Live series, the overflow series not included.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0 && self.overflow.is_none()
    }

    fn hash(&self, l: &LabelsRef<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        // 0xff never occurs in UTF-8, so it separates the strings unambiguously.
        h.write_u8(u8::from(l.root) | ((l.status as u8) << 1));
        h.write(l.span_type.as_bytes());
        h.write_u8(0xff);
        h.write(l.experiment.as_bytes());
        h.write_u8(0xff);
        for v in l.trace.iter() {
            match v {
                Some(s) => {
                    h.write(s.as_bytes());
                    h.write_u8(0xff);
                }
                None => h.write_u8(0xfe),
            }
        }
        h.finish()
    }

    /// Adds `value` to the series of `l`, creating it (start time `wall_ns`) or overflowing.
    pub fn record(
        &mut self,
        l: &LabelsRef<'_>,
        value: f64,
        now: Instant,
        wall_ns: u64,
        syms: &mut Symbols,
    ) -> Outcome {
        let hash = self.hash(l);
        let slots = &self.slots;
        let found = self.index.find(hash, |&i| {
            slots
                .get(i as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.matches(l))
        });
        if let Some(&i) = found
            && let Some(Some(s)) = self.slots.get_mut(i as usize)
        {
            s.hist.record(&self.bounds, value);
            s.last_update = now;
            return Outcome::Existing;
        }
        if self.live >= self.max_series {
            let n = self.bounds.len();
            let o = self.overflow.get_or_insert_with(|| Overflow {
                hist: Histogram::new(n),
                start_unix_nano: wall_ns,
                last_update: now,
            });
            o.hist.record(&self.bounds, value);
            o.last_update = now;
            return Outcome::Overflow;
        }
        let mut hist = Histogram::new(self.bounds.len());
        hist.record(&self.bounds, value);
        let series = Series {
            hash,
            root: l.root,
            status: l.status,
            span_type: syms.get(l.span_type),
            experiment: syms.get(l.experiment),
            trace: l.trace.clone(),
            hist,
            start_unix_nano: wall_ns,
            last_update: now,
        };
        let slot = match self.free.pop() {
            Some(i) if (i as usize) < self.slots.len() => {
                self.slots[i as usize] = Some(series);
                i
            }
            _ => {
                self.slots.push(Some(series));
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.index.insert_unique(hash, slot, |&i| {
            slots
                .get(i as usize)
                .and_then(Option::as_ref)
                .map_or(0, |s| s.hash)
        });
        self.live += 1;
        Outcome::Created
    }

    /// Drops every series (and the overflow series) not updated within `idle`; returns how many.
    pub fn expire(&mut self, now: Instant, idle: Duration) -> usize {
        let mut dropped = 0;
        for i in 0..self.slots.len() {
            let stale = self.slots[i]
                .as_ref()
                .is_some_and(|s| now.saturating_duration_since(s.last_update) >= idle);
            if !stale {
                continue;
            }
            if let Some(s) = self.slots[i].take()
                && let Ok(e) = self.index.find_entry(s.hash, |&j| j as usize == i)
            {
                e.remove();
            }
            self.free.push(i as u32);
            self.live -= 1;
            dropped += 1;
        }
        if self
            .overflow
            .as_ref()
            .is_some_and(|o| now.saturating_duration_since(o.last_update) >= idle)
        {
            self.overflow = None;
            dropped += 1;
        }
        dropped
    }

    /// Every live series.
    pub fn series(&self) -> impl Iterator<Item = &Series> {
        self.slots.iter().flatten()
    }

    pub fn overflow(&self) -> Option<&Overflow> {
        self.overflow.as_ref()
    }
}

#[cfg(test)]
mod tests;
