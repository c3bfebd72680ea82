//! What the scrape endpoint serves: the latest state of every series received, by family and labels.
//!
//! Cumulative points replace what is known (older ones are ignored), delta counters and histograms are added up
//! (the spec's "SHOULD convert to cumulative"), and a series not updated for `metric_expiration` is forgotten,
//! like the Go exporter's accumulator.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::names::Kind;
use crate::translate::{Labels, Point, Value};

pub(crate) struct Entry {
    pub value: Value,
    /// Time of the latest data point (`time_unix_nano`).
    pub time_ns: u64,
    updated: Instant,
}

pub(crate) struct Family {
    pub kind: Kind,
    pub help: Arc<str>,
    pub series: HashMap<Labels, Entry>,
}

/// Everything served.
pub struct Store {
    expiration: Option<Duration>,
    pub(crate) families: BTreeMap<Arc<str>, Family>,
    /// Points refused because their family already has another type.
    pub type_conflicts: u64,
}

impl Store {
    pub fn new(expiration: Option<Duration>) -> Self {
        Store {
            expiration,
            families: BTreeMap::new(),
            type_conflicts: 0,
        }
    }

    /// Series currently held.
    pub fn len(&self) -> usize {
        self.families.values().map(|f| f.series.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    pub fn update(&mut self, p: Point, now: Instant) {
        let family = self.families.entry(p.family).or_insert_with(|| Family {
            kind: p.kind,
            help: p.help,
            series: HashMap::new(),
        });
        if family.kind != p.kind {
            self.type_conflicts += 1;
            return;
        }
        if p.stale {
            family.series.remove(&p.labels);
            return;
        }
        match family.series.get_mut(&p.labels) {
            Some(e) if p.delta => {
                if !add(&mut e.value, &p.value) {
                    e.value = p.value;
                }
                e.time_ns = e.time_ns.max(p.time_ns);
                e.updated = now;
            }
            Some(e) => {
                if p.time_ns >= e.time_ns {
                    e.value = p.value;
                    e.time_ns = p.time_ns;
                    e.updated = now;
                }
            }
            None => {
                family.series.insert(
                    p.labels,
                    Entry {
                        value: p.value,
                        time_ns: p.time_ns,
                        updated: now,
                    },
                );
            }
        }
    }

    /// Forgets series idle longer than the expiration, and families left empty.
    pub fn expire(&mut self, now: Instant) {
        let Some(idle) = self.expiration else {
            return;
        };
        for f in self.families.values_mut() {
            f.series
                .retain(|_, e| now.saturating_duration_since(e.updated) < idle);
        }
        self.families.retain(|_, f| !f.series.is_empty());
    }
}

/// Adds a delta point into a cumulative value; false when they do not fit (then the delta replaces it).
fn add(into: &mut Value, delta: &Value) -> bool {
    match (into, delta) {
        (Value::Number(a), Value::Number(b)) => {
            *a += b;
            true
        }
        (
            Value::Histogram {
                bounds,
                counts,
                sum,
                count,
            },
            Value::Histogram {
                bounds: b2,
                counts: c2,
                sum: s2,
                count: n2,
            },
        ) if bounds == b2 && counts.len() == c2.len() => {
            for (a, b) in counts.iter_mut().zip(c2) {
                *a += b;
            }
            *sum += s2;
            *count += n2;
            true
        }
        _ => false,
    }
}
