//! The core's sending queue on a real `file_storage` log: restart recovery and order, the caps with each
//! `on_full` policy, and a stop that leaves queued data on disk instead of counting it lost.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use spanpipe_core::queue::SendingQueue;
use spanpipe_core::{
    Batch, ExportError, Exporter, ExporterSettings, OnFull, QueueSettings, RetrySettings, Signal,
    Sizer, Storage,
};
use spanpipe_storage::file_storage::FileStorage;
use spanpipe_storage::log::LogOptions;
use tokio::time::Instant;

/// A backend that can be down (retryable errors) or stuck (the attempt hangs until released).
#[derive(Default)]
struct Backend {
    down: AtomicBool,
    stuck: AtomicBool,
    release: tokio::sync::Notify,
    attempts: AtomicUsize,
    got: Mutex<Vec<Bytes>>,
}

#[async_trait]
impl Exporter for Backend {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.stuck.load(Ordering::SeqCst) {
            self.release.notified().await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(ExportError::retryable("connection refused"));
        }
        self.got.lock().unwrap().push(batch.payload.to_bytes());
        Ok(())
    }
}

fn storage(dir: &std::path::Path, max_bytes: u64) -> Arc<dyn Storage> {
    Arc::new(FileStorage::new(
        dir.to_path_buf(),
        LogOptions {
            fsync: false,
            segment_size: 4096,
            max_bytes: Some(max_bytes),
        },
    ))
}

fn queue(
    backend: &Arc<Backend>,
    store: &Arc<dyn Storage>,
    queue_size: usize,
    consumers: usize,
    on_full: OnFull,
) -> Arc<SendingQueue> {
    let settings = ExporterSettings {
        sending_queue: QueueSettings {
            queue_size,
            num_consumers: consumers,
            on_full,
            storage: Some("file_storage".into()),
            ..QueueSettings::default()
        },
        retry_on_failure: RetrySettings {
            initial_interval: spanpipe_config::Duration(Duration::from_millis(20)),
            max_interval: spanpipe_config::Duration(Duration::from_millis(50)),
            max_elapsed_time: spanpipe_config::Duration(Duration::ZERO),
            ..RetrySettings::default()
        },
        timeout: Duration::from_secs(5),
        storage: Some(store.clone()),
    };
    SendingQueue::new("otlp/test".into(), backend.clone(), settings)
}

fn batch(i: usize) -> Batch {
    Batch::new(
        Signal::Traces,
        Bytes::from(format!("batch-{i:04}").into_bytes()),
        2,
    )
}

