use super::*;
use crate::config::DEFAULT_BUCKETS;

fn table(max: usize) -> SeriesTable {
    SeriesTable::new(Arc::from(&DEFAULT_BUCKETS[..]), max)
}

fn labels<'a>(span_type: &'a str, trace: &'a TraceLabels) -> LabelsRef<'a> {
    LabelsRef {
        root: false,
        status: Status::Ok,
        span_type,
        experiment: "0",
        trace,
    }
}

#[test]
fn bucket_bounds_are_inclusive_upper_bounds() {
    let mut h = Histogram::new(DEFAULT_BUCKETS.len());
    for v in [0.0, 0.001, 5.0, 5.0001, 10000.0, 10000.5, 3.0] {
        h.record(&DEFAULT_BUCKETS, v);
    }
    let mut want = [0u64; 16];
    want[0] = 1; // 0
    want[1] = 3; // 0.001, 3, 5
    want[2] = 1; // 5.0001
    want[14] = 1; // 10000
    want[15] = 1; // +Inf
    assert_eq!(&h.counts[..], &want);
    assert_eq!(h.count, 7);
    assert!((h.sum - 20013.5011).abs() < 1e-9);
    assert_eq!((h.min, h.max), (0.0, 10000.5));
}

#[test]
fn same_labels_share_a_series_and_new_ones_create_one() {
    let mut t = table(10);
    let mut syms = Symbols::new(16);
    let now = Instant::now();
    let a: TraceLabels = vec![Some("rust".into())].into();
    let a2: TraceLabels = vec![Some("rust".into())].into();
    let b: TraceLabels = vec![None].into();
    assert_eq!(
        t.record(&labels("LLM", &a), 1.0, now, 100, &mut syms),
        Outcome::Created
    );
    assert_eq!(
        t.record(&labels("LLM", &a2), 2.0, now, 200, &mut syms),
        Outcome::Existing
    );
    assert_eq!(
        t.record(&labels("LLM", &b), 2.0, now, 200, &mut syms),
        Outcome::Created
    );
    assert_eq!(
        t.record(&labels("TOOL", &b), 2.0, now, 200, &mut syms),
        Outcome::Created
    );
    let mut root = labels("TOOL", &b);
    root.root = true;
    assert_eq!(t.record(&root, 2.0, now, 200, &mut syms), Outcome::Created);
    assert_eq!(t.len(), 4);
    let first = t.series().next().unwrap();
    assert_eq!((first.hist.count, first.start_unix_nano), (2, 100));
    // Span types are interned: both TOOL series share one string.
    let tools: Vec<_> = t.series().filter(|s| &*s.span_type == "TOOL").collect();
    assert!(Arc::ptr_eq(&tools[0].span_type, &tools[1].span_type));
}

#[test]
fn past_max_series_points_go_to_the_overflow_series() {
    let mut t = table(2);
    let mut syms = Symbols::new(16);
    let now = Instant::now();
    let none: TraceLabels = vec![].into();
    for ty in ["A", "B", "C", "D", "A"] {
        t.record(&labels(ty, &none), 1.0, now, 1, &mut syms);
    }
    assert_eq!(t.len(), 2);
    let o = t.overflow().unwrap();
    assert_eq!(o.hist.count, 2, "C and D overflowed, A did not");
    let counts: Vec<u64> = t.series().map(|s| s.hist.count).collect();
    assert_eq!(counts, [2, 1]);
}

#[test]
fn idle_series_expire_and_come_back_with_a_new_start() {
    let mut t = table(2);
    let mut syms = Symbols::new(16);
    let t0 = Instant::now();
    let none: TraceLabels = vec![].into();
    t.record(&labels("A", &none), 1.0, t0, 1, &mut syms);
    t.record(
        &labels("B", &none),
        1.0,
        t0 + Duration::from_secs(50),
        2,
        &mut syms,
    );
    t.record(&labels("C", &none), 1.0, t0, 3, &mut syms);
    assert!(t.overflow().is_some());
    assert_eq!(
        t.expire(t0 + Duration::from_secs(60), Duration::from_secs(60)),
        2
    );
    assert_eq!(t.len(), 1);
    assert!(t.overflow().is_none());
    assert_eq!(
        t.record(
            &labels("A", &none),
            1.0,
            t0 + Duration::from_secs(61),
            9,
            &mut syms
        ),
        Outcome::Created,
        "A's slot was freed"
    );
    let a = t.series().find(|s| &*s.span_type == "A").unwrap();
    assert_eq!((a.hist.count, a.start_unix_nano), (1, 9));
    assert_eq!(
        t.record(
            &labels("B", &none),
            1.0,
            t0 + Duration::from_secs(61),
            9,
            &mut syms
        ),
        Outcome::Existing
    );
}

#[test]
fn symbols_are_bounded() {
    let mut syms = Symbols::new(2);
    let a = syms.get("a");
    let a2 = syms.get("a");
    assert!(Arc::ptr_eq(&a, &a2));
    syms.get("b");
    syms.get("c");
    assert!(syms.set.len() <= 2);
}
