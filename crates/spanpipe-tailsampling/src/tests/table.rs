//! The trace table: decision timing, bounds, decision caches, shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::buffer::{Buffer, Route};
use crate::metrics::Metrics;
use crate::trace::Piece;

// ---------- the trace table ----------

fn table(yaml: &str) -> Buffer {
    let cfg = config(yaml).unwrap();
    let names: Vec<String> = cfg.policies.iter().map(|p| p.name.clone()).collect();
    Buffer::new(
        crate::limits(&cfg),
        crate::sampler(&cfg, Instant::now()),
        Arc::new(Metrics::new("tail_sampling/test", &names)),
        0,
    )
}

fn one(t: u64, s: u64, code: i32) -> Piece {
    piece(request(vec![], vec![span(t, s, 0, code, vec![])]))
}

pub(super) const ERRORS: &str =
    "policies: [{name: e, type: status_code, status_code: {status_codes: [ERROR]}}]";

#[test]
fn traces_wait_for_their_decision_and_late_spans_follow_it() {
    let mut b = table(&format!("decision_wait: 1s\n{ERRORS}"));
    let t0 = Instant::now();
    assert_eq!(b.accept(&tid(1), one(1, 0, 1), t0), Route::Buffered);
    assert_eq!(b.accept(&tid(1), one(1, 1, 2), t0), Route::Buffered);
    assert_eq!(b.accept(&tid(2), one(2, 0, 1), t0), Route::Buffered);
    assert_eq!(b.decide_due(t0 + Duration::from_millis(999), usize::MAX), 0);
    assert_eq!(
        b.decide_due(t0 + Duration::from_secs(1), 1),
        1,
        "at most max at once"
    );
    assert_eq!(b.decide_due(t0 + Duration::from_secs(1), usize::MAX), 1);
    assert_eq!(b.outbox.len(), 2, "both pieces of the error trace");
    assert_eq!(b.traces(), 0);
    assert_eq!(b.bytes(), 0);
    // Late spans follow: trace 1 kept, trace 2 dropped (remembered among the last num_traces decisions).
    let later = t0 + Duration::from_secs(5);
    assert_eq!(b.accept(&tid(1), one(1, 2, 1), later), Route::Released);
    assert_eq!(
        b.accept(&tid(2), one(2, 1, 2), later),
        Route::Dropped,
        "an error arriving late does not revive it"
    );
    assert_eq!(b.outbox.len(), 3);
}

#[test]
fn past_num_traces_the_oldest_is_decided_early_never_lost() {
    let mut b = table(&format!("num_traces: 3\n{ERRORS}"));
    let t0 = Instant::now();
    for t in 1..=5 {
        b.accept(&tid(t), one(t, 0, 2), t0);
    }
    assert_eq!(b.traces(), 3);
    assert_eq!(b.outbox.len(), 2, "traces 1 and 2 decided (kept) early");
    // Their late spans still follow.
    assert_eq!(b.accept(&tid(1), one(1, 1, 1), t0), Route::Released);
    b.decide_all(t0, false);
    assert_eq!((b.traces(), b.outbox.len()), (0, 6));
}

#[test]
fn byte_bounds_decide_early() {
    let big = one(1, 0, 2).bytes.len();
    let mut b = table(&format!("max_buffered_bytes: {}\n{ERRORS}", big * 2));
    let t0 = Instant::now();
    for t in 1..=4 {
        b.accept(&tid(t), one(t, 0, 2), t0);
    }
    assert!(b.bytes() <= big * 2, "{}", b.bytes());
    assert_eq!(b.outbox.len(), 2);
    let mut b = table(&format!("maximum_trace_size_bytes: {}\n{ERRORS}", big + 1));
    assert_eq!(b.accept(&tid(1), one(1, 0, 2), t0), Route::Buffered);
    assert_eq!(b.outbox.len(), 0);
    b.accept(&tid(1), one(1, 1, 2), t0);
    assert_eq!(
        (b.traces(), b.outbox.len()),
        (0, 2),
        "decided as soon as it passed the bound"
    );
}

#[test]
fn decision_caches_outlive_the_recent_table() {
    let mut b = table(&format!(
        "num_traces: 1\ndecision_cache: {{sampled_cache_size: 10, non_sampled_cache_size: 10}}\n{ERRORS}"
    ));
    let t0 = Instant::now();
    for t in 1..=4 {
        b.accept(&tid(t), one(t, 0, (t % 2 + 1) as i32), t0);
    }
    b.decide_all(t0, false);
    // Trace 1 (error, kept) and 2 (ok, dropped) were pushed out of the 1-entry table by later decisions.
    assert_eq!(b.accept(&tid(1), one(1, 9, 1), t0), Route::Released);
    assert_eq!(b.accept(&tid(2), one(2, 9, 2), t0), Route::Dropped);
}

#[test]
fn shutdown_can_drop_pending_traces_and_counts_them() {
    let mut b = table(ERRORS);
    let t0 = Instant::now();
    b.accept(&tid(1), one(1, 0, 2), t0);
    b.decide_all(t0, true);
    assert_eq!((b.traces(), b.outbox.len()), (0, 0));
}
