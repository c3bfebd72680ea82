//! A trace's total token usage and cost, read and rolled up exactly as `genai_metrics` does: each span's usage by
//! [`crate::usage`] and carried cost by [`crate::extract::CostHints`], summed by MLflow's rule against double
//! counting ([`crate::tree::ancestry`]: a span counts only when MLflow reaches it from a root and no ancestor
//! carries usage; cost the same, separately). For components that see a whole trace at once (`tail_sampling`'s
//! `genai_usage` policy), so their totals agree with `genai_metrics`' counts. See `docs/genai-token-usage.md`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use spanpipe_core::wire::RawValue;

use crate::extract::CostHints;
use crate::tree::ancestry;
use crate::usage::{Usage, UsageHints};

/// The usage and cost attributes of one span, gathered in the one pass over its attributes.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanHints<'a> {
    usage: UsageHints<'a>,
    cost: CostHints<'a>,
}

impl<'a> SpanHints<'a> {
    /// Looks at one attribute; false when it is neither a token count nor a cost.
    #[inline]
    pub fn offer(&mut self, key: &[u8], v: RawValue<'a>) -> bool {
        self.usage.offer(key, v) || self.cost.offer(key, v)
    }

    /// The span as a node of its trace's tree. `parent_id`: `None` for a root.
    pub fn node(&self, span_id: [u8; 8], parent_id: Option<[u8; 8]>) -> Node {
        Node {
            span_id,
            parent_id,
            usage: self.usage.resolve(),
            cost: self.cost.carried().map(|c| c.amount),
        }
    }
}

/// One span of a trace: its ids and what it carries (MLflow's `SpanAggregationNode`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Node {
    pub span_id: [u8; 8],
    /// `None` for a root span.
    pub parent_id: Option<[u8; 8]>,
    /// `None`: no token usage (MLflow's "no data").
    pub usage: Option<Usage>,
    /// The cost the span carries, in whatever currency it is in.
    pub cost: Option<f64>,
}

/// A trace's totals: sums over the spans that count (MLflow's `input_tokens`, `output_tokens`, `total_tokens`
/// of `mlflow.trace.tokenUsage`, and `total_cost`). A count a span does not report adds 0, as in MLflow.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TraceTotal {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cost: f64,
}

/// The totals of one trace's spans, in linear time. A span whose parent is not among `nodes` is a root; spans on
/// or below a parent-id cycle are never reached and never count; a span id given twice (a retried export)
/// counts once, as its later copy (MLflow stores one row per span id).
pub fn trace_total(nodes: &[Node]) -> TraceTotal {
    let mut index: HashMap<[u8; 8], usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(nodes.len(), Default::default());
    let mut spans: Vec<&Node> = Vec::with_capacity(nodes.len());
    for n in nodes {
        match index.entry(n.span_id) {
            Entry::Occupied(e) => spans[*e.get()] = n,
            Entry::Vacant(e) => {
                e.insert(spans.len());
                spans.push(n);
            }
        }
    }
    let parents: Vec<Option<usize>> = spans
        .iter()
        .map(|n| n.parent_id.and_then(|p| index.get(&p).copied()))
        .collect();
    let has_usage: Vec<bool> = spans
        .iter()
        .map(|n| n.usage.is_some_and(|u| u.is_present()))
        .collect();
    let has_cost: Vec<bool> = spans.iter().map(|n| n.cost.is_some()).collect();
    let anc = ancestry(&parents, &has_usage, &has_cost);
    let mut t = TraceTotal::default();
    for (i, n) in spans.iter().enumerate() {
        if !anc.reachable[i] {
            continue;
        }
        if let Some(u) = n.usage
            && has_usage[i]
            && !anc.usage[i]
        {
            t.input_tokens = t.input_tokens.saturating_add(u.input.unwrap_or(0));
            t.output_tokens = t.output_tokens.saturating_add(u.output.unwrap_or(0));
            t.total_tokens = t.total_tokens.saturating_add(u.total.unwrap_or(0));
        }
        if let Some(c) = n.cost
            && !anc.cost[i]
        {
            t.cost += c;
        }
    }
    t
}

#[cfg(test)]
mod tests;
