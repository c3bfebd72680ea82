//! A thread of its own for bulk work that is not on a client's path: the span-metrics connectors record whole
//! batches (~2 ms of CPU per 8,192 spans) there instead of on the runtime's threads.
//!
//! Why a thread and not a task: measured at 200 k spans/s on 2 cores (issue 13), the hand-over to a runtime task
//! woke a runtime thread that the kernel then ran in place of the one answering requests, and the request that
//! filled a batch waited 2-3 ms at p99 for its own hand-over to return. The thread here runs under Linux's
//! `SCHED_BATCH` policy: same CPU share as every other thread, but its wake-ups never preempt a running one, so
//! the threads that read and acknowledge requests keep their CPU.
//!
//! Memory: batches waiting here keep their reservation of the process memory budget, so the hand-over needs no
//! bound of its own; a thread that falls behind fills the budget and the receivers refuse new data.

use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use bytes::Bytes;

use crate::{Batch, ComponentError, ConsumeError, Metadata};

/// One named thread running a closure over every batch handed to it, in order.
pub struct BackgroundWorker {
    tx: mpsc::UnboundedSender<Batch>,
    done: oneshot::Receiver<()>,
    thread: JoinHandle<()>,
}

impl BackgroundWorker {
    /// Starts thread `name` (truncated by the OS to 15 bytes in `top`) running `work` for every batch handed over.
    pub fn spawn(
        name: &str,
        mut work: impl FnMut(Batch) + Send + 'static,
    ) -> std::io::Result<BackgroundWorker> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Batch>();
        let (done_tx, done) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                if let Err(e) = yield_to_request_threads() {
                    tracing::debug!(error = %e, "SCHED_BATCH not available; background thread at normal policy");
                }
                while let Some(batch) = rx.blocking_recv() {
                    work(batch);
                }
                let _ = done_tx.send(());
            })?;
        Ok(BackgroundWorker { tx, done, thread })
    }

    /// Hands a batch over; gives it back when the thread is gone (its closure panicked), so the caller can still
    /// do the work itself.
    pub fn send(&self, batch: Batch) -> Result<(), Batch> {
        self.tx.send(batch).map_err(|unsent| unsent.0)
    }

    /// Closes the hand-over and waits until every batch handed over is done.
    pub async fn finish(self) {
        let BackgroundWorker { tx, done, thread } = self;
        drop(tx);
        // Err: the thread ended without signalling (its closure panicked); nothing is left to wait for.
        let _ = done.await;
        // The thread has signalled (or unwound) by now: joining only reaps it, it does not block the runtime.
        let _ = thread.join();
    }
}

/// Where a component keeps its worker: empty before `start` and after `shutdown`, when the caller does the work
/// itself.
#[derive(Default)]
pub struct WorkerSlot(std::sync::Mutex<Option<BackgroundWorker>>);

impl WorkerSlot {
    /// Starts thread `name` running `work` for every batch offered from now on (a component's `start`; the error
    /// names component `id`).
    pub fn start(
        &self,
        id: &str,
        name: &str,
        work: impl FnMut(Batch) + Send + 'static,
    ) -> Result<(), ComponentError> {
        let worker = BackgroundWorker::spawn(name, work)
            .map_err(|e| ComponentError::new(id, format!("cannot start its {name} thread: {e}")))?;
        *self.lock() = Some(worker);
        Ok(())
    }

    /// [`WorkerSlot::start`] for a recorder of spans: `record(part, metadata, items_hint)` is called for each part
    /// of a batch (one received request) in turn, so only one request's facts are in memory at a time; the hint
    /// is an even share of the batch's items, for capacity, not a count. The receiver's door let these bytes in,
    /// so `record` can fail only when a component broke them: logged as a bug, never a panic.
    pub fn start_per_part(
        &self,
        id: &str,
        name: &str,
        mut record: impl FnMut(&Bytes, &Metadata, usize) -> Result<(), ConsumeError> + Send + 'static,
    ) -> Result<(), ComponentError> {
        let component = id.to_string();
        self.start(id, name, move |batch| {
            let parts = batch.payload.parts();
            let hint = batch.items / parts.len().max(1) + 1;
            for part in parts {
                if let Err(e) = record(part, &batch.metadata, hint) {
                    tracing::error!(component = %component, error = %e, spans = batch.items,
                        "BUG: could not read a batch the receiver accepted");
                }
            }
        })
    }

