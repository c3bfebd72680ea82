//! Self-telemetry names and per-exporter counters.
//!
//! Metric names are the OTel Collector's as its Prometheus endpoint shows them (`otelcol_exporter_sent_spans_total`,
//! ...) so existing dashboards and alerts work unchanged. metrics-exporter-prometheus adds no suffix by default, so
//! the `_total` of counters is part of the names here. Each counter is also kept as an atomic, so tests and shutdown
//! logs can read the counts without a recorder.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::Counter;

use crate::Signal;
use crate::status::ExporterHealth;

/// The collector's item noun per signal: `spans`, `metric_points`, `log_records`.
pub fn item_noun(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans",
        Signal::Metrics => "metric_points",
        Signal::Logs => "log_records",
    }
}

fn index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

const SIGNALS: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

/// The Prometheus name of a per-signal counter: `otelcol_{component}_{verb}_{items}_total`.
pub fn signal_counter_name(component: &str, verb: &str, signal: Signal) -> String {
    format!("otelcol_{component}_{verb}_{}_total", item_noun(signal))
}

/// A counter per signal, registered once with its labels.
pub struct SignalCounter {
    counters: [Counter; 3],
    totals: [AtomicU64; 3],
    /// Told about every addition: a send outcome for health checks (success for `sent`, failure for `send_failed`).
    outcome: OnceLock<(Arc<ExporterHealth>, bool)>,
}

impl SignalCounter {
    /// `otelcol_{component}_{verb}_{items}_total` with one label, e.g. ("exporter", "sent", "exporter", "otlp/a").
    pub fn new(component: &str, verb: &str, label: &'static str, value: &str) -> Self {
        Self::with_labels(component, verb, &[(label, value)])
    }

    /// As [`SignalCounter::new`] with several labels, e.g. `receiver` and `transport`.
    pub fn with_labels(component: &str, verb: &str, labels: &[(&'static str, &str)]) -> Self {
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, v.to_string()))
            .collect();
        let counters = SIGNALS
            .map(|s| metrics::counter!(signal_counter_name(component, verb, s), labels.iter()));
        SignalCounter {
            counters,
            totals: Default::default(),
            outcome: OnceLock::new(),
        }
    }

    pub fn add(&self, signal: Signal, n: usize) {
        self.counters[index(signal)].increment(n as u64);
        self.totals[index(signal)].fetch_add(n as u64, Ordering::Relaxed);
        if let Some((health, success)) = self.outcome.get() {
            if *success {
                health.success();
            } else {
                health.failure();
            }
        }
    }

    pub fn get(&self, signal: Signal) -> u64 {
        self.totals[index(signal)].load(Ordering::Relaxed)
    }
}

/// What every exporter counts.
pub struct ExporterCounters {
    pub sent: SignalCounter,
    pub send_failed: SignalCounter,
    pub enqueue_failed: SignalCounter,
}

impl ExporterCounters {
    pub fn new(exporter: &str) -> Self {
        ExporterCounters {
            sent: SignalCounter::new("exporter", "sent", "exporter", exporter),
            send_failed: SignalCounter::new("exporter", "send_failed", "exporter", exporter),
            enqueue_failed: SignalCounter::new("exporter", "enqueue_failed", "exporter", exporter),
        }
    }

    /// From now on every `sent` addition reports a success and every `send_failed` one a failure to `health`
    /// (the first call wins: one exporter, one record).
    pub fn report_to(&self, health: Arc<ExporterHealth>) {
        let _ = self.sent.outcome.set((health.clone(), true));
        let _ = self.send_failed.outcome.set((health, false));
    }
}

/// Receivers' request durations (a summary per `receiver` and `transport`): spanpipe's own share of a client's
/// Export latency.
pub const RECEIVER_REQUEST_DURATION: &str = "spanpipe_receiver_request_duration_seconds";

/// Registers the HELP text of every `otelcol_*` metric the core and receivers record. Call once after the
/// recorder is installed (descriptions given before that are lost).
pub fn describe() {
    const COUNTERS: [(&str, &str, &str); 5] = [
        (
            "receiver",
            "accepted",
            "successfully pushed into the pipeline",
        ),
        (
            "receiver",
            "refused",
            "that could not be pushed into the pipeline",
        ),
        ("exporter", "sent", "successfully sent to destination"),
        (
            "exporter",
            "send_failed",
            "in failed attempts to send to destination",
        ),
        (
            "exporter",
            "enqueue_failed",
            "failed to be added to the sending queue",
        ),
    ];
    for (component, verb, what) in COUNTERS {
        for s in SIGNALS {
            let noun = item_noun(s).replace('_', " ");
            metrics::describe_counter!(
                signal_counter_name(component, verb, s),
                metrics::Unit::Count,
                format!("Number of {noun} {what}.")
            );
        }
    }
    crate::counting::describe();
    metrics::describe_histogram!(
        RECEIVER_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time from a request's headers to its answer: body read, checks and hand-over to the pipeline."
    );
}
