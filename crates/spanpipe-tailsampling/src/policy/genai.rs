//! spanpipe's GenAI policies: a trace's total tokens or cost (`genai_usage`), an MLflow span type in the trace
//! (`span_type`), and a model stopping for a given reason (`finish_reason`).

use std::collections::HashMap;

use spanpipe_core::wire::{AnyValueRef, RawValue, WireError, for_each_item};
use spanpipe_spanmetrics::span_type::TypeHints;

use super::leaf::StatusCodes;
use crate::config::{FinishReasonConfig, GenaiUsageConfig, SpanTypeConfig};
use crate::trace::TraceData;
use crate::usage::{SpanUsage, Usage};

/// A trace's total usage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TraceUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cost: f64,
}

/// The trace's total tokens and cost with MLflow's rule against double counting (`_aggregate_from_nodes` in
/// `mlflow/tracing/utils/__init__.py`): a span's tokens count only when no ancestor in the trace carries tokens
/// (frameworks that roll children's usage up onto a parent are counted once), and the same, separately, for
/// cost. A span whose parent is not in the trace is a root.
pub fn trace_usage(t: &TraceData<'_>) -> Result<TraceUsage, WireError> {
    struct Node {
        parent: u64,
        usage: Usage,
    }
    let id = |b: &[u8]| -> u64 {
        let mut x = [0u8; 8];
        let n = b.len().min(8);
        x[..n].copy_from_slice(&b[..n]);
        u64::from_be_bytes(x)
    };
    let mut nodes: HashMap<u64, Node, foldhash::fast::RandomState> = HashMap::default();
    t.for_each_span_with(
        |u: &mut SpanUsage, k, v| {
            u.offer(k, v);
        },
        |u, s| {
            let usage = u.finish();
            let parent = if s.view.parent_span_id.is_empty() {
                0
            } else {
                id(s.view.parent_span_id)
            };
            // A span id seen twice (a retried export) counts once.
            nodes.insert(id(s.view.span_id), Node { parent, usage });
        },
    )?;
    let mut total = TraceUsage::default();
    for node in nodes.values() {
        if !node.usage.is_present() {
            continue;
        }
        // Walk up at most as many steps as there are spans (a cycle in hostile input ends there).
        let (mut tokens_above, mut cost_above) = (false, false);
        let mut at = node.parent;
        for _ in 0..nodes.len() {
            let Some(p) = nodes.get(&at).filter(|_| at != 0) else {
                break;
            };
            tokens_above |= p.usage.convention.is_some();
            cost_above |= p.usage.cost.is_some();
            if tokens_above && cost_above {
                break;
            }
            at = p.parent;
        }
        if node.usage.convention.is_some() && !tokens_above {
            total.input_tokens = total.input_tokens.saturating_add(node.usage.input_tokens);
            total.output_tokens = total.output_tokens.saturating_add(node.usage.output_tokens);
            total.total_tokens = total.total_tokens.saturating_add(node.usage.total_tokens);
        }
        if let Some(c) = node.usage.cost
            && !cost_above
        {
            total.cost += c;
        }
    }
    Ok(total)
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
