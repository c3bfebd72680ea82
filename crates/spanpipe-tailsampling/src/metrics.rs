//! The processor's own metrics: the Collector contrib's `otelcol_processor_tail_sampling_*` set under spanpipe's
//! prefix (`spanpipe_processor_tail_sampling_*`, counters with `_total`), each with a `processor` label. Counters
//! are also kept as atomics so tests and the shutdown log can read them without a recorder.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge, Histogram};

use crate::policy::Decision;

/// Metric name prefix.
pub const PREFIX: &str = "spanpipe_processor_tail_sampling_";

/// A counter with its running total.
pub struct Count {
    counter: Counter,
    total: AtomicU64,
}

impl Count {
    fn new(name: &str, labels: &[(&'static str, String)]) -> Self {
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, v.clone()))
            .collect();
        Count {
            counter: metrics::counter!(format!("{PREFIX}{name}"), labels),
            total: AtomicU64::new(0),
        }
    }

    pub fn add(&self, n: u64) {
        if n > 0 {
            self.counter.increment(n);
            self.total.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// Counts per decision label (`sampled`, `not_sampled`, `dropped`).
pub struct ByDecision([Count; 3]);

impl ByDecision {
    fn new(name: &str, labels: &[(&'static str, String)]) -> Self {
        let with = |sampled: &str, decision: &str| {
            let mut l = labels.to_vec();
            l.push(("sampled", sampled.to_string()));
            l.push(("decision", decision.to_string()));
            Count::new(name, &l)
        };
        ByDecision([
            with("true", "sampled"),
            with("false", "not_sampled"),
            with("false", "dropped"),
        ])
    }

    pub fn get(&self, d: Decision) -> &Count {
        &self.0[match d.labels().1 {
            "sampled" => 0,
            "not_sampled" => 1,
            _ => 2,
        }]
    }
}

/// Every metric of one processor instance.
pub struct Metrics {
    /// `count_traces_sampled_total{policy, sampled, decision}`, one per top-level policy, in config order.
    pub per_policy: Vec<ByDecision>,
    /// `global_count_traces_sampled_total{sampled, decision}`.
    pub global: ByDecision,
    /// `sampling_policy_evaluation_error_total{policy}`.
    pub policy_errors: Vec<Count>,
    /// `new_trace_id_received_total`.
    pub new_traces: Count,
    /// `early_releases_from_cache_decision_total{sampled}`: spans of already decided traces, released or dropped
    /// at once.
    pub late_sampled: Count,
    pub late_not_sampled: Count,
    /// `sampling_late_span_age` (seconds from the decision to a late span's arrival).
    pub late_span_age: Histogram,
    /// `sampling_trace_dropped_too_early_total`: traces dropped without a decision (only with
    /// `drop_pending_traces_on_shutdown`).
    pub dropped_too_early: Count,
    /// `sampling_trace_decided_early_total{reason}` (spanpipe): decided before `decision_wait` to stay within
    /// `num_traces`, `max_buffered_bytes` or `maximum_trace_size_bytes`.
    pub decided_early_num_traces: Count,
    pub decided_early_bytes: Count,
    pub decided_early_trace_size: Count,
    /// `sampling_traces_on_memory`: undecided traces held.
    pub traces_on_memory: Gauge,
    /// `buffered_bytes` (spanpipe): bytes of undecided traces held.
    pub buffered_bytes: Gauge,
    /// `release_failed_spans_total` (spanpipe): kept spans the next consumer never took (logged).
    pub release_failed: Count,
    /// `unreadable_batches_total` (spanpipe): batches the wire layer could not cut per trace, passed on unsampled.
    pub unreadable: Count,
}

/// HELP texts (the Collector's where it has the metric).
const HELP: &[(&str, &str)] = &[
    (
        "count_traces_sampled_total",
        "Count of traces that were sampled or not per sampling policy",
    ),
    (
        "global_count_traces_sampled_total",
        "Global count of traces that were sampled or not by at least one policy",
    ),
    (
        "sampling_policy_evaluation_error_total",
        "Count of sampling policy evaluation errors",
    ),
    (
        "new_trace_id_received_total",
        "Counts the arrival of new traces",
    ),
    (
        "early_releases_from_cache_decision_total",
        "Number of spans that were able to be immediately released due to a decision cache hit.",
    ),
    (
        "sampling_trace_dropped_too_early_total",
        "Count of traces that needed to be dropped before the configured wait time",
    ),
    (
        "sampling_trace_decided_early_total",
        "Count of traces decided before the configured wait time to stay within num_traces or the byte bounds",
    ),
    (
        "release_failed_spans_total",
        "Kept spans the pipeline never took (rejected, or refused past the shutdown limit)",
    ),
    (
        "unreadable_batches_total",
        "Batches that could not be cut per trace, passed on unsampled",
    ),
    (
        "sampling_traces_on_memory",
        "Tracks the number of traces current on memory",
    ),
    ("buffered_bytes", "Bytes of undecided traces held"),
    (
        "sampling_late_span_age",
        "Time (in seconds) from the sampling decision was taken and the arrival of a late span",
    ),
];

/// Registers the HELP texts (once the recorder is installed; repeating is harmless).
fn describe() {
    for (name, help) in HELP {
        let full = format!("{PREFIX}{name}");
        match *name {
            "sampling_traces_on_memory" | "buffered_bytes" => metrics::describe_gauge!(full, *help),
            "sampling_late_span_age" => {
                metrics::describe_histogram!(full, metrics::Unit::Seconds, *help)
            }
            _ => metrics::describe_counter!(full, *help),
        }
    }
}

impl Metrics {
    pub fn new(processor: &str, policies: &[String]) -> Self {
        describe();
        let base = vec![("processor", processor.to_string())];
        let with = |k: &'static str, v: &str| {
            let mut l = base.clone();
            l.push((k, v.to_string()));
            l
        };
        Metrics {
            per_policy: policies
                .iter()
                .map(|p| ByDecision::new("count_traces_sampled_total", &with("policy", p)))
                .collect(),
            global: ByDecision::new("global_count_traces_sampled_total", &base),
            policy_errors: policies
                .iter()
                .map(|p| Count::new("sampling_policy_evaluation_error_total", &with("policy", p)))
                .collect(),
            new_traces: Count::new("new_trace_id_received_total", &base),
            late_sampled: Count::new(
                "early_releases_from_cache_decision_total",
                &with("sampled", "true"),
            ),
            late_not_sampled: Count::new(
                "early_releases_from_cache_decision_total",
                &with("sampled", "false"),
            ),
            late_span_age: metrics::histogram!(
                format!("{PREFIX}sampling_late_span_age"),
                "processor" => processor.to_string()
            ),
            dropped_too_early: Count::new("sampling_trace_dropped_too_early_total", &base),
            decided_early_num_traces: Count::new(
                "sampling_trace_decided_early_total",
                &with("reason", "num_traces"),
            ),
            decided_early_bytes: Count::new(
                "sampling_trace_decided_early_total",
                &with("reason", "max_buffered_bytes"),
            ),
            decided_early_trace_size: Count::new(
                "sampling_trace_decided_early_total",
                &with("reason", "maximum_trace_size_bytes"),
            ),
            traces_on_memory: metrics::gauge!(
                format!("{PREFIX}sampling_traces_on_memory"),
                "processor" => processor.to_string()
            ),
            buffered_bytes: metrics::gauge!(
                format!("{PREFIX}buffered_bytes"),
                "processor" => processor.to_string()
            ),
            release_failed: Count::new("release_failed_spans_total", &base),
            unreadable: Count::new("unreadable_batches_total", &base),
        }
    }
}
