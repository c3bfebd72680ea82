use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use spanpipe_config::{ComponentId, load_str};

use super::*;

fn ctx() -> BuildContext {
    BuildContext::new(
        "memory_limiter".parse::<ComponentId>().unwrap(),
        "processors.memory_limiter".into(),
    )
}

fn parse(yaml: &str) -> Result<MemoryLimiterConfig, ConfigError> {
    let node = load_str("test.yaml", yaml).unwrap();
    let cfg: MemoryLimiterConfig = ctx().config(&node)?;
    cfg.validate()
        .map_err(|(k, m)| ctx().invalid(&node, &[k], m))?;
    Ok(cfg)
}

const MIB: u64 = 1 << 20;

#[test]
fn limits_from_mib_and_percentages() {
    let cfg = parse("check_interval: 1s\nlimit_mib: 100\n").unwrap();
    let l = cfg.limits(|| panic!("total not needed")).unwrap();
    assert_eq!((l.hard, l.soft), (100 * MIB, 80 * MIB));
    let cfg = parse("check_interval: 1s\nlimit_mib: 100\nspike_limit_mib: 30\n").unwrap();
    assert_eq!(cfg.limits(|| Ok(0)).unwrap().soft, 70 * MIB);
    let cfg =
        parse("check_interval: 1s\nlimit_percentage: 50\nspike_limit_percentage: 10\n").unwrap();
    let l = cfg.limits(|| Ok(1000 * MIB)).unwrap();
    assert_eq!((l.hard, l.soft), (500 * MIB, 400 * MIB));
    let cfg = parse("check_interval: 1s\nlimit_percentage: 50\n").unwrap();
    let l = cfg.limits(|| Ok(1000 * MIB)).unwrap();
    assert_eq!((l.hard, l.soft), (500 * MIB, 400 * MIB));
    assert!(cfg.limits(|| Err("no total".into())).is_err());
}

#[test]
fn invalid_configs_name_the_key() {
    let cases = [
        ("limit_mib: 100\n", "check_interval"),
        ("check_interval: 0s\nlimit_mib: 100\n", "check_interval"),
        ("check_interval: 1s\n", "limit_mib"),
        (
            "check_interval: 1s\nlimit_mib: 100\nlimit_percentage: 50\n",
            "limit_percentage",
        ),
        (
            "check_interval: 1s\nlimit_mib: 100\nspike_limit_mib: 100\n",
            "spike_limit_mib",
        ),
        (
            "check_interval: 1s\nlimit_percentage: 101\n",
            "limit_percentage",
        ),
        (
            "check_interval: 1s\nlimit_percentage: 50\nspike_limit_percentage: 60\n",
            "spike_limit_percentage",
        ),
        (
            "check_interval: 1s\nlimit_percentage: 50\nspike_limit_mib: 10\n",
            "spike_limit_mib",
        ),
        (
            "check_interval: 1s\nlimit_mib: 50\nspike_limit_percentage: 10\n",
            "spike_limit_percentage",
        ),
        (
            "check_interval: 1s\nlimit_mib: 50\nballast_size_mib: 10\n",
            "ballast_size_mib",
        ),
    ];
    for (yaml, key) in cases {
        let err = parse(yaml).expect_err(yaml).to_string();
        assert!(
            err.contains(&format!("processors.memory_limiter.{key}")),
            "{yaml:?}: {err}"
        );
    }
}

#[test]
fn proc_fields_and_real_usage() {
    let text = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
    assert_eq!(usage::kib_field(text, "VmRSS:"), Some(1024 * 1024));
    assert_eq!(usage::kib_field(text, "VmSwap:"), None);
    let rss = usage::rss_bytes().unwrap();
    assert!(rss > MIB && rss < (64 << 30), "{rss}");
    let total = usage::total_memory().unwrap();
    assert!(total > rss, "{total} <= {rss}");
}

