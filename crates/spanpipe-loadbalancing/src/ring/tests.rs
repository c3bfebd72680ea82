use super::*;

/// Trace ids as an SDK makes them (random 16 bytes), from a fixed seed.
fn trace_ids(n: usize, seed: u64) -> Vec<[u8; 16]> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            let mut id = [0u8; 16];
            for chunk in id.chunks_mut(8) {
                // xorshift64*
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                chunk.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
            }
            id
        })
        .collect()
}

fn loopback(ports: &[u16]) -> Vec<String> {
    ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
}

fn shares(ring: &Ring, ids: &[[u8; 16]]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for id in ids {
        *m.entry(ring.endpoint_for(id).unwrap().to_string())
            .or_insert(0) += 1;
    }
    m
}

#[test]
fn an_empty_ring_owns_nothing_and_one_backend_owns_everything() {
    assert_eq!(Ring::new::<String>(&[]).endpoint_for(b"x"), None);
    let one = Ring::new(&["a:4317"]);
    for id in trace_ids(100, 7) {
        assert_eq!(one.endpoint_for(&id), Some("a:4317"));
    }
}

#[test]
fn order_and_duplicates_do_not_change_the_ring() {
    let a = Ring::new(&["b:1", "a:1", "c:1"]);
    let b = Ring::new(&["c:1", "a:1", "b:1", "a:1"]);
    assert_eq!(a, b);
    assert_eq!(a.endpoints(), ["a:1", "b:1", "c:1"]);
}

#[test]
fn keys_spread_evenly_over_three_and_five_backends() {
    let ids = trace_ids(60_000, 42);
    for endpoints in [
        loopback(&[14317, 14318, 14319]),
        vec![
            "10.0.0.11:4317".into(),
            "10.0.0.12:4317".into(),
            "10.0.0.13:4317".into(),
        ],
        vec![
            "backend-0.spanpipe-back.obs.svc:4317".into(),
            "backend-1.spanpipe-back.obs.svc:4317".into(),
            "backend-2.spanpipe-back.obs.svc:4317".into(),
            "backend-3.spanpipe-back.obs.svc:4317".into(),
            "backend-4.spanpipe-back.obs.svc:4317".into(),
        ],
    ] {
        let ring = Ring::new(&endpoints);
        let s = shares(&ring, &ids);
        let fair = ids.len() as f64 / endpoints.len() as f64;
        // 1000 points per backend leave a few percent of unevenness per point set (see the module doc).
        let bound = 0.10;
        eprintln!("{s:?}");
        for (e, n) in &s {
            let off = (*n as f64 - fair).abs() / fair;
            assert!(
                off < bound,
                "{e}: {n} keys, {:.1}% off the fair share ({s:?})",
                off * 100.0
            );
        }
    }
}

#[test]
fn adding_or_removing_one_of_n_moves_about_one_nth() {
    let ids = trace_ids(30_000, 9);
    let three = Ring::new(&loopback(&[14317, 14318, 14319]));
    let four = Ring::new(&loopback(&[14317, 14318, 14319, 14320]));
    let two = Ring::new(&loopback(&[14317, 14319]));
    let mut to_new = 0;
    let mut moved_between_old = 0;
    let mut moved_on_removal = 0;
    let mut wrongly_moved_on_removal = 0;
    for id in &ids {
        let (before, after) = (
            three.endpoint_for(id).unwrap(),
            four.endpoint_for(id).unwrap(),
        );
        if after == "127.0.0.1:14320" {
            to_new += 1;
        } else if after != before {
            moved_between_old += 1;
        }
        let gone = two.endpoint_for(id).unwrap();
        if gone != before {
            moved_on_removal += 1;
            if before != "127.0.0.1:14318" {
                wrongly_moved_on_removal += 1;
            }
        }
    }
    assert_eq!(
        moved_between_old, 0,
        "a new backend takes keys only for itself"
    );
    assert_eq!(
        wrongly_moved_on_removal, 0,
        "only the removed backend's keys move"
    );
    let n = ids.len() as f64;
    let added = to_new as f64 / n;
    let removed = moved_on_removal as f64 / n;
    assert!((0.25 * 0.7..0.25 * 1.3).contains(&added), "added: {added}");
    assert!(
        (0.333 * 0.7..0.333 * 1.3).contains(&removed),
        "removed: {removed}"
    );
}

#[test]
fn any_three_loopback_backends_split_within_twelve_percent() {
    // 500 random port triples (what the e2e test's free ports are): the worst backend's share of the circle.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut worst = 0f64;
    for _ in 0..500 {
        let ports: Vec<u16> = (0..3)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                20_000 + (x % 40_000) as u16
            })
            .collect();
        let ring = Ring::new(&loopback(&ports));
        let shares = ring.shares();
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        for s in shares {
            worst = worst.max((s - 1.0 / 3.0).abs() * 3.0);
        }
    }
    eprintln!(
        "worst share off a third over 500 triples: {:.1}%",
        worst * 100.0
    );
    assert!(worst < 0.12, "worst {worst}");
}
