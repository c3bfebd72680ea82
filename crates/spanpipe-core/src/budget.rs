//! The process-wide memory budget (`service.memory_limit`): the bytes of every request spanpipe holds — in a
//! batch, in any exporter's queue, in an export in flight — stay under one number.
//!
//! The receiver reserves a request's payload size before it enters a pipeline; the reservation travels with the
//! data ([`Batch::held`](crate::Batch)) and is given back when the last copy of it is gone (every exporter
//! delivered it, dropped it or wrote it to disk). Past the limit the receiver refuses the request whole with
//! 503 + `Retry-After` / UNAVAILABLE + RetryInfo, before any exporter saw it, so the client's retry duplicates
//! nothing and what was acknowledged is kept. This bounds memory by construction, without sampling RSS or a GC
//! loop (the `memory_limiter` processor remains for an RSS-based guard).
//!
//! One budget per process, so a reload can change the limit while data admitted under the old one is still held.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The default `service.memory_limit`: with the code, the copies a batch and an export make, compression buffers
/// and allocator slack on top, a collector running flat out stays under 128 MiB of RSS.
pub const DEFAULT_MEMORY_LIMIT: usize = 32 << 20;

/// Bytes held against a limit.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: AtomicUsize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes (0: unlimited, everything is only counted).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(MemoryBudget {
            limit: AtomicUsize::new(limit),
            used: AtomicUsize::new(0),
        })
    }

    /// The process's budget, created with [`DEFAULT_MEMORY_LIMIT`] and set from `service.memory_limit` at start
    /// and on every reload.
    pub fn global() -> &'static Arc<MemoryBudget> {
        static GLOBAL: OnceLock<Arc<MemoryBudget>> = OnceLock::new();
        GLOBAL.get_or_init(|| MemoryBudget::new(DEFAULT_MEMORY_LIMIT))
    }

    /// Changes the limit; what is held stays held (a lower limit refuses new data until enough is released).
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserves `bytes`, or `None` when that would pass the limit. A request larger than the whole limit is
    /// still admitted when nothing else is held, so one big request can never be refused forever.
    pub fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Held> {
        let limit = self.limit();
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(bytes);
            if limit != 0 && next > limit && used != 0 {
                return None;
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => used = now,
            }
        }
        Some(Held(Some(Arc::new(Hold {
            budget: self.clone(),
            bytes,
        }))))
    }
}

/// One reservation; gives its bytes back when dropped.
#[derive(Debug)]
struct Hold {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The reservation a batch carries. Cloning a batch for each exporter shares it; it is released when the last
/// clone is dropped. [`Held::merge`] joins the reservations of the requests a batch is made of.
#[derive(Clone, Debug, Default)]
pub struct Held(Option<Arc<Hold>>);

impl Held {
    /// Nothing reserved (data made inside spanpipe, e.g. a connector's metrics).
    pub fn none() -> Self {
        Held(None)
    }

    /// Bytes this reservation holds.
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |h| h.bytes)
    }

    /// One reservation for the bytes of all `parts`, taken over from them: with sole ownership (the usual case in
    /// a batch processor) no bytes are released and re-reserved, so the total never dips below what is held.
    pub fn merge(parts: impl IntoIterator<Item = Held>) -> Held {
        let mut budget: Option<Arc<MemoryBudget>> = None;
        let mut bytes = 0;
        let mut shared: Vec<Arc<Hold>> = Vec::new();
        for part in parts {
            let Some(hold) = part.0 else { continue };
            match Arc::try_unwrap(hold) {
                Ok(mut hold) => {
                    // Take its bytes over: the merged hold gives them back instead.
                    bytes += std::mem::take(&mut hold.bytes);
                    budget.get_or_insert_with(|| hold.budget.clone());
                }
                Err(still_shared) => shared.push(still_shared),
            }
        }
        if !shared.is_empty() {
            // Another copy of a part is alive elsewhere: keep it held until both are gone, by reserving again.
            for h in &shared {
                h.budget.used.fetch_add(h.bytes, Ordering::AcqRel);
                bytes += h.bytes;
                budget.get_or_insert_with(|| h.budget.clone());
            }
        }
        match budget {
            Some(budget) => Held(Some(Arc::new(Hold { budget, bytes }))),
            None => Held(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_up_to_the_limit_and_releases_when_the_last_copy_goes() {
        let b = MemoryBudget::new(100);
        let a = b.try_reserve(60).unwrap();
        assert!(b.try_reserve(50).is_none(), "60 + 50 > 100");
        let copy = a.clone();
        drop(a);
        assert_eq!(b.used(), 60, "a copy still holds it");
        let c = b.try_reserve(40).unwrap();
        assert_eq!(b.used(), 100);
        drop(copy);
        drop(c);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn one_request_larger_than_the_limit_passes_alone() {
        let b = MemoryBudget::new(10);
        let big = b.try_reserve(50).unwrap();
        assert!(b.try_reserve(1).is_none());
        drop(big);
        assert!(b.try_reserve(1).is_some());
    }

    #[test]
    fn merge_takes_over_sole_reservations_and_keeps_shared_ones_held() {
        let b = MemoryBudget::new(1000);
        let parts = vec![b.try_reserve(10).unwrap(), b.try_reserve(20).unwrap()];
        let merged = Held::merge(parts);
        assert_eq!((merged.bytes(), b.used()), (30, 30));
        let shared = b.try_reserve(5).unwrap();
        let merged2 = Held::merge(vec![merged, shared.clone(), Held::none()]);
        assert_eq!(merged2.bytes(), 35);
        assert_eq!(
            b.used(),
            40,
            "the shared 5 is held by both until each is gone"
        );
        drop(shared);
        assert_eq!(b.used(), 35);
        drop(merged2);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn zero_is_unlimited_and_a_lower_limit_applies_to_new_data_only() {
        let b = MemoryBudget::new(0);
        let h = b.try_reserve(1 << 40).unwrap();
        b.set_limit(10);
        assert!(b.try_reserve(1).is_none());
        drop(h);
        assert!(b.try_reserve(10).is_some());
    }
}