    /// Hands `batch` to the worker; gives it back when there is none or its thread is gone.
    pub fn offer(&self, batch: Batch) -> Option<Batch> {
        match self.lock().as_ref() {
            Some(w) => w.send(batch).err(),
            None => Some(batch),
        }
    }

    /// Empties the slot and waits until everything handed over is done.
    pub async fn finish(&self) {
        let worker = self.lock().take();
        if let Some(w) = worker {
            w.finish().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<BackgroundWorker>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Puts the calling thread under `SCHED_BATCH` (Linux): it keeps its share of the CPU, but waking it never
/// preempts a running thread. Elsewhere a no-op.
#[cfg(target_os = "linux")]
fn yield_to_request_threads() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid, initialised `sched_param` that outlives the call;
    // SCHED_BATCH needs no privilege and priority 0 is its only valid priority.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn yield_to_request_threads() -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;

    use super::*;
    use crate::Signal;

    fn batch(items: usize) -> Batch {
        Batch::new(Signal::Traces, Bytes::from_static(b""), items)
    }

    #[tokio::test]
    async fn runs_every_batch_in_order_before_finish_returns() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let w =
            BackgroundWorker::spawn("bg-test", move |b| s.lock().unwrap().push(b.items)).unwrap();
        for i in 1..=50 {
            w.send(batch(i)).unwrap();
        }
        w.finish().await;
        assert_eq!(*seen.lock().unwrap(), (1..=50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn an_empty_slot_gives_the_batch_back_and_a_filled_one_takes_it() {
        let slot = WorkerSlot::default();
        assert_eq!(slot.offer(batch(3)).map(|b| b.items), Some(3));
        let seen = Arc::new(Mutex::new(0));
        let s = seen.clone();
        slot.start("t", "bg-slot", move |b| *s.lock().unwrap() += b.items)
            .unwrap();
        assert!(slot.offer(batch(4)).is_none());
        slot.finish().await;
        assert_eq!(*seen.lock().unwrap(), 4);
        assert_eq!(
            slot.offer(batch(5)).map(|b| b.items),
            Some(5),
            "empty again after finish"
        );
    }

    #[tokio::test]
    async fn per_part_recording_sees_each_part_in_order_with_a_share_of_the_items() {
        let slot = WorkerSlot::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        slot.start_per_part("t", "bg-parts", move |part, _, hint| {
            s.lock().unwrap().push((part.clone(), hint));
            // A failing part is logged; the next ones are still read.
            Err(ConsumeError::malformed_traces("test"))
        })
        .unwrap();
        let parts = ["a", "bb", "ccc"].map(|p| Bytes::from_static(p.as_bytes()));
        let b = Batch::new(
            Signal::Traces,
            crate::Payload::from_parts(parts.to_vec()),
            9,
        );
        assert!(slot.offer(b).is_none());
        slot.finish().await;
        let got = seen.lock().unwrap().clone();
        assert_eq!(
            got,
            parts.iter().map(|p| (p.clone(), 4)).collect::<Vec<_>>()
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_thread_runs_under_sched_batch() {
        let policy = Arc::new(Mutex::new(None));
        let p = policy.clone();
        let w = BackgroundWorker::spawn("bg-policy", move |_| {
            // SAFETY: querying the calling thread's policy has no preconditions.
            *p.lock().unwrap() = Some(unsafe { libc::sched_getscheduler(0) });
        })
        .unwrap();
        w.send(batch(1)).unwrap();
        w.finish().await;
        assert_eq!(*policy.lock().unwrap(), Some(libc::SCHED_BATCH));
    }

    #[tokio::test]
    async fn a_panicked_worker_gives_batches_back_and_finish_returns() {
        let w = BackgroundWorker::spawn("bg-panic", |_| panic!("test panic")).unwrap();
        w.send(batch(1)).unwrap();
        // The thread is gone once the panic unwound; later batches come back to the caller.
        let mut back = None;
        for _ in 0..200 {
            match w.send(batch(2)) {
                Ok(()) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                Err(b) => {
                    back = Some(b.items);
                    break;
                }
            }
        }
        assert_eq!(back, Some(2));
        w.finish().await;
    }
}
