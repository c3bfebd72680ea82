//! Requests MLflow recently acknowledged, so a retried batch does not send them again.
//!
//! The core retries a whole batch, and a batch may become several MLflow requests (experiments, size cuts). Re-
//! sending an acknowledged request is *safe* — MLflow upserts spans by id, so it is idempotent — but it costs
//! MLflow about a second per 1,000 spans, and a batch too big to finish within one attempt's timeout would
//! otherwise start from scratch on every retry and never complete. Remembering acknowledged requests makes every
//! attempt progress.
//!
//! Keys are 128-bit hashes of (experiment id, body). A collision would skip a request, so two independent 64-bit
//! SipHash values are combined; the set is bounded and forgets the oldest entries first.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// Acknowledged requests remembered (a few batches' worth of requests).
const CAPACITY: usize = 4096;

#[derive(Default)]
struct Inner {
    set: HashSet<u128>,
    order: VecDeque<u128>,
}

/// A bounded set of acknowledged request keys.
#[derive(Default)]
pub struct Delivered {
    inner: Mutex<Inner>,
}

/// The key of a request body sent to an experiment.
pub fn key(experiment_id: &str, body: &[u8]) -> u128 {
    let half = |salt: u64| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        experiment_id.hash(&mut h);
        body.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0x5eed_0001)) << 64) | u128::from(half(0x5eed_0002))
}

impl Delivered {
    pub fn contains(&self, key: u128) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set
            .contains(&key)
    }

    pub fn insert(&self, key: u128) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.set.insert(key) {
            return;
        }
        inner.order.push_back(key);
        while inner.order.len() > CAPACITY {
            if let Some(old) = inner.order.pop_front() {
                inner.set.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_acknowledged_requests_within_capacity() {
        let d = Delivered::default();
        let a = key("1", b"body");
        assert_ne!(a, key("2", b"body"), "experiment is part of the key");
        assert_ne!(a, key("1", b"bodx"));
        assert!(!d.contains(a));
        d.insert(a);
        d.insert(a);
        assert!(d.contains(a));
        for i in 0..CAPACITY {
            d.insert(key("1", &i.to_le_bytes()));
        }
        assert!(!d.contains(a), "oldest forgotten first");
        assert!(d.contains(key("1", &(CAPACITY - 1).to_le_bytes())));
    }
}
