//! `filter` for metrics and logs: the OTel Collector's legacy match properties, applied for real.
//!
//! - `metrics.include` / `metrics.exclude` with `match_type` (`strict` | `regexp`) and `metric_names`: a metric is
//!   kept when it matches `include` (if set) and does not match `exclude` (if set).
//! - `logs.include` / `logs.exclude` with `match_type`, `severity_texts`, `bodies` (string bodies) and
//!   `severity_number` (`min`, `match_undefined`): every property given must match.
//!
//! The OTTL forms (`metrics.metric`, `metrics.datapoint`, `logs.log_record`) are refused with a located error;
//! other legacy properties (attributes, expressions) are unknown keys. Requests are decoded, filtered and
//! re-encoded (metrics and logs are fully decoded at the door anyway).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
use prost::Message;
use regex::Regex;
use serde::Deserialize;

use crate::config::{Invalid, Key, regex};
use crate::matching::MatchType;

/// `metrics.include` / `metrics.exclude`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricMatch {
    pub match_type: MatchType,
    pub metric_names: Vec<String>,
}

/// `metrics:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricConditions {
    pub include: Option<MetricMatch>,
    pub exclude: Option<MetricMatch>,
    /// OTTL: not supported (rejected when non-empty).
    pub metric: Vec<String>,
    /// OTTL: not supported (rejected when non-empty).
    pub datapoint: Vec<String>,
}

/// A severity number or name (`INFO`, `WARN2`, ...), as `severity_number.min` takes it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Severity {
    Number(i32),
    Name(String),
}

/// `severity_number`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeverityMatch {
    pub min: Severity,
    #[serde(default)]
    pub match_undefined: bool,
}

/// `logs.include` / `logs.exclude`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogMatch {
    pub match_type: MatchType,
    pub severity_texts: Vec<String>,
    #[serde(alias = "log_bodies")]
    pub bodies: Vec<String>,
    pub severity_number: Option<SeverityMatch>,
}

/// `logs:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConditions {
    pub include: Option<LogMatch>,
    pub exclude: Option<LogMatch>,
    /// OTTL: not supported (rejected when non-empty).
    pub log_record: Vec<String>,
}

#[derive(Debug)]
enum Strs {
    Strict(Vec<String>),
    Regexp(Vec<Regex>),
}

impl Strs {
    fn new(mt: MatchType, items: &[String], keys: &[Key]) -> Result<Self, Invalid> {
        Ok(match mt {
            MatchType::Regexp => Strs::Regexp(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let mut k = keys.to_vec();
                        k.push(Key::Index(i));
                        regex(p, k)
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => Strs::Strict(items.to_vec()),
        })
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            Strs::Strict(v) => v.iter().any(|i| i == s),
            Strs::Regexp(v) => v.iter().any(|r| r.is_match(s)),
        }
    }
}

fn match_type(mt: MatchType, at: &[Key]) -> Result<MatchType, Invalid> {
    if mt == MatchType::Unset {
        let mut k = at.to_vec();
        k.push(Key::Name("match_type"));
        return Err(Invalid::new(k, "is required: strict or regexp"));
    }
    Ok(mt)
}

/// Which metrics are kept.
#[derive(Debug, Default)]
pub struct MetricFilter {
    include: Option<Strs>,
    exclude: Option<Strs>,
}

impl MetricFilter {
    pub fn new(c: &MetricConditions) -> Result<Option<Self>, Invalid> {
        for (key, list) in [("metric", &c.metric), ("datapoint", &c.datapoint)] {
            if !list.is_empty() {
                return Err(Invalid::new(
                    vec![Key::Name("metrics"), Key::Name(key)],
                    "OTTL metric conditions are not supported by spanpipe; use metrics.include / metrics.exclude \
                     with metric_names",
                ));
            }
        }
        let side = |m: &Option<MetricMatch>, name: &'static str| -> Result<Option<Strs>, Invalid> {
            let Some(m) = m else { return Ok(None) };
            let at = [Key::Name("metrics"), Key::Name(name)];
            let mt = match_type(m.match_type, &at)?;
            let keys = [
                Key::Name("metrics"),
                Key::Name(name),
                Key::Name("metric_names"),
            ];
            Strs::new(mt, &m.metric_names, &keys).map(Some)
        };
        let f = MetricFilter {
            include: side(&c.include, "include")?,
            exclude: side(&c.exclude, "exclude")?,
        };
        Ok((f.include.is_some() || f.exclude.is_some()).then_some(f))
    }

    fn keeps(&self, m: &Metric) -> bool {
        self.include.as_ref().is_none_or(|s| s.matches(&m.name))
            && !self.exclude.as_ref().is_some_and(|s| s.matches(&m.name))
    }

    /// `payload` without the dropped metrics (`None`: nothing dropped), and the data points dropped.
    pub fn apply(&self, payload: &[u8]) -> Result<(Option<Vec<u8>>, usize), prost::DecodeError> {
        let mut req = ExportMetricsServiceRequest::decode(payload)?;
        let mut dropped = 0;
        for rm in &mut req.resource_metrics {
            for sm in &mut rm.scope_metrics {
                sm.metrics.retain(|m| {
                    let keep = self.keeps(m);
                    if !keep {
                        dropped += points(m);
                    }
                    keep
                });
            }
            rm.scope_metrics.retain(|sm| !sm.metrics.is_empty());
        }
        req.resource_metrics
            .retain(|rm| !rm.scope_metrics.is_empty());
        if dropped == 0 {
            return Ok((None, 0));
        }
        Ok((Some(req.encode_to_vec()), dropped))
    }
}

