//! A bounded least-recently-used map of trace ids, for the decision caches and the table of recent decisions.
//! Capacity 0 holds nothing (the Collector's no-op cache).

use std::collections::{BTreeMap, HashMap};

/// A trace id as a map key.
pub type TraceKey = u128;

/// The key of a trace id (any length: the first 16 bytes, zero-padded; the door checked it is 16).
pub fn trace_key(id: &[u8]) -> TraceKey {
    let mut b = [0u8; 16];
    let n = id.len().min(16);
    b[..n].copy_from_slice(&id[..n]);
    u128::from_be_bytes(b)
}

/// Least-recently-used map of at most `capacity` entries.
#[derive(Debug)]
pub struct Lru<V> {
    capacity: usize,
    map: HashMap<TraceKey, (u64, V), foldhash::fast::RandomState>,
    order: BTreeMap<u64, TraceKey>,
    next: u64,
}

impl<V: Copy> Lru<V> {
    pub fn new(capacity: usize) -> Self {
        Lru {
            capacity,
            map: HashMap::default(),
            order: BTreeMap::new(),
            next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value, marking the entry used.
    pub fn get(&mut self, key: TraceKey) -> Option<V> {
        let stamp = self.next;
        let (old, v) = {
            let e = self.map.get_mut(&key)?;
            let old = std::mem::replace(&mut e.0, stamp);
            (old, e.1)
        };
        self.next += 1;
        self.order.remove(&old);
        self.order.insert(stamp, key);
        Some(v)
    }

    /// Inserts or replaces, evicting the least recently used entry past capacity.
    pub fn put(&mut self, key: TraceKey, value: V) {
        if self.capacity == 0 {
            return;
        }
        let stamp = self.next;
        self.next += 1;
        if let Some((old, _)) = self.map.insert(key, (stamp, value)) {
            self.order.remove(&old);
        }
        self.order.insert(stamp, key);
        while self.map.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
        }
    }
}
