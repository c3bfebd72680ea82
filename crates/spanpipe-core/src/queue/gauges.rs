//! The queue's own metrics: occupancy and capacity under the OTel Collector's names, plus spanpipe's persistent
//! queue bytes, retries and damaged records.

use std::sync::Once;

use metrics::{Counter, Gauge};

/// Per-exporter queue metrics, registered once with the `exporter` label.
pub struct QueueGauges {
    /// `otelcol_exporter_queue_size`: queued plus in flight, in `sizer` units.
    pub size: Gauge,
    /// `otelcol_exporter_queue_capacity`: `queue_size`.
    pub capacity: Gauge,
    /// `spanpipe_exporter_persistent_queue_bytes`: on-disk bytes of the records a persistent queue holds.
    pub bytes: Gauge,
    /// `spanpipe_exporter_retries_total`: export attempts that failed retryably and were scheduled again.
    pub retries: Counter,
    /// `spanpipe_exporter_persistent_queue_corrupt_records_total`: damaged records skipped.
    pub corrupt: Counter,
    /// `spanpipe_exporter_persistent_queue_write_failures_total`: failed writes of requests (refused or dropped,
    /// never acknowledged) and of acknowledgements (kept in memory and written again).
    pub write_failures: Counter,
}

impl QueueGauges {
    pub fn new(exporter: &str) -> Self {
        describe();
        let label = || ("exporter", exporter.to_string());
        QueueGauges {
            size: metrics::gauge!("otelcol_exporter_queue_size", &[label()]),
            capacity: metrics::gauge!("otelcol_exporter_queue_capacity", &[label()]),
            bytes: metrics::gauge!("spanpipe_exporter_persistent_queue_bytes", &[label()]),
            retries: metrics::counter!("spanpipe_exporter_retries_total", &[label()]),
            corrupt: metrics::counter!(
                "spanpipe_exporter_persistent_queue_corrupt_records_total",
                &[label()]
            ),
            write_failures: metrics::counter!(
                "spanpipe_exporter_persistent_queue_write_failures_total",
                &[label()]
            ),
        }
    }
}

/// HELP texts; the recorder is installed before the graph is built, so describing on first use reaches it.
fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        metrics::describe_gauge!(
            "otelcol_exporter_queue_size",
            metrics::Unit::Count,
            "Current size of the retry queue (in batches or items, per sizer)."
        );
        metrics::describe_gauge!(
            "otelcol_exporter_queue_capacity",
            metrics::Unit::Count,
            "Fixed capacity of the retry queue (in batches or items, per sizer)."
        );
        metrics::describe_gauge!(
            "spanpipe_exporter_persistent_queue_bytes",
            metrics::Unit::Bytes,
            "On-disk bytes of the requests a persistent sending queue holds (queued or being sent)."
        );
        metrics::describe_counter!(
            "spanpipe_exporter_retries_total",
            metrics::Unit::Count,
            "Export attempts that failed retryably and were scheduled again."
        );
        metrics::describe_counter!(
            "spanpipe_exporter_persistent_queue_corrupt_records_total",
            metrics::Unit::Count,
            "Damaged records (torn writes, checksum mismatches, undecodable) skipped by a persistent queue."
        );
        metrics::describe_counter!(
            "spanpipe_exporter_persistent_queue_write_failures_total",
            metrics::Unit::Count,
            "Failed writes of a persistent queue: requests (refused or dropped, never acknowledged) and acknowledgements (kept in memory, written again)."
        );
    });
}
