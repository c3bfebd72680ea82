//! The consistent-hash ring, as the OTel Collector's `loadbalancing` exporter builds it: 36,000 positions (360
//! degrees with two decimals), 100 points per backend at `crc32(endpoint ‖ i) mod 36000`, a key at
//! `crc32(key) mod 36000` owned by the first point at or after it (wrapping). Adding or removing one of N
//! backends moves only the keys of its own points, about 1/N of them.

/// Positions on the ring.
pub const MAX_POSITIONS: u32 = 36_000;
/// Points per backend.
pub const POINTS_PER_ENDPOINT: usize = 100;

/// An immutable ring over a set of backends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    /// `(position, index into endpoints)`, sorted by position; a position taken by two backends goes to the
    /// first in sorted order.
    points: Vec<(u32, usize)>,
    endpoints: Vec<String>,
}

/// Where a key lands on the ring.
pub fn position(key: &[u8]) -> u32 {
    crc32fast::hash(key) % MAX_POSITIONS
}

impl Ring {
    /// The ring of `endpoints` (order and duplicates do not matter).
    pub fn new<S: AsRef<str>>(endpoints: &[S]) -> Ring {
        let mut endpoints: Vec<String> = endpoints.iter().map(|e| e.as_ref().to_string()).collect();
        endpoints.sort();
        endpoints.dedup();
        let mut taken = std::collections::HashSet::new();
        let mut points = Vec::with_capacity(endpoints.len() * POINTS_PER_ENDPOINT);
        for (idx, e) in endpoints.iter().enumerate() {
            for i in 0..POINTS_PER_ENDPOINT {
                let mut h = crc32fast::Hasher::new();
                h.update(e.as_bytes());
                h.update(&[i as u8]);
                let pos = h.finalize() % MAX_POSITIONS;
                if taken.insert(pos) {
                    points.push((pos, idx));
                }
            }
        }
        points.sort_unstable();
        Ring { points, endpoints }
    }

    /// The backends on the ring, sorted.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The index (into [`Ring::endpoints`]) of the backend owning position `pos`; `None` on an empty ring.
    pub fn owner(&self, pos: u32) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let i = self.points.partition_point(|(p, _)| *p < pos);
        let (_, idx) = self.points.get(i).unwrap_or(&self.points[0]);
        Some(*idx)
    }

    /// The backend owning `key`.
    pub fn endpoint_for(&self, key: &[u8]) -> Option<&str> {
        self.owner(position(key))
            .and_then(|i| self.endpoints.get(i))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests;
