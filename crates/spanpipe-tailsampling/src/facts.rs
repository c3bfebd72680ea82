//! What most policies ask of a trace, gathered in one walk over its spans and shared by every policy of one
//! decision: the time span, which statuses occur, and the total GenAI usage. Policies that look for configured
//! keys or values (attributes, span types, finish reasons) walk the spans themselves.

use spanpipe_core::wire::WireError;
use spanpipe_genai::rollup::{Node, SpanHints, trace_total};

use crate::trace::TraceData;

/// A trace's total usage: what `genai_metrics` would count for it (see [`spanpipe_genai::rollup`]).
pub use spanpipe_genai::rollup::TraceTotal as TraceUsage;

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
        let mut f = Facts {
            start: u64::MAX,
            ..Facts::default()
        };
        let mut nodes: Vec<Node> = Vec::with_capacity(t.span_count);
        t.for_each_span_with(
            |h: &mut SpanHints<'_>, k, v| {
                h.offer(k, v);
            },
            |h, s| {
                let v = &s.view;
                f.start = f.start.min(v.start_time_unix_nano);
                f.end = f.end.max(v.end_time_unix_nano);
                f.statuses[if v.status_code <= 2 {
                    v.status_code as usize
                } else {
                    0
                }] = true;
                // Ids as `genai_metrics` reads them (a malformed id reads as zeros).
                let span_id = <[u8; 8]>::try_from(v.span_id).unwrap_or_default();
                let parent_id = (!v.parent_span_id.is_empty())
                    .then(|| <[u8; 8]>::try_from(v.parent_span_id).unwrap_or_default());
                nodes.push(h.node(span_id, parent_id));
            },
        )?;
        // Each span's tokens and cost read, and summed by MLflow's rule against double counting, exactly as
        // `genai_metrics` does (docs/genai-token-usage.md).
        f.usage = trace_total(&nodes);
        Ok(f)
    }
}
