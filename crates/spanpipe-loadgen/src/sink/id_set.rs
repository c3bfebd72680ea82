//! The set of span ids a sink has seen, exact and cheap enough not to disturb the collector it measures on a
//! shared machine.
//!
//! The load generator numbers its spans (`seed << 48 | sequence + 1`, see `ids`), so one run's ids are
//! consecutive integers: they go into a bitmap, one bit each, whose inserts stay in cache. Any other id (another
//! seed, beyond the expected count, another client) goes into a hash set. Which of the two an id belongs to depends
//! only on the id, so a duplicate always meets its first copy.
//!
//! Why: with a hash set alone, 3 M random-looking inserts into a 32 MiB table cost a cache miss each; the two
//! sinks spent ~0.33 µs of CPU per span, in bursts of one batch (~2.7 ms per 8,192 spans), on the same 2 cores as
//! the collector under test.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::ids::{SEQ_BITS, SEQ_LIMIT};

/// Most sequence numbers the bitmap covers (8 MiB of bits); ids past it go to the hash set.
const MAX_DENSE: u64 = 64 << 20;

/// A multiply-xorshift hash for `u64` ids: the default SipHash costs more than the rest of a request's handling,
/// and ids are not attacker-chosen here.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let h = (self.0 ^ (self.0 >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^ (h >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }
}

/// Span ids seen; see the module doc.
pub struct IdSet {
    /// The seed of the bitmap's ids: that of the first id inserted.
    seed: Option<u64>,
    /// Bit `n` set: id `seed << 48 | n` seen.
    bits: Vec<u64>,
    dense: u64,
    other: HashSet<u64, BuildHasherDefault<IdHasher>>,
}

impl IdSet {
    /// A set sized for `expected` ids from one load generator run (their bitmap allocated now, so inserts do not
    /// reallocate while a benchmark measures).
    pub fn new(expected: u64) -> IdSet {
        let words = expected.saturating_add(1).min(MAX_DENSE).div_ceil(64) as usize;
        IdSet {
            seed: None,
            bits: vec![0; words],
            dense: 0,
            other: HashSet::default(),
        }
    }

    /// Adds `id`; false when it was already there.
    pub fn insert(&mut self, id: u64) -> bool {
        let seed = *self.seed.get_or_insert(id >> SEQ_BITS);
        let n = id & (SEQ_LIMIT - 1);
        let slot = usize::try_from(n / 64)
            .ok()
            .filter(|_| id >> SEQ_BITS == seed)
            .and_then(|w| self.bits.get_mut(w));
        let Some(word) = slot else {
            return self.other.insert(id);
        };
        let bit = 1u64 << (n % 64);
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        self.dense += 1;
        true
    }

    /// Distinct ids seen.
    pub fn len(&self) -> u64 {
        self.dense + self.other.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::span_id;

    #[test]
    fn counts_each_id_once_in_the_bitmap_and_beside_it() {
        let mut s = IdSet::new(100);
        // The run's own ids (bitmap), past the expected count, another seed, and an id of another client.
        let ids: Vec<u64> = (0..100)
            .map(|q| span_id(7, q))
            .chain([
                span_id(7, 100),
                span_id(7, 5_000),
                span_id(8, 3),
                0xdead_beef,
            ])
            .collect();
        for &id in &ids {
            assert!(s.insert(id), "first sight of {id:x}");
        }
        for &id in &ids {
            assert!(!s.insert(id), "second sight of {id:x}");
        }
        assert_eq!(s.len(), ids.len() as u64);
        assert_eq!(s.dense, 101, "ids up to the bitmap's end are in it");
        assert_eq!(s.other.len(), 3);
    }

    #[test]
    fn a_first_id_from_elsewhere_only_costs_speed() {
        let mut s = IdSet::new(10);
        assert!(s.insert(0x1234));
        for q in 0..10 {
            assert!(s.insert(span_id(3, q)));
            assert!(!s.insert(span_id(3, q)));
        }
        assert_eq!(s.len(), 11);
    }
}
