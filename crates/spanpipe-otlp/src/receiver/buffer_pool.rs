//! Recycled buffers for received requests.
//!
//! Every uncompressed gRPC request is copied once into a buffer of its size ([`super::grpc_raw`]), and the batch
//! keeps that buffer until the last exporter has sent it. With the allocator returning freed memory to the OS
//! after 10 ms (spanpipe's mimalloc setting, which keeps peak RSS close to the memory budget), each new request
//! landed on fresh pages the kernel had to zero: ~4.4% of spanpipe's CPU flat out. Buffers of 64 KiB and more are
//! therefore handed back here when the last `Bytes` pointing into them is dropped, and reused by the next request
//! of the same size class. An idle buffer holds its share of the process memory budget (`service.memory_limit`)
//! like a queued batch does, so the pool never lets memory grow past the budget: when the budget is full (a slow
//! backend, a flood) freed buffers are not kept. Idle buffers are also capped at [`MAX_IDLE_BYTES`].

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use spanpipe_core::budget::{Held, MemoryBudget};

/// Requests smaller than this are allocated normally (cheap, and they would waste most of a class).
pub const MIN_POOLED: usize = 64 << 10;
/// Size classes are multiples of this, so a buffer is at most this much larger than its request.
const CLASS: usize = 64 << 10;
/// The most idle memory the pool keeps.
pub const MAX_IDLE_BYTES: usize = 2 << 20;

/// Idle buffers, each with a capacity that is a whole number of classes.
pub struct BufferPool {
    idle: Mutex<Idle>,
    max_idle_bytes: usize,
    budget: Arc<MemoryBudget>,
}

#[derive(Default)]
struct Idle {
    /// Each with its reservation in the memory budget, released when the buffer is reused or freed.
    buffers: Vec<(Vec<u8>, Held)>,
    bytes: usize,
}

impl BufferPool {
    pub fn new(max_idle_bytes: usize, budget: Arc<MemoryBudget>) -> Arc<Self> {
        Arc::new(BufferPool {
            idle: Mutex::new(Idle::default()),
            max_idle_bytes,
            budget,
        })
    }

    /// The process-wide pool the receivers share, within the process memory budget.
    pub fn global() -> &'static Arc<BufferPool> {
        static POOL: OnceLock<Arc<BufferPool>> = OnceLock::new();
        POOL.get_or_init(|| BufferPool::new(MAX_IDLE_BYTES, MemoryBudget::global().clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty buffer with room for `len` bytes: a recycled one of `len`'s class when there is one.
    fn take(&self, len: usize) -> Vec<u8> {
        let class = len.div_ceil(CLASS) * CLASS;
        let mut idle = self.lock();
        if let Some(i) = idle.buffers.iter().position(|(b, _)| b.capacity() == class) {
            let (buf, _released) = idle.buffers.swap_remove(i);
            idle.bytes -= buf.capacity();
            return buf;
        }
        drop(idle);
        Vec::with_capacity(class)
    }

    /// Keeps `buf` for reuse unless the pool is full (then it is freed).
    fn give_back(&self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap < MIN_POOLED || !cap.is_multiple_of(CLASS) {
            return;
        }
        buf.clear();
        let mut idle = self.lock();
        if idle.bytes + cap > self.max_idle_bytes {
            return;
        }
        let Some(held) = self.budget.try_reserve(cap) else {
            return;
        };
        idle.bytes += cap;
        idle.buffers.push((buf, held));
    }

    /// Bytes held by idle buffers.
    #[cfg(test)]
    pub fn idle_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// `parts` copied into one buffer (recycled for 64 KiB and more), returned to this pool when the last
    /// `Bytes` into it is dropped.
    pub fn copy(
        self: &Arc<Self>,
        len: usize,
        parts: impl IntoIterator<Item = impl AsRef<[u8]>>,
    ) -> Bytes {
        if len < MIN_POOLED {
            let mut v = Vec::with_capacity(len);
            parts
                .into_iter()
                .for_each(|p| v.extend_from_slice(p.as_ref()));
            return Bytes::from(v);
        }
        let mut buf = self.take(len);
        parts
            .into_iter()
            .for_each(|p| buf.extend_from_slice(p.as_ref()));
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }
}

/// A pooled buffer owned by `Bytes`; goes back to its pool on drop.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_buffer_is_reused_once_every_bytes_into_it_is_gone() {
        let pool = BufferPool::new(1 << 20, MemoryBudget::new(64 << 20));
        let data = vec![7u8; 100_000];
        let a = pool.copy(data.len(), [&data[..40_000], &data[40_000..]]);
        assert_eq!(&a[..], &data[..]);
        let ptr = a.as_ptr();
        let slice = a.slice(10..20);
        drop(a);
        assert_eq!(pool.idle_bytes(), 0, "a slice still points into it");
        drop(slice);
        assert_eq!(pool.idle_bytes(), 128 << 10);
        // Same class (65..128 KiB): the same memory comes back.
        let b = pool.copy(70_000, [&data[..70_000]]);
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(pool.idle_bytes(), 0);
        // Another class allocates.
        let c = pool.copy(200_000, [vec![1u8; 200_000]]);
        assert_eq!(c.len(), 200_000);
    }

    #[test]
    fn small_buffers_are_not_pooled_and_idle_memory_is_capped() {
        let pool = BufferPool::new(256 << 10, MemoryBudget::new(64 << 20));
        drop(pool.copy(10, [b"0123456789"]));
        assert_eq!(pool.idle_bytes(), 0);
        let big = vec![1u8; 200 << 10];
        let held: Vec<Bytes> = (0..3).map(|_| pool.copy(big.len(), [&big[..]])).collect();
        drop(held);
        assert_eq!(
            pool.idle_bytes(),
            256 << 10,
            "one 256 KiB buffer kept, two freed"
        );
    }

    #[test]
    fn idle_buffers_hold_budget_and_a_full_budget_keeps_none() {
        let budget = MemoryBudget::new(300 << 10);
        let pool = BufferPool::new(8 << 20, budget.clone());
        let big = vec![1u8; 200 << 10];
        drop(pool.copy(big.len(), [&big[..]]));
        assert_eq!((pool.idle_bytes(), budget.used()), (256 << 10, 256 << 10));
        // Reusing it gives the reservation back (the request makes its own).
        let again = pool.copy(big.len(), [&big[..]]);
        assert_eq!(budget.used(), 0);
        // With the budget taken by queued data, a freed buffer is not kept.
        let queued = budget.try_reserve(200 << 10).unwrap();
        drop(again);
        assert_eq!(pool.idle_bytes(), 0);
        drop(queued);
    }
}
