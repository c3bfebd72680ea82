//! `SwapConsumer`: the consumer a receiver is started with, so a config reload can point a running receiver
//! (and its open listeners) at a new pipeline without restarting it.
//!
//! Switching is atomic per batch: each `consume` runs entirely against the target it entered with. `switch` then
//! waits until every batch still running against the previous target has returned, so the caller may shut the old
//! pipeline down (its batch processor flushes) knowing nothing will arrive there afterwards.
//!
//! Why a `std::sync::RwLock` and not `arc-swap`: the lock is held only to clone an `Arc` (never across an await),
//! and every batch must also count itself in and out of its target's in-flight counter — a shared atomic write
//! that `arc-swap`'s lock-free load would not avoid. One uncontended read lock per request (not per span) costs
//! less than a dependency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::{Batch, ConsumeError, Consumer};

/// One target and how many batches are currently inside it.
struct Target {
    next: Arc<dyn Consumer>,
    inflight: AtomicUsize,
    idle: Notify,
}

/// A batch's membership in a target's in-flight count; leaving (also by cancellation) may wake `switch`.
struct InFlight(Arc<Target>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A consumer whose downstream can be replaced while batches flow through it.
pub struct SwapConsumer {
    current: RwLock<Arc<Target>>,
}

impl SwapConsumer {
    pub fn new(next: Arc<dyn Consumer>) -> Arc<SwapConsumer> {
        Arc::new(SwapConsumer {
            current: RwLock::new(Self::target(next)),
        })
    }

    fn target(next: Arc<dyn Consumer>) -> Arc<Target> {
        Arc::new(Target {
            next,
            inflight: AtomicUsize::new(0),
            idle: Notify::new(),
        })
    }

    /// Where batches go now.
    pub fn current(&self) -> Arc<dyn Consumer> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .next
            .clone()
    }

    /// Sends every later batch to `next`, then waits until the batches still inside the previous target have
    /// returned. The caller bounds the wait (a consumer that never returns would hold it forever).
    pub async fn switch(&self, next: Arc<dyn Consumer>) {
        let old = {
            let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *cur, Self::target(next))
        };
        loop {
            let idle = old.idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so a batch leaving in between still wakes us.
            idle.as_mut().enable();
            if old.inflight.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    fn enter(&self) -> InFlight {
        // Counted while the read lock is held: `switch` replaces the target under the write lock, so a batch
        // either entered the old target before the replacement (and `switch` waits for it) or sees the new one.
        let cur = self.current.read().unwrap_or_else(|e| e.into_inner());
        cur.inflight.fetch_add(1, Ordering::AcqRel);
        InFlight(cur.clone())
    }
}

#[async_trait]
impl Consumer for SwapConsumer {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let inflight = self.enter();
        inflight.0.next.consume(batch).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::Signal;

    /// Records the payloads it gets; waits for a permit first when gated.
    struct Sink {
        got: Mutex<Vec<Bytes>>,
        gate: Option<Arc<Semaphore>>,
    }

    impl Sink {
        fn new(gate: Option<Arc<Semaphore>>) -> Arc<Sink> {
            Arc::new(Sink {
                got: Mutex::new(Vec::new()),
                gate,
            })
        }
        fn got(&self) -> Vec<Bytes> {
            self.got.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl Consumer for Sink {
        async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
            if let Some(g) = &self.gate {
                g.acquire().await.unwrap().forget();
            }
            self.got.lock().unwrap().push(batch.payload.to_bytes());
            Ok(())
        }
    }

    fn batch(text: &'static str) -> Batch {
        Batch::new(Signal::Traces, Bytes::from_static(text.as_bytes()), 1)
    }

    #[tokio::test]
    async fn later_batches_go_to_the_new_target() {
        let (a, b) = (Sink::new(None), Sink::new(None));
        let s = SwapConsumer::new(a.clone());
        s.consume(batch("1")).await.unwrap();
        s.switch(b.clone()).await;
        s.consume(batch("2")).await.unwrap();
        assert_eq!(a.got(), vec![Bytes::from_static(b"1")]);
        assert_eq!(b.got(), vec![Bytes::from_static(b"2")]);
        assert!(Arc::ptr_eq(&s.current(), &(b.clone() as Arc<dyn Consumer>)));
    }

    #[tokio::test]
    async fn switch_waits_for_batches_inside_the_old_target() {
        let gate = Arc::new(Semaphore::new(0));
        let (a, b) = (Sink::new(Some(gate.clone())), Sink::new(None));
        let s = SwapConsumer::new(a.clone());
        let s2 = s.clone();
        let stuck = tokio::spawn(async move { s2.consume(batch("old")).await });
        // Let the batch enter the old target and block on the gate.
        let inside = || s.current.read().unwrap().inflight.load(Ordering::Acquire);
        for _ in 0..1000 {
            if inside() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(inside(), 1, "the batch entered the old target");
        let switch = tokio::spawn({
            let (s, b) = (s.clone(), b.clone());
            async move { s.switch(b).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !switch.is_finished(),
            "switch returned while a batch was inside the old target"
        );
        // New batches already go to the new target.
        s.consume(batch("new")).await.unwrap();
        assert_eq!(b.got(), vec![Bytes::from_static(b"new")]);
        gate.add_permits(1);
        stuck.await.unwrap().unwrap();
        tokio::time::timeout(Duration::from_secs(5), switch)
            .await
            .expect("switch finishes once the old batch returned")
            .unwrap();
        assert_eq!(a.got(), vec![Bytes::from_static(b"old")]);
    }

    #[tokio::test]
    async fn a_cancelled_batch_does_not_hold_the_switch() {
        let gate = Arc::new(Semaphore::new(0));
        let a = Sink::new(Some(gate));
        let s = SwapConsumer::new(a);
        let s2 = s.clone();
        let stuck = tokio::spawn(async move { s2.consume(batch("x")).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        stuck.abort();
        let _ = stuck.await;
        tokio::time::timeout(Duration::from_secs(5), s.switch(Sink::new(None)))
            .await
            .expect("an aborted consume left the in-flight count");
    }
}
