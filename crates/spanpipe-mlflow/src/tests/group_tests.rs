//! Grouping and cutting on encoded bytes: every span exactly once, with its own resource and scope, traces whole
//! where they fit, limits respected.

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::*;
use crate::tests::data::{interleaved_request, span_origin};

/// Decodes every chunk and returns span id → (resource service.name, scope name, chunk index).
fn decode_all(chunks: &[Chunk]) -> HashMap<Vec<u8>, (String, String, usize)> {
    let mut seen = HashMap::new();
    for (ci, c) in chunks.iter().enumerate() {
        let req = ExportTraceServiceRequest::decode(c.body.as_slice()).expect("chunk decodes");
        let mut n = 0;
        for (svc, scope, span) in span_origin(&req) {
            n += 1;
            let prev = seen.insert(span.span_id.clone(), (svc, scope, ci));
            assert!(prev.is_none(), "span {:?} in two chunks", span.span_id);
        }
        assert_eq!(n, c.spans, "chunk {ci} span count");
    }
    seen
}

#[test]
fn every_span_once_with_its_resource_and_scope_for_all_limits() {
    // 3 resources x 2 scopes, 12 traces of 1..=9 spans interleaved across them.
    let req = interleaved_request(3, 12);
    let bytes = req.encode_to_vec();
    let plan = Plan::parse(&bytes).unwrap();
    let expected: HashMap<Vec<u8>, (String, String)> = span_origin(&req)
        .into_iter()
        .map(|(svc, scope, s)| (s.span_id.clone(), (svc, scope)))
        .collect();
    assert_eq!(plan.span_count(), expected.len());
    for max_spans in [1, 2, 3, 5, 9, 10, 1000] {
        for max_bytes in [300, 2_000, usize::MAX] {
            let chunks = plan.chunks(|_| true, max_spans, max_bytes);
            let got = decode_all(&chunks);
            assert_eq!(got.len(), expected.len(), "max {max_spans}/{max_bytes}");
            for (id, (svc, scope, _)) in &got {
                assert_eq!(expected.get(id), Some(&(svc.clone(), scope.clone())));
            }
            for c in &chunks {
                assert!(c.spans <= max_spans);
                assert!(
                    c.spans == 1 || c.body.len() <= max_bytes,
                    "{} > {max_bytes}",
                    c.body.len()
                );
            }
        }
    }
}

#[test]
fn traces_stay_whole_when_they_fit_and_are_grouped_across_resources() {
    let req = interleaved_request(3, 12);
    let bytes = req.encode_to_vec();
    let plan = Plan::parse(&bytes).unwrap();
    let chunks = plan.chunks(|_| true, 10, usize::MAX);
    let seen = decode_all(&chunks);
    let mut trace_chunks: HashMap<Vec<u8>, HashSet<usize>> = HashMap::new();
    for (_, _, s) in span_origin(&req) {
        trace_chunks
            .entry(s.trace_id.clone())
            .or_default()
            .insert(seen[&s.span_id].2);
    }
    // Every trace has at most 9 spans: each sits in exactly one request.
    assert!(
        trace_chunks.values().all(|c| c.len() == 1),
        "{trace_chunks:?}"
    );
    assert_eq!(chunks.iter().map(|c| c.traces).sum::<usize>(), 12);
    // Packing is dense: no request could have taken the next trace.
    let total: usize = chunks.iter().map(|c| c.spans).sum();
    assert!(
        chunks.len() <= total.div_ceil(10) + 3,
        "{} chunks for {total}",
        chunks.len()
    );
}

#[test]
fn a_trace_larger_than_a_request_is_cut_at_span_boundaries() {
    let req = crate::tests::data::one_trace(25);
    let bytes = req.encode_to_vec();
    let plan = Plan::parse(&bytes).unwrap();
    let chunks = plan.chunks(|_| true, 10, usize::MAX);
    assert_eq!(
        chunks.iter().map(|c| c.spans).collect::<Vec<_>>(),
        vec![10, 10, 5]
    );
    assert_eq!(decode_all(&chunks).len(), 25);
}

#[test]
fn only_included_resources_are_taken_and_garbage_is_an_error() {
    let req = interleaved_request(3, 12);
    let bytes = req.encode_to_vec();
    let plan = Plan::parse(&bytes).unwrap();
    assert_eq!(plan.resources.len(), 3);
    let only_1 = plan.chunks(|r| r == 1, 1000, usize::MAX);
    let seen = decode_all(&only_1);
    assert!(!seen.is_empty());
    assert!(seen.values().all(|(svc, _, _)| svc == "svc-1"));
    let all: usize = (0..3)
        .map(|r| {
            plan.chunks(|x| x == r, 1000, usize::MAX)
                .iter()
                .map(|c| c.spans)
                .sum::<usize>()
        })
        .sum();
    assert_eq!(all, plan.span_count());
    assert!(plan.chunks(|_| false, 10, 100).is_empty());
    assert!(Plan::parse(b"\x0a\xff\x01").is_err());
    assert!(Plan::parse(&[]).unwrap().chunks(|_| true, 1, 1).is_empty());
}

#[test]
fn a_single_request_is_byte_identical_in_content() {
    let req = crate::tests::data::one_trace(4);
    let bytes = req.encode_to_vec();
    let chunks = Plan::parse(&bytes)
        .unwrap()
        .chunks(|_| true, 1000, usize::MAX);
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        ExportTraceServiceRequest::decode(chunks[0].body.as_slice()).unwrap(),
        req
    );
}
