//! What most policies ask of a trace, gathered in one walk over its spans and shared by every policy of one
//! decision: the time span, which statuses occur, and the total GenAI usage. Policies that look for configured
//! keys or values (attributes, span types, finish reasons) walk the spans themselves.

use std::collections::HashMap;

use spanpipe_core::wire::WireError;

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

/// One walk's findings.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Facts {
    /// Earliest start and latest end (`start > end` when the trace has no span).
    pub start: u64,
    pub end: u64,
    /// Whether some span has status unset (0), ok (1), error (2); other codes count as unset.
    pub statuses: [bool; 3],
    pub usage: TraceUsage,
}

impl Facts {
    /// Earliest start to latest end, in milliseconds (0 without spans).
    pub fn duration_ms(&self) -> i64 {
        (self.end.saturating_sub(self.start) / 1_000_000) as i64
    }

    /// Walks the trace once.
    pub fn gather(t: &TraceData<'_>) -> Result<Facts, WireError> {
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
        let mut f = Facts {
            start: u64::MAX,
            ..Facts::default()
        };
        let mut nodes: HashMap<u64, Node, foldhash::fast::RandomState> = HashMap::default();
        t.for_each_span_with(
            |u: &mut SpanUsage, k, v| {
                u.offer(k, v);
            },
            |u, s| {
                let v = &s.view;
                f.start = f.start.min(v.start_time_unix_nano);
                f.end = f.end.max(v.end_time_unix_nano);
                f.statuses[if v.status_code <= 2 {
                    v.status_code as usize
                } else {
                    0
                }] = true;
                let usage = u.finish();
                let parent = if v.parent_span_id.is_empty() {
                    0
                } else {
                    id(v.parent_span_id)
                };
                // A span id seen twice (a retried export) counts once.
                nodes.insert(id(v.span_id), Node { parent, usage });
            },
        )?;
        // MLflow's rule against double counting (`_aggregate_from_nodes` in mlflow/tracing/utils/__init__.py): a
        // span's tokens count only when no ancestor in the trace carries tokens (frameworks rolling children's
        // usage up onto a parent are counted once); the same, separately, for cost. A span whose parent is not
        // in the trace is a root.
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
            let u = &mut f.usage;
            if node.usage.convention.is_some() && !tokens_above {
                u.input_tokens = u.input_tokens.saturating_add(node.usage.input_tokens);
                u.output_tokens = u.output_tokens.saturating_add(node.usage.output_tokens);
                u.total_tokens = u.total_tokens.saturating_add(node.usage.total_tokens);
            }
            if let Some(c) = node.usage.cost
                && !cost_above
            {
                u.cost += c;
            }
        }
        Ok(f)
    }
}
