//! Cutting a batch into MLflow requests on the encoded bytes: spans are grouped by experiment (per resource) and
//! by trace, packed into requests of at most `max_spans` spans / `max_bytes` bytes, and each request is rebuilt by
//! copying raw `resource`, `scope` and `span` field bytes (no decode, no re-encode of spans).
//!
//! Why by trace: MLflow's ingest cost is per trace (1,000 spans of one trace take ~0.85 s, 1,000 single-span
//! traces ~5 s), and a trace's state only settles when its root arrives, so a trace is kept in one request
//! whenever it fits; only a trace larger than a whole request is cut (at span boundaries).

use std::collections::{BTreeMap, HashMap};

use spanpipe_core::WireParts;
use spanpipe_core::wire::{Reader, WireError, each_raw_field, put_bytes_field};

/// Encoded overhead of one wrapper field (tag + length varint) we budget for: a tag byte and up to 5 length bytes.
const WRAPPER: usize = 6;

/// One `ResourceSpans` of the batch.
#[derive(Debug)]
pub struct ResourcePart<'a> {
    /// The encoded `Resource` (field 1), for routing; empty when absent.
    pub resource: &'a [u8],
    /// Every raw field except the scope spans (resource, schema_url, unknown fields), copied into each request.
    header: Vec<&'a [u8]>,
}

#[derive(Debug)]
struct ScopePart<'a> {
    resource: usize,
    /// Every raw field except the spans (scope, schema_url).
    header: Vec<&'a [u8]>,
    header_len: usize,
}

#[derive(Debug)]
struct SpanPart<'a> {
    scope: usize,
    trace_id: &'a [u8],
    /// The whole `spans` field: tag, length and payload.
    raw: &'a [u8],
}

/// The structure of one encoded `ExportTraceServiceRequest`, borrowed from it.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    pub resources: Vec<ResourcePart<'a>>,
    scopes: Vec<ScopePart<'a>>,
    spans: Vec<SpanPart<'a>>,
}

/// One request body and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// An encoded `ExportTraceServiceRequest`.
    pub body: Vec<u8>,
    pub spans: usize,
    pub traces: usize,
}

