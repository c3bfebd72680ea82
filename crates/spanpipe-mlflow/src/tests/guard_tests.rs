//! The tenant guard against the fake MLflow: allow-list, `create_experiments: false`, the creation rate limit,
//! and concurrent name resolution (a slow name never holds back experiments that are already resolved).

use std::sync::Arc;
use std::time::{Duration, Instant};

use spanpipe_core::{ExportError, Exporter};

use super::data::{batch, kv, resource_request};
use super::exporter_tests::started;
use super::fake;

const BY_ATTR: &str = "routing:\n  - {from: resource_attribute, attribute: mlflow.experiment_name, as: experiment_name}\n";

async fn exporter(uri: &str, extra: &str) -> Arc<dyn Exporter> {
    started(&format!("tracking_uri: {uri}\n{BY_ATTR}{extra}"), &[])
        .await
        .expect("exporter starts")
}

/// One resource per name (name `""`: no routing attribute), trace `i` of 2 spans each.
fn tenants(names: &[&str]) -> spanpipe_core::Batch {
    let mut req =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::default();
    for (i, n) in names.iter().enumerate() {
        let extra = if n.is_empty() {
            vec![]
        } else {
            vec![kv("mlflow.experiment_name", n)]
        };
        req.resource_spans
            .extend(resource_request(n, &extra, i as u64, 2).resource_spans);
    }
    batch(&req)
}

fn experiment_count(st: &fake::Shared) -> usize {
    st.lock().unwrap().experiments.len()
}

#[tokio::test]
async fn refused_names_go_to_the_default_and_create_nothing() {
    let (uri, st) = fake::start().await;
    let e = exporter(&uri, "allowed_experiments: ['team-[a-z]+', 'shared']\n").await;
    let hostile: Vec<String> = (0..100).map(|i| format!("evil-{i}")).collect();
    let mut names: Vec<&str> = hostile.iter().map(String::as_str).collect();
    names.extend(["team-a", "team-a-but-longer-1", "shared"]);
    e.export(&tenants(&names)).await.unwrap();
    let s = st.lock().unwrap();
    let made: Vec<&str> = s.experiments.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(made, ["Default", "team-a", "shared"]);
    assert_eq!(
        s.spans_in("0"),
        2 * 101,
        "refused values fall back to the default"
    );
    assert_eq!(s.spans_in(&s.id_of("team-a").unwrap()), 2);
}

#[tokio::test]
async fn without_creation_a_missing_experiment_refuses_only_its_spans() {
    let (uri, st) = fake::start().await;
    let existing = st.lock().unwrap().create("present");
    let e = exporter(&uri, "create_experiments: false\n").await;
    let r = e.export(&tenants(&["present", "absent", ""])).await;
    let Err(ExportError::Permanent { reason }) = r else {
        panic!("expected a permanent error, got {r:?}")
    };
    assert!(
        reason.contains("\"absent\" does not exist and create_experiments is false")
            && reason.contains("[2 of 6 spans"),
        "{reason}"
    );
    let s = st.lock().unwrap();
    assert_eq!(s.id_of("absent"), None, "not created");
    assert_eq!((s.spans_in(&existing), s.spans_in("0")), (2, 2));
    assert!(!s.seen.iter().any(|x| x.path.ends_with("/create")));
}

#[tokio::test]
async fn creations_are_rate_limited_and_the_rest_of_the_batch_is_delivered() {
    let (uri, st) = fake::start().await;
    let e = exporter(&uri, "max_experiment_creations_per_minute: 2\n").await;
    let b = tenants(&["n1", "n2", "n3", ""]);
    let r = e.export(&b).await;
    let Err(ExportError::Retryable { reason, delay }) = r else {
        panic!("expected a retryable error, got {r:?}")
    };
    assert!(
        reason.contains("max_experiment_creations_per_minute"),
        "{reason}"
    );
    let delay = delay.expect("a delay");
    assert!(
        delay > Duration::from_secs(20) && delay <= Duration::from_secs(30),
        "{delay:?}"
    );
    assert_eq!(experiment_count(&st), 3, "two created");
    {
        let s = st.lock().unwrap();
        assert_eq!(s.spans_in("0"), 2, "the default went first");
        assert_eq!(s.spans_in(&s.id_of("n1").unwrap()), 2);
        assert_eq!(s.spans_in(&s.id_of("n2").unwrap()), 2);
    }
    // The retry sends only what was not acknowledged, and is throttled again.
    let posts = st.lock().unwrap().trace_posts().len();
    assert!(matches!(
        e.export(&b).await,
        Err(ExportError::Retryable { .. })
    ));
    assert_eq!(st.lock().unwrap().trace_posts().len(), posts);
    // Unlimited: all created.
    let e = exporter(&uri, "max_experiment_creations_per_minute: 0\n").await;
    e.export(&tenants(&["m1", "m2", "m3", "m4"])).await.unwrap();
    assert_eq!(experiment_count(&st), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_name_never_holds_back_resolved_experiments_or_other_names() {
    let (uri, st) = fake::start().await;
    st.lock()
        .unwrap()
        .slow_search
        .insert("slow".into(), Duration::from_millis(1500));
    let e = exporter(&uri, "").await;
    // Warm the cache for "fast".
    e.export(&tenants(&["fast"])).await.unwrap();

    // 1. Within one batch: the resolved experiments are sent before the slow name is looked up.
    let e2 = e.clone();
    let mixed = tokio::spawn(async move { e2.export(&tenants(&["slow", "fast", ""])).await });
    let t0 = Instant::now();
    let spans_fast = || {
        let s = st.lock().unwrap();
        s.spans_in(&s.id_of("fast").unwrap_or_default())
    };
    while spans_fast() < 4 {
        assert!(t0.elapsed() < Duration::from_secs(5), "fast never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fast_after = t0.elapsed();
    assert!(fast_after < Duration::from_millis(700), "{fast_after:?}");
    assert_eq!(st.lock().unwrap().spans_in("0"), 2);

    // 2. Across exports: another new name resolves while "slow" is still in flight (no global lock).
    let t1 = Instant::now();
    e.export(&tenants(&["other"])).await.unwrap();
    let other = t1.elapsed();
    assert!(other < Duration::from_millis(700), "{other:?}");
    mixed.await.unwrap().unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(1400));

    // 3. Concurrent exports of one name resolve it once.
    st.lock()
        .unwrap()
        .slow_search
        .insert("once".into(), Duration::from_millis(300));
    let runs: Vec<_> = (0..5)
        .map(|_| {
            let e = e.clone();
            tokio::spawn(async move { e.export(&tenants(&["once"])).await })
        })
        .collect();
    for r in runs {
        r.await.unwrap().unwrap();
    }
    let s = st.lock().unwrap();
    let creates = s
        .seen
        .iter()
        .filter(|x| {
            x.path.ends_with("/create") && String::from_utf8_lossy(&x.body).contains("once")
        })
        .count();
    assert_eq!(creates, 1);
    assert_eq!(s.experiments.iter().filter(|x| x.name == "once").count(), 1);
}
