//! `split_by_trace` (the `tail_sampling` buffer's cut): never a panic on anything; on a request the receiver's
//! door admits it never fails, every piece passes the door again, holds only its own trace's spans, and the
//! pieces together hold every span exactly once (same span bytes, same order within a trace).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanpipe_core::wire::{MAX_DEPTH, SpanView, check_traces, split_by_trace, walk_spans};

/// (trace id, raw span bytes) of every span, in wire order.
fn spans(buf: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    walk_spans(buf, |ctx| {
        let v = SpanView::read(ctx.raw, |_, _| {})?;
        out.push((v.trace_id.to_vec(), ctx.raw.to_vec()));
        Ok(())
    })
    .expect("an admitted request walks");
    out
}

fuzz_target!(|input: &[u8]| {
    // The first byte is ignored, so `wire_door`'s corpus (a depth selector, then the request) seeds this one.
    let Some((_, data)) = input.split_first() else {
        return;
    };
    let split = split_by_trace(data);
    let Ok(report) = check_traces(data, MAX_DEPTH) else {
        return;
    };
    if report.invalid_spans > 0 {
        return;
    }
    let pieces = split.expect("an admitted request splits");
    let mut all = spans(data);
    let mut got = Vec::new();
    for p in &pieces {
        let again = check_traces(&p.request, MAX_DEPTH).expect("a piece passes the door");
        assert_eq!(again.invalid_spans, 0);
        assert_eq!(again.spans, p.spans);
        let own = spans(&p.request);
        assert!(own.iter().all(|(t, _)| *t == p.trace_id), "a piece mixes traces");
        got.extend(own);
    }
    let ids: std::collections::HashSet<&Vec<u8>> = pieces.iter().map(|p| &p.trace_id).collect();
    assert_eq!(ids.len(), pieces.len(), "one piece per trace");
    // Same spans; within one trace, the same order.
    let key = |v: &mut Vec<(Vec<u8>, Vec<u8>)>| v.sort_by(|a, b| a.0.cmp(&b.0));
    key(&mut all);
    key(&mut got);
    assert_eq!(all, got, "spans lost, duplicated or reordered within a trace");
});