impl<'a> Plan<'a> {
    /// Walks the request once (a batch of parts part by part, in place), remembering where every resource, scope
    /// and span is.
    pub fn parse(buf: &'a (impl WireParts + ?Sized)) -> Result<Plan<'a>, WireError> {
        let mut plan = Plan::default();
        for part in buf.wire_parts() {
            plan.parse_request(part)?;
        }
        Ok(plan)
    }

    fn parse_request(&mut self, buf: &'a [u8]) -> Result<(), WireError> {
        each_raw_field(buf, |n, _, rs| {
            if n != 1 {
                return Ok(());
            }
            let resource = self.resources.len();
            let mut part = ResourcePart {
                resource: &[],
                header: Vec::new(),
            };
            each_raw_field(rs, |n, raw, payload| {
                match n {
                    2 => self.parse_scope(resource, payload)?,
                    1 => {
                        part.resource = payload;
                        part.header.push(raw);
                    }
                    _ => part.header.push(raw),
                }
                Ok(())
            })?;
            self.resources.push(part);
            Ok(())
        })
    }

    fn parse_scope(&mut self, resource: usize, ss: &'a [u8]) -> Result<(), WireError> {
        let scope = self.scopes.len();
        let mut header = Vec::new();
        each_raw_field(ss, |n, raw, span| {
            if n != 2 {
                header.push(raw);
                return Ok(());
            }
            let mut trace_id: &[u8] = &[];
            let mut r = Reader::new(span);
            while let Some((n, f)) = r.next_field()? {
                if n == 1 {
                    trace_id = f.bytes("trace_id")?;
                }
            }
            self.spans.push(SpanPart {
                scope,
                trace_id,
                raw,
            });
            Ok(())
        })?;
        let header_len = header.iter().map(|h| h.len()).sum();
        self.scopes.push(ScopePart {
            resource,
            header,
            header_len,
        });
        Ok(())
    }

    /// Spans in the batch.
    pub fn span_count(&self) -> usize {
        self.spans.len()
    }

    fn resource_header_len(&self, r: usize) -> usize {
        self.resources[r].header.iter().map(|h| h.len()).sum()
    }

    /// Requests holding every span of the resources for which `include(resource index)` is true, each with at
    /// most `max_spans` spans and (estimated from above) `max_bytes` bytes, traces kept whole where they fit.
    pub fn chunks(
        &self,
        include: impl Fn(usize) -> bool,
        max_spans: usize,
        max_bytes: usize,
    ) -> Vec<Chunk> {
        let max_spans = max_spans.max(1);
        // Traces in order of first appearance, each with its span indices in batch order.
        let mut traces: Vec<Vec<usize>> = Vec::new();
        let mut by_id: HashMap<&[u8], usize> = HashMap::new();
        for (i, s) in self.spans.iter().enumerate() {
            if !include(self.scopes[s.scope].resource) {
                continue;
            }
            let t = *by_id.entry(s.trace_id).or_insert_with(|| {
                traces.push(Vec::new());
                traces.len() - 1
            });
            traces[t].push(i);
        }
        let mut packer = Packer::new(self, max_spans, max_bytes);
        for trace in &traces {
            let whole = self.standalone_cost(trace);
            if !packer.is_empty()
                && (packer.spans.len() + trace.len() > max_spans
                    || packer.bytes + whole > max_bytes)
            {
                packer.flush();
            }
            for &s in trace {
                packer.add(s);
            }
            packer.traces += 1;
        }
        packer.flush();
        packer.out
    }

    /// Bytes a trace costs in a request of its own.
    fn standalone_cost(&self, trace: &[usize]) -> usize {
        let mut scopes: Vec<usize> = trace.iter().map(|&s| self.spans[s].scope).collect();
        scopes.sort_unstable();
        scopes.dedup();
        let mut resources: Vec<usize> = scopes.iter().map(|&s| self.scopes[s].resource).collect();
        resources.dedup();
        trace
            .iter()
            .map(|&s| self.spans[s].raw.len())
            .sum::<usize>()
            + scopes
                .iter()
                .map(|&s| self.scopes[s].header_len + WRAPPER)
                .sum::<usize>()
            + resources
                .iter()
                .map(|&r| self.resource_header_len(r) + WRAPPER)
                .sum::<usize>()
    }

    /// Encodes the spans `span_idx` (any order) as one request, resources and scopes in batch order.
    fn encode(&self, span_idx: &[usize]) -> Vec<u8> {
        let mut tree: BTreeMap<usize, BTreeMap<usize, Vec<usize>>> = BTreeMap::new();
        for &s in span_idx {
            let scope = self.spans[s].scope;
            tree.entry(self.scopes[scope].resource)
                .or_default()
                .entry(scope)
                .or_default()
                .push(s);
        }
        let mut out = Vec::new();
        for (r, scopes) in tree {
            let mut rs = self.resources[r].header.concat();
            for (scope, mut spans) in scopes {
                spans.sort_unstable();
                let mut ss = self.scopes[scope].header.concat();
                for s in spans {
                    ss.extend_from_slice(self.spans[s].raw);
                }
                put_bytes_field(&mut rs, 2, &ss);
            }
            put_bytes_field(&mut out, 1, &rs);
        }
        out
    }
}

/// Fills one request at a time.
struct Packer<'p, 'a> {
    plan: &'p Plan<'a>,
    max_spans: usize,
    max_bytes: usize,
    spans: Vec<usize>,
    traces: usize,
    bytes: usize,
    scopes_in: Vec<usize>,
    resources_in: Vec<usize>,
    out: Vec<Chunk>,
}

impl<'p, 'a> Packer<'p, 'a> {
    fn new(plan: &'p Plan<'a>, max_spans: usize, max_bytes: usize) -> Self {
        Packer {
            plan,
            max_spans,
            max_bytes,
            spans: Vec::new(),
            traces: 0,
            bytes: 0,
            scopes_in: Vec::new(),
            resources_in: Vec::new(),
            out: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// What adding span `s` to the current request costs.
    fn cost(&self, s: usize) -> usize {
        let span = &self.plan.spans[s];
        let scope = &self.plan.scopes[span.scope];
        let mut c = span.raw.len();
        if !self.scopes_in.contains(&span.scope) {
            c += scope.header_len + WRAPPER;
        }
        if !self.resources_in.contains(&scope.resource) {
            c += self.plan.resource_header_len(scope.resource) + WRAPPER;
        }
        c
    }

    /// Adds a span, first closing the request if it would overflow (a span alone always fits somewhere).
    fn add(&mut self, s: usize) {
        if !self.is_empty()
            && (self.spans.len() >= self.max_spans || self.bytes + self.cost(s) > self.max_bytes)
        {
            self.traces += 1; // the current trace continues in the next request
            self.flush();
        }
        self.bytes += self.cost(s);
        let scope = self.plan.spans[s].scope;
        if !self.scopes_in.contains(&scope) {
            self.scopes_in.push(scope);
            let r = self.plan.scopes[scope].resource;
            if !self.resources_in.contains(&r) {
                self.resources_in.push(r);
            }
        }
        self.spans.push(s);
    }

    fn flush(&mut self) {
        if self.spans.is_empty() {
            return;
        }
        self.out.push(Chunk {
            body: self.plan.encode(&self.spans),
            spans: self.spans.len(),
            traces: self.traces.max(1),
        });
        self.spans.clear();
        self.scopes_in.clear();
        self.resources_in.clear();
        self.traces = 0;
        self.bytes = 0;
    }
}

#[cfg(test)]
#[path = "tests/group_tests.rs"]
mod tests;
