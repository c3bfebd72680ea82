//! The persistent backend through the sending queue, on an in-memory storage (the on-disk log has its own tests in
//! spanpipe-storage and the e2e suite `persistent_queue`): written before the OK, acknowledged after delivery, a
//! failed write keeps nothing, a stop keeps what was not sent, and admission follows the backend's state.

use std::collections::BTreeMap;

use super::*;
use crate::storage::{Record, RecordId, Storage, StorageClient, StorageError, StorageStats};

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Staged,
    Ready,
    InFlight,
}

#[derive(Default)]
struct Log {
    records: BTreeMap<u64, (Vec<u8>, u32, State)>,
    next_id: u64,
    fail_writes: bool,
}

/// One log shared by every client opened on it, so a second queue sees what the first left (a restart).
#[derive(Clone, Default)]
struct MemStorage(Arc<StdMutex<Log>>);

impl MemStorage {
    fn records(&self) -> usize {
        self.0.lock().unwrap().records.len()
    }
    fn fail_writes(&self, fail: bool) {
        self.0.lock().unwrap().fail_writes = fail;
    }
}

const OVERHEAD: u64 = 16;

impl Storage for MemStorage {
    fn open(&self, _owner: &str) -> Result<Box<dyn StorageClient>, StorageError> {
        // What the previous run staged or had in flight is an ordinary record now.
        for r in self.0.lock().unwrap().records.values_mut() {
            r.2 = State::Ready;
        }
        Ok(Box::new(self.clone()))
    }
}

fn id(n: u64) -> RecordId {
    RecordId {
        segment: 0,
        offset: n,
    }
}

impl StorageClient for MemStorage {
    fn stage(&mut self, data: &[u8], items: u32) -> Result<RecordId, StorageError> {
        let mut log = self.0.lock().unwrap();
        if log.fail_writes {
            return Err(StorageError("No space left on device (os error 28)".into()));
        }
        let n = log.next_id;
        log.next_id += 1;
        log.records.insert(n, (data.to_vec(), items, State::Staged));
        Ok(id(n))
    }
    fn publish(&mut self, id: RecordId) {
        if let Some(r) = self.0.lock().unwrap().records.get_mut(&id.offset) {
            r.2 = State::Ready;
        }
    }
    fn withdraw(&mut self, id: RecordId) -> Result<(), StorageError> {
        self.0.lock().unwrap().records.remove(&id.offset);
        Ok(())
    }
    fn next(&mut self) -> Result<Option<Record>, StorageError> {
        let mut log = self.0.lock().unwrap();
        let found = log.records.iter_mut().find(|(_, r)| r.2 == State::Ready);
        Ok(found.map(|(n, r)| {
            r.2 = State::InFlight;
            Record {
                id: id(*n),
                data: r.0.clone(),
                items: r.1,
            }
        }))
    }
    fn ack(&mut self, id: RecordId) -> Result<(), StorageError> {
        self.0.lock().unwrap().records.remove(&id.offset);
        Ok(())
    }
    fn stats(&self) -> StorageStats {
        let log = self.0.lock().unwrap();
        StorageStats {
            records: log.records.len() as u64,
            items: log.records.values().map(|r| u64::from(r.1)).sum(),
            bytes: log
                .records
                .values()
                .map(|r| r.0.len() as u64 + OVERHEAD)
                .sum(),
            corrupt: 0,
            ack_write_failures: 0,
        }
    }
    fn record_overhead(&self) -> u64 {
        OVERHEAD
    }
    fn max_bytes(&self) -> Option<u64> {
        None
    }
}

fn persistent(storage: &MemStorage, queue_size: usize, on_full: OnFull) -> ExporterSettings {
    let mut s = settings(queue_size, 1, on_full);
    s.sending_queue.storage = Some("file_storage".into());
    s.storage = Some(Arc::new(storage.clone()));
    s
}

