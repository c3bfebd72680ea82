use std::sync::Mutex as StdMutex;
use std::sync::atomic::AtomicUsize;

use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use crate::fanout::Fanout;
use crate::{ConsumeError, Consumer, ExportError, RetrySettings, Signal};
use tokio::time::Instant;

/// Fails the first `fail_first` attempts (retryable, with `delay`), then records what it got.
#[derive(Default)]
struct TestExporter {
    fail_first: usize,
    permanent: bool,
    delay: Option<Duration>,
    attempts: AtomicUsize,
    got: StdMutex<Vec<(Instant, Bytes)>>,
    block: Option<Arc<tokio::sync::Notify>>,
}

#[async_trait]
impl Exporter for TestExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        if let Some(n) = &self.block {
            n.notified().await;
        }
        let n = self.attempts.fetch_add(1, Ordering::SeqCst);
        if n < self.fail_first {
            return Err(if self.permanent {
                ExportError::permanent("bad request: 400")
            } else {
                ExportError::Retryable {
                    reason: "unavailable".into(),
                    delay: self.delay,
                }
            });
        }
        self.got
            .lock()
            .unwrap()
            .push((Instant::now(), batch.payload.to_bytes()));
        Ok(())
    }
}

fn settings(queue_size: usize, consumers: usize, on_full: OnFull) -> ExporterSettings {
    ExporterSettings {
        sending_queue: QueueSettings {
            queue_size,
            num_consumers: consumers,
            on_full,
            ..QueueSettings::default()
        },
        retry_on_failure: RetrySettings::default(),
        timeout: Duration::from_secs(5),
        storage: None,
    }
}

async fn put(q: &Arc<SendingQueue>, b: Batch) {
    q.try_reserve(&b).unwrap().send(b).await;
}

fn batch(tag: &'static [u8], items: usize) -> Batch {
    Batch::new(Signal::Traces, Bytes::from_static(tag), items)
}