async fn put(q: &Arc<SendingQueue>, b: Batch) {
    q.try_reserve(&b)
        .unwrap_or_else(|_| panic!("queue full"))
        .send(b)
        .await;
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn names(got: &Mutex<Vec<Bytes>>) -> Vec<String> {
    got.lock()
        .unwrap()
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

fn expected(range: impl Iterator<Item = usize>) -> Vec<String> {
    range.map(|i| format!("batch-{i:04}")).collect()
}

#[tokio::test]
async fn queued_data_survives_a_stop_and_is_sent_first_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(dir.path(), 1 << 20);
    let down = Arc::new(Backend::default());
    down.down.store(true, Ordering::SeqCst);
    let q = queue(&down, &store, 100, 2, OnFull::Refuse);
    q.start().await.unwrap();
    for i in 0..20 {
        put(&q, batch(i)).await;
    }
    wait_for("retries", || down.attempts.load(Ordering::SeqCst) >= 4).await;
    assert_eq!(q.size(), 20);
    q.shutdown(Instant::now() + Duration::from_secs(5)).await;
    assert_eq!(
        q.counters.send_failed.get(Signal::Traces),
        0,
        "a stop is not a loss"
    );

    // The next run: older data first, then new data, in order (one consumer).
    let up = Arc::new(Backend::default());
    let q = queue(&up, &store, 100, 1, OnFull::Refuse);
    q.start().await.unwrap();
    assert_eq!(q.size(), 20, "everything was still on disk");
    for i in 20..25 {
        put(&q, batch(i)).await;
    }
    wait_for("delivery", || up.got.lock().unwrap().len() >= 25).await;
    assert_eq!(names(&up.got), expected(0..25));
    wait_for("acks", || q.size() == 0).await;
    q.shutdown(Instant::now() + Duration::from_secs(5)).await;
    assert_eq!(q.counters.sent.get(Signal::Traces), 50);

    // Nothing is sent twice by a third run.
    let again = Arc::new(Backend::default());
    let q = queue(&again, &store, 100, 1, OnFull::Refuse);
    q.start().await.unwrap();
    assert_eq!(q.size(), 0);
    q.shutdown(Instant::now() + Duration::from_secs(5)).await;
}

#[tokio::test]
async fn full_queue_refuses_or_drops_new_data_per_policy() {
    for policy in [OnFull::Refuse, OnFull::Drop] {
        let dir = tempfile::tempdir().unwrap();
        let store = storage(dir.path(), 1 << 20);
        let down = Arc::new(Backend::default());
        down.down.store(true, Ordering::SeqCst);
        let q = queue(&down, &store, 3, 1, policy);
        q.start().await.unwrap();
        for i in 0..3 {
            put(&q, batch(i)).await;
        }
        let full = q
            .try_reserve(&batch(3))
            .err()
            .expect("fourth batch must not fit");
        assert_eq!(full.policy, policy);
        q.shutdown(Instant::now() + Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn the_byte_cap_applies_too() {
    let dir = tempfile::tempdir().unwrap();
    // Each record: 16-byte header + 11-byte batch header + 10-byte payload = 37 bytes; three fit in 120.
    let store = storage(dir.path(), 120);
    let down = Arc::new(Backend::default());
    down.down.store(true, Ordering::SeqCst);
    let q = queue(&down, &store, 1000, 1, OnFull::Refuse);
    q.start().await.unwrap();
    for i in 0..3 {
        put(&q, batch(i)).await;
    }
    assert!(q.try_reserve(&batch(3)).is_err(), "over max_size");
    q.shutdown(Instant::now() + Duration::from_secs(5)).await;
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(dir.path(), 1 << 20);
    let backend = Arc::new(Backend::default());
    backend.stuck.store(true, Ordering::SeqCst);
    let q = queue(&backend, &store, 3, 1, OnFull::DropOldest);
    q.start().await.unwrap();
    put(&q, batch(0)).await;
    wait_for("batch 0 in flight", || {
        backend.attempts.load(Ordering::SeqCst) == 1
    })
    .await;
    for i in 1..6 {
        put(&q, batch(i)).await;
    }
    assert_eq!(q.size(), 3, "capped");
    // 1, 2 and 3 made room for 3, 4 and 5 (batch 0 is being sent and cannot be dropped).
    assert_eq!(q.counters.send_failed.get(Signal::Traces), 3 * 2);
    backend.stuck.store(false, Ordering::SeqCst);
    backend.release.notify_one();
    wait_for("delivery", || backend.got.lock().unwrap().len() >= 3).await;
    wait_for("acks", || q.size() == 0).await;
    assert_eq!(names(&backend.got), expected([0, 4, 5].into_iter()));
    q.shutdown(Instant::now() + Duration::from_secs(5)).await;
}

#[tokio::test]
async fn items_sizer_counts_items_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(dir.path(), 1 << 20);
    let down = Arc::new(Backend::default());
    down.down.store(true, Ordering::SeqCst);
    let mut q = queue(&down, &store, 5, 1, OnFull::Refuse);
    {
        let settings = q.settings().clone();
        let mut s = settings;
        s.sending_queue.sizer = Sizer::Items;
        q = SendingQueue::new("otlp/test".into(), down.clone(), s);
    }
    q.start().await.unwrap();
    put(&q, batch(0)).await;
    put(&q, batch(1)).await;
    assert_eq!(q.size(), 4);
    assert!(q.try_reserve(&batch(2)).is_err(), "4 + 2 items > 5");
    q.shutdown(Instant::now() + Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_second_queue_on_the_same_storage_and_id_fails_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(dir.path(), 1 << 20);
    let b = Arc::new(Backend::default());
    let q1 = queue(&b, &store, 10, 1, OnFull::Refuse);
    q1.start().await.unwrap();
    let q2 = queue(&b, &store, 10, 1, OnFull::Refuse);
    let e = q2.start().await.expect_err("locked").to_string();
    assert!(e.contains("in use"), "{e}");
    q1.shutdown(Instant::now() + Duration::from_secs(5)).await;
}

#[tokio::test]
async fn batching_persistent_queue_merges_on_read_and_keeps_unsent_records_over_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(dir.path(), 1 << 20);
    let batched = |backend: &Arc<Backend>, min_size: usize| {
        let q = queue(backend, &store, 100, 3, OnFull::Refuse);
        let mut settings = q.settings().clone();
        settings.sending_queue.batch = Some(spanpipe_core::BatchSettings {
            min_size,
            ..Default::default()
        });
        SendingQueue::new("otlp/test".into(), backend.clone(), settings)
    };
    // Backend down: records are written (the client's OK), batched only when read, never acknowledged.
    let down = Arc::new(Backend::default());
    down.down.store(true, Ordering::SeqCst);
    let q = batched(&down, 6);
    q.start().await.unwrap();
    for i in 0..9 {
        put(&q, batch(i)).await;
    }
    wait_for("retries", || down.attempts.load(Ordering::SeqCst) >= 2).await;
    assert_eq!(q.size(), 9);
    q.shutdown(Instant::now() + Duration::from_secs(5)).await;
    assert_eq!(q.counters.send_failed.get(Signal::Traces), 0);

    // Next run, backend up: every record arrives, merged three at a time (2 items each, min_size 6).
    let up = Arc::new(Backend::default());
    let q = batched(&up, 6);
    q.start().await.unwrap();
    wait_for("delivery", || up.got.lock().unwrap().len() >= 3).await;
    wait_for("acks", || q.size() == 0).await;
    let mut got: Vec<String> = names(&up.got);
    got.sort();
    assert_eq!(got.len(), 3, "{got:?}");
    let mut all: Vec<String> = got
        .iter()
        .flat_map(|g| {
            g.as_bytes()
                .chunks(10)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    all.sort();
    assert_eq!(all, expected(0..9));
    q.shutdown(Instant::now() + Duration::from_secs(5)).await;
    assert_eq!(q.counters.sent.get(Signal::Traces), 18);

    // Nothing is left for a third run.
    let again = Arc::new(Backend::default());
    let q = batched(&again, 6);
    q.start().await.unwrap();
    assert_eq!(q.size(), 0);
    q.shutdown(Instant::now() + Duration::from_secs(5)).await;
}