/// Waits (bounded: 5 s of real time) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(std::time::Instant::now() < end, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn records_are_written_before_the_ok_and_acknowledged_after_delivery() {
    let storage = MemStorage::default();
    let exp = Arc::new(TestExporter::default());
    let q = SendingQueue::new(
        "p".into(),
        exp.clone(),
        persistent(&storage, 10, OnFull::Refuse),
    );
    q.start().await.unwrap();
    let b = batch(b"a", 3);
    let mut r = q.try_reserve(&b).unwrap();
    assert!(r.is_persistent());
    r.prepare(&b).await.unwrap();
    assert_eq!(storage.records(), 1, "written before the client's OK");
    assert!(exp.got.lock().unwrap().is_empty(), "unseen until committed");
    r.commit(b).await;
    put(&q, batch(b"b", 2)).await;
    until("both delivered and acknowledged", || {
        exp.got.lock().unwrap().len() == 2 && storage.records() == 0
    })
    .await;
    assert_eq!(q.counters.sent.get(Signal::Traces), 5);
    until("size back to 0", || q.size() == 0).await;
    q.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_failed_write_keeps_nothing_and_the_queue_accepts_again_once_writes_succeed() {
    let storage = MemStorage::default();
    let exp = Arc::new(TestExporter::default());
    let q = SendingQueue::new(
        "p".into(),
        exp.clone(),
        persistent(&storage, 10, OnFull::Refuse),
    );
    q.start().await.unwrap();
    storage.fail_writes(true);
    let b = batch(b"a", 3);
    let mut r = q.try_reserve(&b).unwrap();
    let e = r.prepare(&b).await.unwrap_err();
    assert!(e.to_string().contains("storage is full"), "{e}");
    drop(r);
    assert_eq!(storage.records(), 0);
    storage.fail_writes(false);
    put(&q, batch(b"b", 1)).await;
    until("delivered", || exp.got.lock().unwrap().len() == 1).await;
    assert_eq!(got_tags(&exp), ["b"]);
    q.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_aborted_or_dropped_reservation_withdraws_its_record() {
    let storage = MemStorage::default();
    let exp = Arc::new(TestExporter::default());
    let q = SendingQueue::new("p".into(), exp, persistent(&storage, 10, OnFull::Refuse));
    q.start().await.unwrap();
    let b = batch(b"a", 1);
    let mut r = q.try_reserve(&b).unwrap();
    r.prepare(&b).await.unwrap();
    assert_eq!(storage.records(), 1);
    r.abort().await;
    assert_eq!(storage.records(), 0, "abort withdraws");
    let mut r = q.try_reserve(&b).unwrap();
    r.prepare(&b).await.unwrap();
    drop(r);
    until("drop withdraws", || storage.records() == 0).await;
    q.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_stop_keeps_what_was_not_sent_for_the_next_start() {
    let storage = MemStorage::default();
    let down = Arc::new(TestExporter {
        fail_first: usize::MAX,
        ..Default::default()
    });
    let q = SendingQueue::new(
        "p".into(),
        down.clone(),
        persistent(&storage, 10, OnFull::Refuse),
    );
    q.start().await.unwrap();
    put(&q, batch(b"a", 2)).await;
    put(&q, batch(b"b", 3)).await;
    until("an attempt failed", || {
        down.attempts.load(Ordering::SeqCst) > 0
    })
    .await;
    let t0 = std::time::Instant::now();
    q.shutdown(Instant::now() + Duration::from_secs(5)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "a persistent queue stops at once, it does not drain"
    );
    assert_eq!(storage.records(), 2, "both stay on disk");
    assert_eq!(
        q.counters.send_failed.get(Signal::Traces),
        0,
        "nothing lost"
    );
    // The next start sends them, oldest first.
    let up = Arc::new(TestExporter::default());
    let q2 = SendingQueue::new(
        "p".into(),
        up.clone(),
        persistent(&storage, 10, OnFull::Refuse),
    );
    q2.start().await.unwrap();
    until("both delivered after the restart", || {
        up.got.lock().unwrap().len() == 2 && storage.records() == 0
    })
    .await;
    assert_eq!(got_tags(&up), ["a", "b"]);
    q2.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test]
async fn admission_follows_the_backend_closed_full_or_dropping_the_oldest() {
    let storage = MemStorage::default();
    let gate = Arc::new(tokio::sync::Notify::new());
    let blocked = Arc::new(TestExporter {
        block: Some(gate.clone()),
        ..Default::default()
    });
    // Before start the log is closed: refused whatever the policy, so nothing is dropped meanwhile.
    let q = SendingQueue::new(
        "p".into(),
        blocked.clone(),
        persistent(&storage, 2, OnFull::DropOldest),
    );
    let b = batch(b"x", 1);
    assert_eq!(q.try_reserve(&b).err().unwrap().policy, OnFull::Refuse);
    q.start().await.unwrap();
    // One in flight (the exporter blocks), then 2 more: the queue (2 requests) is full.
    put(&q, batch(b"a", 1)).await;
    until("a taken", || {
        storage
            .0
            .lock()
            .unwrap()
            .records
            .values()
            .any(|r| r.2 == State::InFlight)
    })
    .await;
    put(&q, batch(b"b", 2)).await;
    assert_eq!(q.counters.send_failed.get(Signal::Traces), 0);
    // drop_oldest: `b` (queued, not in flight) makes room for `c`, counted as failed.
    put(&q, batch(b"c", 4)).await;
    assert_eq!(q.counters.send_failed.get(Signal::Traces), 2);
    assert_eq!(storage.records(), 2, "a in flight, c queued");
    q.shutdown(Instant::now() + Duration::from_millis(100))
        .await;
    assert_eq!(storage.records(), 2, "kept for the next start");
    // `refuse` on a full queue: the fan-out refuses; nothing is written.
    let q = SendingQueue::new("p".into(), blocked, persistent(&storage, 2, OnFull::Refuse));
    q.start().await.unwrap();
    assert_eq!(q.try_reserve(&b).err().unwrap().policy, OnFull::Refuse);
    assert_eq!(storage.records(), 2);
    q.shutdown(Instant::now() + Duration::from_millis(100))
        .await;
}
