//! The Prometheus text exposition format (0.0.4), as Go's `expfmt` writes it: families sorted by name, each
//! with `# HELP` and `# TYPE`; series sorted by labels; histograms as cumulative `_bucket{le=...}` lines ending
//! with `+Inf`, then `_sum` and `_count`; floats in Go's `%g` form. No timestamps by default (the Go exporter's
//! `send_timestamps: false`); with [`Format::timestamps`] each sample carries its data point's time. With
//! [`Format::open_metrics`] the same data is written as OpenMetrics 1.0 text (client_golang's writer): counter
//! families named without `_total` and their samples with it, timestamps in seconds, ending with `# EOF`.

use std::fmt::Write;
use std::sync::Arc;

use crate::names::{Kind, go_float};
use crate::store::Store;
use crate::translate::Value;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The `Content-Type` of [`render`]'s output with [`Format::open_metrics`].
pub const OPEN_METRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How [`render`] writes (the `prometheus` exporter's `send_timestamps` and `enable_open_metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Format {
    /// Each sample carries the time of its latest data point.
    pub timestamps: bool,
    /// OpenMetrics 1.0 text instead of the Prometheus text format 0.0.4.
    pub open_metrics: bool,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        if self.open_metrics {
            OPEN_METRICS_CONTENT_TYPE
        } else {
            CONTENT_TYPE
        }
    }
}

/// HELP text: `\\` and newlines escaped, and in OpenMetrics `"` too.
fn escape_help(s: &str, out: &mut String, open_metrics: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if open_metrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn escape_value(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// ` <timestamp>`: milliseconds in the Prometheus text format, seconds (with milliseconds) in OpenMetrics.
fn timestamp(out: &mut String, time_ns: u64, open_metrics: bool) {
    let ms = time_ns / 1_000_000;
    if open_metrics {
        let _ = write!(out, " {}.{:03}", ms / 1000, ms % 1000);
    } else {
        let _ = write!(out, " {ms}");
    }
}

/// One sample line being written: its series' labels and the timestamp it carries, if any.
struct Sample<'a> {
    name: &'a str,
    labels: &'a [(Arc<str>, String)],
    time_ns: Option<u64>,
    open_metrics: bool,
}

impl Sample<'_> {
    /// `name{a="x",b="y",extra="v"} value[ timestamp]\n`.
    fn line(&self, out: &mut String, suffix: &str, extra: Option<(&str, &str)>, value: f64) {
        line(out, self.name, suffix, self.labels, extra, value);
        if let Some(t) = self.time_ns {
            out.pop();
            timestamp(out, t, self.open_metrics);
            out.push('\n');
        }
    }
}

/// `name{a="x",b="y",extra="v"} value\n`.
fn line(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(Arc<str>, String)],
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let all = labels
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_str()))
        .chain(extra);
    let mut first = true;
    for (k, v) in all {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_value(v, out);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(&go_float(value));
    out.push('\n');
}

/// About the size of the rendered text, so the buffer is allocated once (a 10,000-series page is ~30 MiB, and
/// growing it by doubling would briefly need half as much again).
fn estimate(store: &Store) -> usize {
    let mut total = 0;
    for (name, f) in &store.families {
        total += 2 * name.len() + f.help.len() + 32;
        for (labels, e) in &f.series {
            let lines = match &e.value {
                Value::Number(_) => 1,
                Value::Histogram { bounds, .. } => bounds.len() + 3,
                Value::Summary { quantiles, .. } => quantiles.len() + 2,
            };
            let label_len: usize = labels.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
            total += lines * (name.len() + label_len + 48);
        }
    }
    total
}

/// The whole store as exposition text.
pub fn render(store: &Store, format: Format) -> String {
    let mut out = String::with_capacity(estimate(store));
    for (name, f) in &store.families {
        if f.series.is_empty() {
            continue;
        }
        // OpenMetrics names a counter family without `_total`; its samples carry it.
        let (family, sample_suffix) = match (format.open_metrics, f.kind) {
            (true, Kind::Counter) => (name.strip_suffix("_total").unwrap_or(name), "_total"),
            _ => (name.as_ref(), ""),
        };
        out.push_str("# HELP ");
        out.push_str(family);
        out.push(' ');
        escape_help(&f.help, &mut out, format.open_metrics);
        out.push('\n');
        let _ = writeln!(out, "# TYPE {family} {}", f.kind.as_str());
        let mut series: Vec<_> = f.series.iter().collect();
        series.sort_by(|a, b| a.0.cmp(b.0));
        for (labels, e) in series {
            let s = Sample {
                name: family,
                labels,
                time_ns: Some(e.time_ns).filter(|_| format.timestamps),
                open_metrics: format.open_metrics,
            };
            match (&e.value, f.kind) {
                (Value::Number(v), _) => s.line(&mut out, sample_suffix, None, *v),
                (
                    Value::Histogram {
                        bounds,
                        counts,
                        sum,
                        count,
                    },
                    Kind::Histogram,
                ) => {
                    let mut cumulative = 0u64;
                    for (b, c) in bounds.iter().zip(counts) {
                        cumulative += c;
                        let le = go_float(*b);
                        s.line(&mut out, "_bucket", Some(("le", &le)), cumulative as f64);
                    }
                    s.line(&mut out, "_bucket", Some(("le", "+Inf")), *count as f64);
                    s.line(&mut out, "_sum", None, *sum);
                    s.line(&mut out, "_count", None, *count as f64);
                }
                (
                    Value::Summary {
                        quantiles,
                        sum,
                        count,
                    },
                    Kind::Summary,
                ) => {
                    for (q, v) in quantiles {
                        let q = go_float(*q);
                        s.line(&mut out, "", Some(("quantile", &q)), *v);
                    }
                    s.line(&mut out, "_sum", None, *sum);
                    s.line(&mut out, "_count", None, *count as f64);
                }
                _ => {}
            }
        }
    }
    if format.open_metrics {
        out.push_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests;