fn points(m: &Metric) -> usize {
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

/// `TRACE`..`FATAL4` → 1..24.
fn severity_number(s: &Severity) -> Option<i32> {
    match s {
        Severity::Number(n) => Some(*n),
        Severity::Name(name) => {
            let upper = name.trim().to_ascii_uppercase();
            let base = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
            let (i, rest) = base
                .iter()
                .enumerate()
                .find_map(|(i, b)| upper.strip_prefix(b).map(|r| (i as i32, r)))?;
            let step = if rest.is_empty() {
                1
            } else {
                rest.parse::<i32>().ok()?
            };
            (1..=4).contains(&step).then_some(i * 4 + step)
        }
    }
}

#[derive(Debug)]
struct LogProps {
    severity_texts: Option<Strs>,
    bodies: Option<Strs>,
    min_severity: Option<(i32, bool)>,
}

impl LogProps {
    fn new(m: &LogMatch, name: &'static str) -> Result<Self, Invalid> {
        let at = [Key::Name("logs"), Key::Name(name)];
        let needs_type = !m.severity_texts.is_empty() || !m.bodies.is_empty();
        let mt = if needs_type {
            match_type(m.match_type, &at)?
        } else {
            m.match_type
        };
        let list = |items: &Vec<String>, key: &'static str| -> Result<Option<Strs>, Invalid> {
            if items.is_empty() {
                return Ok(None);
            }
            Strs::new(
                mt,
                items,
                &[Key::Name("logs"), Key::Name(name), Key::Name(key)],
            )
            .map(Some)
        };
        let min_severity = match &m.severity_number {
            None => None,
            Some(s) => Some((
                severity_number(&s.min).ok_or_else(|| {
                    Invalid::new(
                        vec![
                            Key::Name("logs"),
                            Key::Name(name),
                            Key::Name("severity_number"),
                            Key::Name("min"),
                        ],
                        "expected a severity: 1-24 or TRACE, DEBUG, INFO, WARN, ERROR, FATAL (optionally 2-4)",
                    )
                })?,
                s.match_undefined,
            )),
        };
        Ok(LogProps {
            severity_texts: list(&m.severity_texts, "severity_texts")?,
            bodies: list(&m.bodies, "bodies")?,
            min_severity,
        })
    }

    fn matches(&self, r: &LogRecord) -> bool {
        let text_ok = self
            .severity_texts
            .as_ref()
            .is_none_or(|s| s.matches(&r.severity_text));
        let body_ok = self.bodies.as_ref().is_none_or(|s| {
            match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                Some(any_value::Value::StringValue(text)) => s.matches(text),
                _ => false,
            }
        });
        let severity_ok = self.min_severity.is_none_or(|(min, undefined)| {
            if r.severity_number == 0 {
                undefined
            } else {
                r.severity_number >= min
            }
        });
        text_ok && body_ok && severity_ok
    }
}

/// Which log records are kept.
#[derive(Debug)]
pub struct LogFilter {
    include: Option<LogProps>,
    exclude: Option<LogProps>,
}

impl LogFilter {
    pub fn new(c: &LogConditions) -> Result<Option<Self>, Invalid> {
        if !c.log_record.is_empty() {
            return Err(Invalid::new(
                vec![Key::Name("logs"), Key::Name("log_record")],
                "OTTL log conditions are not supported by spanpipe; use logs.include / logs.exclude",
            ));
        }
        let f = LogFilter {
            include: c
                .include
                .as_ref()
                .map(|m| LogProps::new(m, "include"))
                .transpose()?,
            exclude: c
                .exclude
                .as_ref()
                .map(|m| LogProps::new(m, "exclude"))
                .transpose()?,
        };
        Ok((f.include.is_some() || f.exclude.is_some()).then_some(f))
    }

    fn keeps(&self, r: &LogRecord) -> bool {
        self.include.as_ref().is_none_or(|p| p.matches(r))
            && !self.exclude.as_ref().is_some_and(|p| p.matches(r))
    }

    /// `payload` without the dropped records (`None`: nothing dropped), and how many were dropped.
    pub fn apply(&self, payload: &[u8]) -> Result<(Option<Vec<u8>>, usize), prost::DecodeError> {
        let mut req = ExportLogsServiceRequest::decode(payload)?;
        let mut dropped = 0;
        for rl in &mut req.resource_logs {
            for sl in &mut rl.scope_logs {
                let before = sl.log_records.len();
                sl.log_records.retain(|r| self.keeps(r));
                dropped += before - sl.log_records.len();
            }
            rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
        }
        req.resource_logs.retain(|rl| !rl.scope_logs.is_empty());
        if dropped == 0 {
            return Ok((None, 0));
        }
        Ok((Some(req.encode_to_vec()), dropped))
    }
}

#[cfg(test)]
#[path = "signals_tests.rs"]
mod tests;
