//! `filter` settings: the OTel Collector's legacy `spans` include/exclude or OTTL-subset `traces.span`
//! conditions, plus spanpipe's `drop_whole_trace`.

use serde::Deserialize;

use super::ottl::{self, Expr};
use super::signals::{LogConditions, LogFilter, MetricConditions, MetricFilter};
use crate::config::{Invalid, Key};
use crate::matching::{MatchConfig, SpanFilter};

/// OTTL's `error_mode`. The supported conditions cannot fail at run time, so all three behave the same; the key
/// is accepted so Collector configs load unchanged.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorMode {
    #[default]
    Ignore,
    Silent,
    Propagate,
}

/// `traces:` conditions by OTTL context.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConditions {
    /// Span conditions, ORed: a span matching any is dropped.
    pub span: Vec<String>,
    /// Not supported yet (rejected when non-empty).
    pub spanevent: Vec<String>,
    /// Not supported yet (rejected when non-empty).
    pub resource: Vec<String>,
}

/// `filter` settings as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    pub error_mode: ErrorMode,
    /// Legacy match properties: `include` keeps only matching spans, `exclude` drops matching spans.
    pub spans: MatchConfig,
    pub traces: TraceConditions,
    /// Metrics by name (legacy include/exclude).
    pub metrics: MetricConditions,
    /// Log records by severity and body (legacy include/exclude).
    pub logs: LogConditions,
    /// spanpipe extension: when a span is dropped, drop every span of its trace in the same batch.
    pub drop_whole_trace: bool,
}

/// How spans are selected for dropping.
#[derive(Debug)]
pub enum Rule {
    /// Nothing configured: every span is kept.
    None,
    /// Drop spans the include/exclude filter does not let through.
    Legacy(Box<SpanFilter>),
    /// Drop spans matching any condition.
    Conditions(Vec<Expr>),
}

/// What a `filter` processor runs with.
#[derive(Debug)]
pub struct FilterSettings {
    pub rule: Rule,
    pub drop_whole_trace: bool,
    pub metrics: Option<MetricFilter>,
    pub logs: Option<LogFilter>,
}

impl FilterConfig {
    pub fn validate(&self) -> Result<FilterSettings, Invalid> {
        let not_yet = |key: &'static str| {
            Invalid::new(
                vec![Key::Name("traces"), Key::Name(key)],
                "is not supported by spanpipe yet; use traces.span (resource.attributes[\"k\"] reads the resource)",
            )
        };
        if !self.traces.spanevent.is_empty() {
            return Err(not_yet("spanevent"));
        }
        if !self.traces.resource.is_empty() {
            return Err(not_yet("resource"));
        }
        let legacy = SpanFilter::new(&self.spans).map_err(|e| e.under(&[Key::Name("spans")]))?;
        let rule = match (legacy.is_empty(), self.traces.span.is_empty()) {
            (false, false) => {
                return Err(Invalid::new(
                    vec![Key::Name("traces"), Key::Name("span")],
                    "cannot be combined with spans.include / spans.exclude: use one or the other",
                ));
            }
            (false, true) => Rule::Legacy(Box::new(legacy)),
            (true, false) => Rule::Conditions(
                self.traces
                    .span
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        ottl::parse(c).map_err(|e| {
                            Invalid::new(
                                vec![Key::Name("traces"), Key::Name("span"), Key::Index(i)],
                                format!("column {}: {} in condition `{c}`", e.col, e.message),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (true, true) => Rule::None,
        };
        Ok(FilterSettings {
            rule,
            drop_whole_trace: self.drop_whole_trace,
            metrics: MetricFilter::new(&self.metrics)?,
            logs: LogFilter::new(&self.logs)?,
        })
    }
}
