//! spanpipe's GenAI policies: a trace's total tokens or cost (`genai_usage`), an MLflow span type in the trace
//! (`span_type`), and a model stopping for a given reason (`finish_reason`).

use spanpipe_core::wire::{AnyValueRef, RawValue, WireError, for_each_item};
use spanpipe_spanmetrics::span_type::TypeHints;

use super::leaf::StatusCodes;
use crate::config::{FinishReasonConfig, GenaiUsageConfig, SpanTypeConfig};
use crate::facts::TraceUsage;
use crate::trace::TraceData;

/// The trace's total tokens and cost (see [`crate::facts::Facts::gather`] for the rule against double counting).
pub fn trace_usage(t: &TraceData<'_>) -> Result<TraceUsage, WireError> {
    Ok(t.facts()?.usage)
}

/// `genai_usage`: sampled when the trace's total tokens or its total cost reaches a threshold.
#[derive(Debug)]
pub struct GenaiUsage {
    min_tokens: Option<u64>,
    min_cost: Option<f64>,
}

impl GenaiUsage {
    pub fn new(c: &GenaiUsageConfig) -> Self {
        GenaiUsage {
            min_tokens: c.min_total_tokens,
            min_cost: c.min_total_cost,
        }
    }

    pub fn matches(&self, t: &TraceData<'_>) -> Result<bool, WireError> {
        let u = trace_usage(t)?;
        Ok(self.min_tokens.is_some_and(|m| u.total_tokens >= m)
            || self.min_cost.is_some_and(|m| u.cost >= m))
    }
}

/// `span_type`: some span's MLflow span type (as `mlflow_spanmetrics` derives it: `mlflow.spanType`, else
/// inferred from other conventions like MLflow's server) is listed, with one of the listed statuses if any.
#[derive(Debug)]
pub struct SpanType {
    types: Vec<String>,
    statuses: StatusCodes,
}

impl SpanType {
    pub fn new(c: &SpanTypeConfig) -> Self {
        SpanType {
            types: c.span_types.clone(),
            statuses: StatusCodes::new(&c.status_codes),
        }
    }

    pub fn matches(&self, t: &TraceData<'_>) -> Result<bool, WireError> {
        // No span has a wanted status (the shared facts know): no need to read span types.
        if !self.statuses.is_empty() && !self.statuses.any_of(&t.facts()?.statuses) {
            return Ok(false);
        }
        let mut found = false;
        t.for_each_span_with(
            |h: &mut TypeHints<'_>, k, v| {
                h.offer(k, v);
            },
            |h, s| {
                if found
                    || !(self.statuses.is_empty() || self.statuses.contains(s.view.status_code))
                {
                    return;
                }
                let ty = h.resolve();
                found = self.types.iter().any(|w| *w == *ty);
            },
        )?;
        Ok(found)
    }
}

/// `finish_reason`: some span's `gen_ai.response.finish_reasons` (a string array, a single string, or a
/// JSON-encoded array) holds a listed reason.
#[derive(Debug)]
pub struct FinishReason {
    reasons: Vec<String>,
}

/// The OTel GenAI attribute holding why the model stopped.
pub const FINISH_REASONS: &[u8] = b"gen_ai.response.finish_reasons";

impl FinishReason {
    pub fn new(c: &FinishReasonConfig) -> Self {
        FinishReason {
            reasons: c.finish_reasons.clone(),
        }
    }

    fn wanted(&self, s: &str) -> bool {
        let s = s.trim().trim_matches('"');
        self.reasons.iter().any(|r| r == s)
    }

    fn value_matches(&self, v: RawValue<'_>) -> bool {
        match v.get() {
            AnyValueRef::Str(s) if s.trim_start().starts_with('[') => {
                serde_json::from_str::<Vec<String>>(s)
                    .is_ok_and(|list| list.iter().any(|x| self.wanted(x)))
            }
            AnyValueRef::Str(s) => self.wanted(s),
            AnyValueRef::Array(a) => {
                let mut hit = false;
                let _ = for_each_item(a, |item| {
                    if let AnyValueRef::Str(s) = item.get() {
                        hit |= self.wanted(s);
                    }
                    Ok(())
                });
                hit
            }
            _ => false,
        }
    }

    pub fn matches(&self, t: &TraceData<'_>) -> Result<bool, WireError> {
        let mut found = false;
        t.for_each_span_with(
            |hit: &mut bool, k, v| {
                if !*hit && k == FINISH_REASONS {
                    *hit = self.value_matches(v);
                }
            },
            |hit, _| found |= hit,
        )?;
        Ok(found)
    }
}
