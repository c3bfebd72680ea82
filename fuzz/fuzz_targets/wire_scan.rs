//! The receiver's protobuf validation (`count_items` for every signal) and the traces scan/split the batch
//! processor and exporters use: never a panic; whatever scans splits into pieces that scan to the same count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanpipe_core::Signal;
use spanpipe_core::wire::{count_items, scan_traces, split_traces};

fuzz_target!(|data: &[u8]| {
    let _ = count_items(Signal::Metrics, data);
    let _ = count_items(Signal::Logs, data);
    let counted = count_items(Signal::Traces, data);
    let mut visited = 0usize;
    let scanned = scan_traces(data, |_, _| visited += 1);
    assert_eq!(counted.is_ok(), scanned.is_ok(), "count and scan disagree");
    let Ok(summary) = scanned else { return };
    assert_eq!(summary.spans, visited);
    assert_eq!(counted.ok(), Some(summary.spans));
    let max = data.first().map_or(0, |b| usize::from(b % 8));
    let pieces = split_traces(data, max).expect("a request that scans must split");
    let mut total = 0;
    for (piece, n) in &pieces {
        assert_eq!(
            count_items(Signal::Traces, piece).ok(),
            Some(*n),
            "piece does not rescan"
        );
        total += n;
    }
    assert_eq!(total, summary.spans, "split lost or invented spans");
});
