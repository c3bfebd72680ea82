//! The Prometheus text exposition format (0.0.4), as Go's `expfmt` writes it: families sorted by name, each
//! with `# HELP` and `# TYPE`; series sorted by labels; histograms as cumulative `_bucket{le=...}` lines ending
//! with `+Inf`, then `_sum` and `_count`; floats in Go's `%g` form. No timestamps (the Go exporter's default).

use std::fmt::Write;
use std::sync::Arc;

use crate::names::{Kind, go_float};
use crate::store::Store;
use crate::translate::Value;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn escape_help(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
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
pub fn render(store: &Store) -> String {
    let mut out = String::with_capacity(estimate(store));
    for (name, f) in &store.families {
        if f.series.is_empty() {
            continue;
        }
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        escape_help(&f.help, &mut out);
        out.push('\n');
        let _ = writeln!(out, "# TYPE {name} {}", f.kind.as_str());
        let mut series: Vec<_> = f.series.iter().collect();
        series.sort_by(|a, b| a.0.cmp(b.0));
        for (labels, e) in series {
            match (&e.value, f.kind) {
                (Value::Number(v), _) => line(&mut out, name, "", labels, None, *v),
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
                        line(
                            &mut out,
                            name,
                            "_bucket",
                            labels,
                            Some(("le", &le)),
                            cumulative as f64,
                        );
                    }
                    line(
                        &mut out,
                        name,
                        "_bucket",
                        labels,
                        Some(("le", "+Inf")),
                        *count as f64,
                    );
                    line(&mut out, name, "_sum", labels, None, *sum);
                    line(&mut out, name, "_count", labels, None, *count as f64);
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
                        line(&mut out, name, "", labels, Some(("quantile", &q)), *v);
                    }
                    line(&mut out, name, "_sum", labels, None, *sum);
                    line(&mut out, name, "_count", labels, None, *count as f64);
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
