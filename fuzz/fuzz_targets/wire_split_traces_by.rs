//! `split_traces_by` (the `loadbalancing` exporter's cut into one request per backend): never a panic on
//! anything; on a request the receiver's door admits it never fails, every piece passes the door again and holds
//! only spans its classifier put in its group, and the pieces together hold every span exactly once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanpipe_core::wire::{MAX_DEPTH, check_traces, split_traces_by, walk_spans};

/// The group of a span: its first byte's low bits (any stable function of the span will do).
fn group(raw: &[u8]) -> u64 {
    u64::from(raw.iter().fold(0u8, |a, b| a.wrapping_add(*b)) % 3)
}

fn spans(buf: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    walk_spans(buf, |ctx| {
        out.push(ctx.raw.to_vec());
        Ok(())
    })
    .expect("an admitted request walks");
    out
}

fuzz_target!(|data: &[u8]| {
    let split = split_traces_by(data, |ctx| Ok(group(ctx.raw)));
    let Ok(report) = check_traces(data, MAX_DEPTH) else {
        return;
    };
    if report.invalid_spans > 0 {
        return;
    }
    let pieces = split.expect("an admitted request splits");
    let mut got = Vec::new();
    for p in &pieces {
        let again = check_traces(&p.request, MAX_DEPTH).expect("a piece passes the door");
        assert_eq!(again.invalid_spans, 0);
        assert_eq!(again.spans, p.spans);
        let own = spans(&p.request);
        assert!(own.iter().all(|s| group(s) == p.group), "a piece mixes groups");
        got.extend(own);
    }
    let mut all = spans(data);
    all.sort();
    got.sort();
    assert_eq!(all, got, "every span exactly once");
});