#[test]
fn cgroup_limits_v2_v1_and_none() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("a/b")).unwrap();
    std::fs::write(r.join("a/b/memory.max"), "max\n").unwrap();
    std::fs::write(r.join("a/memory.max"), "536870912\n").unwrap();
    // v2: the nearest limit on the way up.
    assert_eq!(usage::cgroup_limit("0::/a/b\n", r), Some(512 * MIB));
    std::fs::write(r.join("a/memory.max"), "max\n").unwrap();
    assert_eq!(usage::cgroup_limit("0::/a/b\n", r), None);
    // v1, with "unlimited" as a huge number.
    std::fs::create_dir_all(r.join("memory/x")).unwrap();
    std::fs::write(r.join("memory/x/memory.limit_in_bytes"), "1073741824\n").unwrap();
    assert_eq!(
        usage::cgroup_limit("5:cpu:/x\n4:memory:/x\n", r),
        Some(1024 * MIB)
    );
    std::fs::write(
        r.join("memory/x/memory.limit_in_bytes"),
        "9223372036854771712\n",
    )
    .unwrap();
    assert_eq!(usage::cgroup_limit("4:memory:/x\n", r), None);
}

/// A consumer that takes everything.
struct Sink(AtomicU64);

#[async_trait]
impl Consumer for Sink {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.0.fetch_add(batch.items as u64, Ordering::Relaxed);
        Ok(())
    }
}

static USED: AtomicU64 = AtomicU64::new(0);

fn fake_usage() -> Result<u64, String> {
    Ok(USED.load(Ordering::Relaxed))
}

#[tokio::test]
async fn refuses_above_the_soft_limit_until_back_under() {
    let cfg = parse("check_interval: 2s\nlimit_mib: 100\nspike_limit_mib: 20\n").unwrap();
    let limits = cfg.limits(|| Ok(0)).unwrap();
    let sink = Arc::new(Sink(AtomicU64::new(0)));
    let limiter = MemoryLimiter {
        gauge: Arc::new(Gauge::new("memory_limiter/t", cfg, fake_usage)),
        signal: Signal::Traces,
        next: sink.clone(),
        refused: SignalCounter::new("processor", "refused", "processor", "memory_limiter/t"),
    };
    let batch = || Batch::new(Signal::Traces, Bytes::from_static(b"x"), 7);

    USED.store(79 * MIB, Ordering::Relaxed);
    limiter.gauge.check(limits);
    limiter.consume(batch()).await.unwrap();

    USED.store(80 * MIB, Ordering::Relaxed);
    limiter.gauge.check(limits);
    match limiter.consume(batch()).await {
        Err(ConsumeError::Refused { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_secs(2))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(limiter.refused.get(Signal::Traces), 7);

    USED.store(50 * MIB, Ordering::Relaxed);
    limiter.gauge.check(limits);
    limiter.consume(batch()).await.unwrap();
    assert_eq!(sink.0.load(Ordering::Relaxed), 14);
    assert_eq!(limiter.refused.get(Signal::Traces), 7);
}

#[tokio::test]
async fn pipelines_share_one_gauge_and_the_timer_runs() {
    let node = load_str("t.yaml", "check_interval: 10ms\nlimit_mib: 1\n").unwrap();
    let sink: Arc<dyn Consumer> = Arc::new(Sink(AtomicU64::new(0)));
    let mut c = ctx();
    c.id = "memory_limiter/shared".parse().unwrap();
    let a = MemoryLimiterFactory
        .build(&c, &node, Signal::Traces, sink.clone())
        .unwrap();
    let b = MemoryLimiterFactory
        .build(&c, &node, Signal::Logs, sink)
        .unwrap();
    a.start().await.unwrap();
    b.start().await.unwrap();
    // This test process uses far more than 1 MiB: the first check already refuses.
    let err = b
        .consume(Batch::new(Signal::Logs, Bytes::from_static(b"x"), 1))
        .await
        .unwrap_err();
    assert!(matches!(err, ConsumeError::Refused { .. }), "{err:?}");
    a.shutdown().await;
    assert!(
        b.consume(Batch::new(Signal::Logs, Bytes::from_static(b"x"), 1))
            .await
            .is_err()
    );
    b.shutdown().await;
    assert!(
        b.consume(Batch::new(Signal::Logs, Bytes::from_static(b"x"), 1))
            .await
            .is_ok()
    );
}
