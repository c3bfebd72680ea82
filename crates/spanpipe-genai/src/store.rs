//! The connector's series: per metric and label set a cumulative histogram (the `mlflow_spanmetrics`
//! [`Histogram`]) or sum, with one cap on the number of series across metrics, an overflow series per metric
//! past it, and expiry of idle series. Lookups hash the borrowed labels, so recording into an existing series
//! allocates nothing; a new series interns its values ([`Symbols`]).

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use spanpipe_spanmetrics::labels::TraceLabels;
use spanpipe_spanmetrics::series::{Histogram, Symbols};

use crate::extract::SLOTS;
use crate::labels::{METRICS, Metric, TokenType};

/// A series' value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Hist(Histogram),
    Sum(f64),
}

impl Value {
    fn record(&mut self, bounds: &[f64], v: f64) {
        match self {
            Value::Hist(h) => h.record(bounds, v),
            Value::Sum(s) => *s += v,
        }
    }

    fn new(m: Metric) -> Value {
        match m.def().bounds {
            Some(b) => Value::Hist(Histogram::new(b.len())),
            None => Value::Sum(0.0),
        }
    }
}

/// The labels of one point, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct PointRef<'a> {
    pub metric: Metric,
    pub token: TokenType,
    /// Span-level label values by slot; slots the metric does not use are ignored.
    pub slots: &'a [Option<Arc<str>>; SLOTS],
    pub trace: &'a TraceLabels,
}

/// One series.
#[derive(Debug)]
pub struct Series {
    hash: u64,
    pub metric: Metric,
    pub token: TokenType,
    /// Only the slots the metric uses are set.
    pub slots: [Option<Arc<str>>; SLOTS],
    pub trace: TraceLabels,
    pub value: Value,
    pub start_unix_nano: u64,
    last_update: Instant,
}

impl Series {
    fn matches(&self, p: &PointRef<'_>) -> bool {
        let used = p.metric.def().slots;
        self.metric == p.metric
            && self.token == p.token
            && used.iter().all(|&i| self.slots[i] == p.slots[i])
            && (Arc::ptr_eq(&self.trace, p.trace) || self.trace[..] == p.trace[..])
    }
}

/// A metric's overflow series.
#[derive(Debug)]
pub struct Overflow {
    pub value: Value,
    pub start_unix_nano: u64,
    last_update: Instant,
}

/// All series of one connector.
pub struct Store {
    max_series: usize,
    index: HashTable<u32>,
    slots: Vec<Option<Series>>,
    free: Vec<u32>,
    live: usize,
    overflow: [Option<Overflow>; METRICS],
    hasher: foldhash::fast::RandomState,
}

/// Where a point went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Existing,
    Created,
    Overflow,
}

impl Store {
    pub fn new(max_series: usize) -> Self {
        Store {
            max_series,
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            overflow: Default::default(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Live series (overflow series not included).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0 && self.overflow.iter().all(Option::is_none)
    }

    fn hash(&self, p: &PointRef<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_u8(p.metric as u8);
        h.write_u8(p.token as u8);
        for &i in p.metric.def().slots {
            match &p.slots[i] {
                Some(s) => {
                    h.write(s.as_bytes());
                    h.write_u8(0xff);
                }
                None => h.write_u8(0xfe),
            }
        }
        for v in p.trace.iter() {
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

    /// Adds `value` to the series of `p`, creating it (start time `wall_ns`) or overflowing.
    pub fn record(&mut self, p: &PointRef<'_>, value: f64, now: Instant, wall_ns: u64) -> Outcome {
        let bounds = p.metric.def().bounds.unwrap_or(&[]);
        let hash = self.hash(p);
        let slots = &self.slots;
        let found = self.index.find(hash, |&i| {
            slots
                .get(i as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.matches(p))
        });
        if let Some(&i) = found
            && let Some(Some(s)) = self.slots.get_mut(i as usize)
        {
            s.value.record(bounds, value);
            s.last_update = now;
            return Outcome::Existing;
        }
        if self.live >= self.max_series {
            let o = self.overflow[p.metric as usize].get_or_insert_with(|| Overflow {
                value: Value::new(p.metric),
                start_unix_nano: wall_ns,
                last_update: now,
            });
            o.value.record(bounds, value);
            o.last_update = now;
            return Outcome::Overflow;
        }
        let mut v = Value::new(p.metric);
        v.record(bounds, value);
        let mut owned: [Option<Arc<str>>; SLOTS] = Default::default();
        for &i in p.metric.def().slots {
            owned[i] = p.slots[i].clone();
        }
        let series = Series {
            hash,
            metric: p.metric,
            token: p.token,
            slots: owned,
            trace: p.trace.clone(),
            value: v,
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

    /// Drops every series (and overflow series) not updated within `idle`; returns how many.
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
        for o in self.overflow.iter_mut() {
            if o.as_ref()
                .is_some_and(|o| now.saturating_duration_since(o.last_update) >= idle)
            {
                *o = None;
                dropped += 1;
            }
        }
        dropped
    }

    pub fn series(&self) -> impl Iterator<Item = &Series> {
        self.slots.iter().flatten()
    }

    pub fn overflow(&self, m: Metric) -> Option<&Overflow> {
        self.overflow[m as usize].as_ref()
    }
}

/// Interns a span's label values (bounded; see [`Symbols`]).
pub fn intern<'a>(
    syms: &mut Symbols,
    labels: &[Option<std::borrow::Cow<'a, str>>; SLOTS],
) -> [Option<Arc<str>>; SLOTS] {
    let mut out: [Option<Arc<str>>; SLOTS] = Default::default();
    for (o, l) in out.iter_mut().zip(labels.iter()) {
        *o = l.as_deref().map(|s| syms.get(s));
    }
    out
}

#[cfg(test)]
mod tests;
