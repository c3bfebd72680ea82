//! Pre-encoded requests with the byte offsets of every span's ids, so a request is a memcpy plus a few 8- and
//! 16-byte writes instead of a prost encode (~1.5 µs a span): the generator must stay cheap because it shares
//! the CPU with the collector it measures.

use anyhow::{Context, bail};
use prost::Message;
use spanpipe_core::wire::scan_traces;
use std::collections::HashMap;

use crate::ids::{span_id, trace_id};

/// Where one span's ids sit in the encoded template, and which spans of the request its trace id and parent
/// refer to (as indices in the request, so they map to global sequence numbers when patched).
#[derive(Clone, Copy, Debug)]
struct Slots {
    trace_at: usize,
    span_at: usize,
    /// Offset and span index of the parent id, absent for a root.
    parent: Option<(usize, u64)>,
    /// Index of the first span of this trace in the request: its sequence names the trace.
    root: u64,
}

/// One encoded `ExportTraceServiceRequest` ready to be stamped with fresh ids.
#[derive(Debug)]
pub struct Template {
    bytes: Vec<u8>,
    slots: Vec<Slots>,
}

impl Template {
    /// `spans` agent spans in traces of `spans_per_trace` (the last trace cut short if needed); `variant` varies
    /// the content between templates.
    pub fn build(variant: u64, spans: u64, spans_per_trace: u64) -> anyhow::Result<Template> {
        let traces = spans.div_ceil(spans_per_trace);
        let mut req = spanpipe_benches::agent_request(variant, traces, spans_per_trace);
        let n = usize::try_from(spans).context("spans per request")?;
        for rs in &mut req.resource_spans {
            for ss in &mut rs.scope_spans {
                ss.spans.truncate(n);
            }
        }
        Template::from_encoded(req.encode_to_vec())
    }

    /// Finds the id offsets of every span of an encoded request.
    fn from_encoded(bytes: Vec<u8>) -> anyhow::Result<Template> {
        let base = bytes.as_ptr() as usize;
        let offset = |s: &[u8]| (s.as_ptr() as usize).wrapping_sub(base);
        let mut raw = Vec::new();
        scan_traces(&bytes, |_, v| {
            raw.push((
                offset(v.trace_id),
                offset(v.span_id),
                offset(v.parent_span_id),
                v.parent_span_id.len(),
            ));
        })
        .map_err(|e| anyhow::anyhow!("template does not scan: {e}"))?;
        let id_at = |at: usize, len: usize| bytes.get(at..at + len).map(<[u8]>::to_vec);
        let mut span_index: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut trace_root: HashMap<Vec<u8>, u64> = HashMap::new();
        for (i, &(t, s, _, _)) in raw.iter().enumerate() {
            let (Some(tid), Some(sid)) = (id_at(t, 16), id_at(s, 8)) else {
                bail!("span {i}: ids out of bounds")
            };
            trace_root.entry(tid).or_insert(i as u64);
            if span_index.insert(sid, i as u64).is_some() {
                bail!("template span {i}: duplicate span id");
            }
        }
        let mut slots = Vec::with_capacity(raw.len());
        for (i, &(t, s, p, plen)) in raw.iter().enumerate() {
            let root = id_at(t, 16)
                .and_then(|tid| trace_root.get(&tid).copied())
                .unwrap_or(i as u64);
            let parent = match plen {
                0 => None,
                _ => {
                    let pid = id_at(p, plen).context("parent id out of bounds")?;
                    // A parent outside the request (cut-off trace) is re-pointed at the trace's root.
                    Some((p, span_index.get(&pid).copied().unwrap_or(root)))
                }
            };
            slots.push(Slots {
                trace_at: t,
                span_at: s,
                parent,
                root,
            });
        }
        Ok(Template { bytes, slots })
    }

    /// Spans in the request.
    pub fn spans(&self) -> u64 {
        self.slots.len() as u64
    }

    /// A copy of the template whose span `i` becomes global span `first_seq + i`.
    pub fn render(&self, seed: u16, first_seq: u64) -> Vec<u8> {
        let mut out = self.bytes.clone();
        for (i, s) in self.slots.iter().enumerate() {
            let seq = first_seq + i as u64;
            write(&mut out, s.span_at, &span_id(seed, seq).to_be_bytes());
            write(&mut out, s.trace_at, &trace_id(seed, first_seq + s.root));
            if let Some((at, parent)) = s.parent {
                write(
                    &mut out,
                    at,
                    &span_id(seed, first_seq + parent).to_be_bytes(),
                );
            }
        }
        out
    }
}

/// Offsets come from scanning this very buffer, so they are in bounds; `get_mut` keeps it panic-free anyway.
fn write(out: &mut [u8], at: usize, id: &[u8]) {
    if let Some(dst) = out.get_mut(at..at + id.len()) {
        dst.copy_from_slice(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn rendered_requests_have_fresh_consistent_ids() {
        let t = Template::build(3, 25, 10).expect("template");
        assert_eq!(t.spans(), 25);
        let mut seen = HashSet::new();
        for first in [0u64, 25, 50] {
            let bytes = t.render(9, first);
            let mut roots = HashMap::new();
            let summary = scan_traces(&bytes, |_, v| {
                let id = u64::from_be_bytes(v.span_id.try_into().expect("8 bytes"));
                assert!(seen.insert(id), "duplicate id {id:x}");
                assert_eq!(id >> 48, 9);
                if v.parent_span_id.is_empty() {
                    roots.insert(v.trace_id.to_vec(), id);
                } else {
                    assert_eq!(
                        roots.get(v.trace_id),
                        Some(&u64::from_be_bytes(v.parent_span_id.try_into().expect("8")))
                    );
                }
            })
            .expect("scan");
            assert_eq!(summary.spans, 25);
            assert_eq!(roots.len(), 3, "traces of 10, 10 and 5 spans");
        }
        assert_eq!(seen.len(), 75);
    }
}
