//! Self-telemetry names and per-exporter counters.
//!
//! Metric names follow the OTel Collector (`otelcol_exporter_sent_spans`, ...) so existing dashboards work. Each
//! counter is also kept as an atomic, so tests and shutdown logs can read the counts without a recorder.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::Counter;

use crate::Signal;

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

/// A counter per signal, registered once with its labels.
pub struct SignalCounter {
    counters: [Counter; 3],
    totals: [AtomicU64; 3],
}

impl SignalCounter {
    /// `otelcol_{component}_{verb}_{items}` with one label, e.g. ("exporter", "sent", "exporter", "otlp/a").
    pub fn new(component: &str, verb: &str, label: &'static str, value: &str) -> Self {
        let counters = SIGNALS.map(|s| {
            metrics::counter!(
                format!("otelcol_{component}_{verb}_{}", item_noun(s)),
                label => value.to_string()
            )
        });
        SignalCounter {
            counters,
            totals: Default::default(),
        }
    }

    pub fn add(&self, signal: Signal, n: usize) {
        self.counters[index(signal)].increment(n as u64);
        self.totals[index(signal)].fetch_add(n as u64, Ordering::Relaxed);
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
}