#[tokio::test(start_paused = true)]
async fn retries_honour_the_backend_delay_then_deliver() {
    let exp = Arc::new(TestExporter {
        fail_first: 2,
        delay: Some(Duration::from_secs(2)),
        ..Default::default()
    });
    let q = SendingQueue::new("t".into(), exp.clone(), settings(10, 1, OnFull::Refuse));
    q.start().await.unwrap();
    let t0 = Instant::now();
    put(&q, batch(b"a", 3)).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let got = exp.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].0 - t0 >= Duration::from_secs(4),
        "two 2 s waits honoured"
    );
    assert_eq!(q.counters.sent.get(Signal::Traces), 3);
    assert_eq!(q.counters.send_failed.get(Signal::Traces), 0);
    q.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_counted_not_retried() {
    let exp = Arc::new(TestExporter {
        fail_first: 100,
        permanent: true,
        ..Default::default()
    });
    let q = SendingQueue::new("t".into(), exp.clone(), settings(10, 1, OnFull::Refuse));
    q.start().await.unwrap();
    put(&q, batch(b"a", 5)).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(exp.attempts.load(Ordering::SeqCst), 1);
    assert_eq!(q.counters.send_failed.get(Signal::Traces), 5);
    q.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_time_gives_up_and_counts() {
    let exp = Arc::new(TestExporter {
        fail_first: usize::MAX,
        ..Default::default()
    });
    let q = SendingQueue::new("t".into(), exp.clone(), settings(10, 1, OnFull::Refuse));
    q.start().await.unwrap();
    put(&q, batch(b"a", 2)).await;
    tokio::time::sleep(Duration::from_secs(400)).await;
    assert_eq!(q.counters.send_failed.get(Signal::Traces), 2);
    assert!(exp.attempts.load(Ordering::SeqCst) > 5);
    q.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test]
async fn fanout_admission_is_all_or_nothing() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let slow = Arc::new(TestExporter {
        block: Some(gate.clone()),
        ..Default::default()
    });
    let fast = Arc::new(TestExporter::default());
    let qs = SendingQueue::new("slow".into(), slow.clone(), settings(2, 1, OnFull::Refuse));
    let qf = SendingQueue::new(
        "fast".into(),
        fast.clone(),
        settings(100, 1, OnFull::Refuse),
    );
    qs.start().await.unwrap();
    qf.start().await.unwrap();
    let fanout = Fanout::new(vec![qs.clone(), qf.clone()], vec![]);
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..10 {
        match fanout.consume(batch(b"x", 1)).await {
            Ok(()) => accepted += 1,
            Err(ConsumeError::Refused { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(accepted, 2, "slow queue holds 2 (one in flight counts)");
    assert_eq!(refused, 8);
    tokio::time::timeout(Duration::from_secs(5), async {
        while fast.got.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(
        fast.got.lock().unwrap().len(),
        2,
        "refused batches reached no exporter"
    );
    for _ in 0..4 {
        gate.notify_one();
    }
    qs.shutdown(Instant::now() + Duration::from_secs(5)).await;
    qf.shutdown(Instant::now() + Duration::from_secs(5)).await;
    assert_eq!(slow.got.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn drop_policy_isolates_the_slow_exporter() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let slow = Arc::new(TestExporter {
        block: Some(gate.clone()),
        ..Default::default()
    });
    let fast = Arc::new(TestExporter::default());
    let qs = SendingQueue::new("slow".into(), slow.clone(), settings(1, 1, OnFull::Drop));
    let qf = SendingQueue::new(
        "fast".into(),
        fast.clone(),
        settings(100, 2, OnFull::Refuse),
    );
    qs.start().await.unwrap();
    qf.start().await.unwrap();
    let fanout = Fanout::new(vec![qs.clone(), qf.clone()], vec![]);
    for _ in 0..20 {
        fanout.consume(batch(b"x", 3)).await.unwrap();
    }
    qf.shutdown(Instant::now() + Duration::from_secs(5)).await;
    assert_eq!(fast.got.lock().unwrap().len(), 20);
    assert_eq!(qs.counters.enqueue_failed.get(Signal::Traces), 19 * 3);
    gate.notify_one();
    qs.shutdown(Instant::now() + Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_deadline_counts_what_is_left() {
    let exp = Arc::new(TestExporter {
        fail_first: usize::MAX,
        ..Default::default()
    });
    let q = SendingQueue::new("t".into(), exp.clone(), settings(10, 1, OnFull::Refuse));
    q.start().await.unwrap();
    for _ in 0..3 {
        put(&q, batch(b"a", 4)).await;
    }
    q.shutdown(Instant::now() + Duration::from_secs(2)).await;
    assert_eq!(q.counters.send_failed.get(Signal::Traces), 12);
    assert_eq!(q.counters.sent.get(Signal::Traces), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_of_a_never_started_queue_counts_what_it_holds() {
    let exp = Arc::new(TestExporter::default());
    let q = SendingQueue::new("t".into(), exp.clone(), settings(10, 1, OnFull::Refuse));
    for _ in 0..2 {
        put(&q, batch(b"a", 5)).await;
    }
    q.shutdown(Instant::now() + Duration::from_secs(1)).await;
    assert_eq!(q.counters.send_failed.get(Signal::Traces), 10);
    assert_eq!(exp.attempts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn bytes_sizer_counts_encoded_bytes() {
    let exp = Arc::new(TestExporter::default());
    let mut s = settings(10, 1, OnFull::Refuse);
    s.sending_queue.sizer = Sizer::Bytes;
    let q = SendingQueue::new("t".into(), exp.clone(), s);
    let r1 = q.try_reserve(&batch(b"123456", 1)).unwrap();
    assert_eq!(q.size(), 6);
    assert!(
        q.try_reserve(&batch(b"12345", 1)).is_err(),
        "6 + 5 bytes > 10"
    );
    let r2 = q.try_reserve(&batch(b"1234", 100)).unwrap();
    assert_eq!(q.size(), 10, "items do not matter, bytes do");
    drop((r1, r2));
    assert_eq!(q.size(), 0);
    assert!(
        q.try_reserve(&batch(b"0123456789abcdef", 1)).is_ok(),
        "oversized batch admitted into an empty queue"
    );
}

#[tokio::test]
async fn items_sizer_counts_items() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let exp = Arc::new(TestExporter {
        block: Some(gate.clone()),
        ..Default::default()
    });
    let mut s = settings(10, 1, OnFull::Refuse);
    s.sending_queue.sizer = Sizer::Items;
    let q = SendingQueue::new("t".into(), exp.clone(), s);
    assert!(q.try_reserve(&batch(b"a", 6)).is_ok_and(|r| {
        drop(r);
        true
    }));
    let r1 = q.try_reserve(&batch(b"a", 6)).unwrap();
    assert!(q.try_reserve(&batch(b"a", 5)).is_err());
    assert_eq!(q.size(), 6);
    drop(r1);
    assert!(
        q.try_reserve(&batch(b"a", 50)).is_ok(),
        "oversized batch admitted into an empty queue"
    );
}

fn batching(min_size: usize, max_size: usize, consumers: usize) -> ExporterSettings {
    let mut s = settings(100, consumers, OnFull::Refuse);
    s.sending_queue.batch = Some(BatchSettings {
        min_size,
        max_size,
        ..BatchSettings::default()
    });
    s
}

#[tokio::test(start_paused = true)]
async fn batch_merges_until_min_size_then_until_the_flush_timeout() {
    let exp = Arc::new(TestExporter::default());
    let q = SendingQueue::new("t".into(), exp.clone(), batching(6, 0, 4));
    q.start().await.unwrap();
    let t0 = Instant::now();
    for tag in [&b"a"[..], b"b", b"c"] {
        let b = Batch::new(Signal::Traces, Bytes::from_static(tag), 2);
        put(&q, b).await;
    }
    // min_size reached: exported at once, merged.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(got_tags(&exp), vec!["abc".to_string()]);
    assert!(exp.got.lock().unwrap()[0].0 - t0 < Duration::from_millis(10));
    // Below min_size: exported when flush_timeout (200ms) has passed since the first request.
    put(&q, batch(b"d", 1)).await;
    put(&q, batch(b"e", 1)).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(got_tags(&exp).len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(got_tags(&exp), vec!["abc".to_string(), "de".to_string()]);
    assert_eq!(q.size(), 0);
    q.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn batch_never_passes_max_size_nor_mixes_metadata() {
    let exp = Arc::new(TestExporter::default());
    let q = SendingQueue::new("t".into(), exp.clone(), batching(100, 4, 1));
    q.start().await.unwrap();
    let tenant = crate::Metadata(Some(Arc::from(vec![(
        "x-tenant".to_string(),
        "b".to_string(),
    )])));
    put(&q, batch(b"a", 2)).await;
    put(&q, batch(b"b", 2)).await;
    put(&q, batch(b"c", 2)).await; // past max_size: starts the next batch
    let mut other = batch(b"d", 1);
    other.metadata = tenant;
    put(&q, other).await; // other metadata: a batch of its own
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(got_tags(&exp), vec!["ab", "c", "d"]);
    q.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn batch_drains_at_shutdown_without_waiting_for_the_flush_timeout() {
    let exp = Arc::new(TestExporter::default());
    let q = SendingQueue::new("t".into(), exp.clone(), batching(1000, 0, 2));
    q.start().await.unwrap();
    put(&q, batch(b"a", 1)).await;
    put(&q, batch(b"b", 1)).await;
    let t0 = Instant::now();
    q.shutdown(Instant::now() + Duration::from_secs(5)).await;
    assert!(t0.elapsed() <= Duration::from_millis(200));
    assert_eq!(got_tags(&exp).concat(), "ab");
}

#[test]
fn batch_settings_validate() {
    let mut s = QueueSettings {
        batch: Some(BatchSettings::default()),
        ..QueueSettings::default()
    };
    assert!(s.validate().is_ok());
    s.batch = Some(BatchSettings {
        min_size: 10,
        max_size: 5,
        ..BatchSettings::default()
    });
    assert_eq!(s.validate().unwrap_err().0, "batch");
    s.batch = Some(BatchSettings {
        flush_timeout: spanpipe_config::Duration(Duration::ZERO),
        ..BatchSettings::default()
    });
    assert_eq!(s.validate().unwrap_err().0, "batch");
}

fn got_tags(exp: &TestExporter) -> Vec<String> {
    exp.got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[test]
fn batch_key_alone_enables_the_defaults_and_absent_leaves_it_off() {
    let parse = |yaml: &str| -> QueueSettings {
        let node = spanpipe_config::load_str("t.yaml", yaml).unwrap();
        crate::BuildContext::new(
            crate::ComponentId::new("otlp", None),
            "exporters.otlp".into(),
        )
        .config(&node)
        .unwrap()
    };
    assert_eq!(parse("queue_size: 5").batch, None);
    assert_eq!(parse("batch:").batch, Some(BatchSettings::default()));
    assert_eq!(parse("batch: {}").batch, Some(BatchSettings::default()));
    let b = parse("batch: { flush_timeout: 1s, min_size: 10, max_size: 20, sizer: bytes }")
        .batch
        .unwrap();
    assert_eq!(
        (b.flush_timeout.0, b.min_size, b.max_size, b.sizer),
        (Duration::from_secs(1), 10, 20, BatchSizer::Bytes)
    );
    assert_eq!(
        BatchSettings::default().flush_timeout.0,
        Duration::from_millis(200)
    );
    assert_eq!(
        (
            BatchSettings::default().min_size,
            BatchSettings::default().max_size
        ),
        (8192, 0)
    );
}

mod persistent;

#[tokio::test(start_paused = true)]
async fn join_until_returns_only_the_unfinished_tasks_and_never_repolls_a_finished_one() {
    // Both orders: a finished task before and after the stuck one.
    for stuck_first in [false, true] {
        let done = tokio::spawn(async {});
        let stuck = tokio::spawn(std::future::pending::<()>());
        tokio::task::yield_now().await;
        let tasks = if stuck_first {
            vec![stuck, done]
        } else {
            vec![done, stuck]
        };
        let running = join_until(tasks, Instant::now() + Duration::from_secs(1))
            .await
            .expect_err("one task never ends");
        // Polled from the back: a finished task after the stuck one was awaited and left out; one before it was
        // never polled. Awaiting every returned handle must not panic.
        assert_eq!(running.len(), if stuck_first { 1 } else { 2 });
        let mut cancelled = 0;
        for h in running {
            h.abort();
            if h.await.is_err_and(|e| e.is_cancelled()) {
                cancelled += 1;
            }
        }
        assert_eq!(cancelled, 1, "stuck first: {stuck_first}");
    }
    let finished = vec![tokio::spawn(async {}), tokio::spawn(async {})];
    assert!(
        join_until(finished, Instant::now() + Duration::from_secs(1))
            .await
            .is_ok()
    );
}
