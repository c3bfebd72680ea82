use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::*;
use crate::wire::SpanView;
use crate::wire::test_data::request;

/// Group by the last byte of the span id (spans of one resource spread over groups).
fn by_span_id(n: u64) -> impl FnMut(SpanCtx<'_>) -> Result<u64, WireError> {
    move |ctx| {
        let v = SpanView::read(ctx.raw, |_, _| {})?;
        Ok(u64::from(*v.span_id.last().unwrap_or(&0)) % n)
    }
}

fn span_ids(req: &ExportTraceServiceRequest) -> Vec<Vec<u8>> {
    req.resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.iter()))
        .map(|s| s.span_id.clone())
        .collect()
}

#[test]
fn every_span_lands_once_in_its_group_under_its_resource_and_scope() {
    let mut req = request(3, 7);
    req.resource_spans[1].scope_spans.push(Default::default()); // an empty scope: dropped
    let bytes = req.encode_to_vec();
    let pieces = split_traces_by(&bytes, by_span_id(3)).unwrap();
    assert_eq!(pieces.len(), 3);
    let mut all = Vec::new();
    for p in &pieces {
        assert!(matches!(p.request, Cow::Owned(_)));
        let decoded = ExportTraceServiceRequest::decode(&*p.request).unwrap();
        let mut n = 0;
        for rs in &decoded.resource_spans {
            let orig = req
                .resource_spans
                .iter()
                .find(|o| o.resource == rs.resource)
                .expect("resource kept");
            assert_eq!(rs.schema_url, orig.schema_url);
            for ss in &rs.scope_spans {
                assert!(!ss.spans.is_empty(), "no empty scopes");
                assert_eq!(ss.scope, orig.scope_spans[0].scope);
                for s in &ss.spans {
                    assert_eq!(u64::from(s.span_id[7]) % 3, p.group);
                    n += 1;
                }
            }
        }
        assert_eq!(n, p.spans);
        all.extend(span_ids(&decoded));
    }
    let mut want = span_ids(&req);
    want.sort();
    all.sort();
    assert_eq!(all, want, "every span exactly once");
}

#[test]
fn one_group_is_the_input_itself_and_no_spans_no_piece() {
    let bytes = request(2, 4).encode_to_vec();
    let pieces = split_traces_by(&bytes, |_| Ok(7)).unwrap();
    assert_eq!(pieces.len(), 1);
    assert_eq!(pieces[0].group, 7);
    assert_eq!(pieces[0].spans, 8);
    assert!(matches!(pieces[0].request, Cow::Borrowed(b) if b == bytes.as_slice()));
    assert!(split_traces_by(&[], |_| Ok(0)).unwrap().is_empty());
    let empty = request(2, 0).encode_to_vec();
    assert!(split_traces_by(&empty, |_| Ok(0)).unwrap().is_empty());
}

#[test]
fn group_order_is_first_appearance_and_span_order_is_kept() {
    let bytes = request(1, 6).encode_to_vec();
    let pieces = split_traces_by(&bytes, by_span_id(2)).unwrap();
    // span ids end in 1..=6: the first span (id 1) is in group 1.
    assert_eq!(pieces.iter().map(|p| p.group).collect::<Vec<_>>(), [1, 0]);
    let d = ExportTraceServiceRequest::decode(&*pieces[0].request).unwrap();
    let last: Vec<u8> = span_ids(&d).iter().map(|id| id[7]).collect();
    assert_eq!(last, [1, 3, 5]);
}

#[test]
fn truncated_input_and_classifier_errors_are_errors_never_panics() {
    let bytes = request(2, 5).encode_to_vec();
    for cut in 0..bytes.len() {
        let _ = split_traces_by(&bytes[..cut], by_span_id(2));
    }
    assert!(split_traces_by(b"\x0a\xff\x01", |_| Ok(0)).is_err());
    let err = split_traces_by(&bytes, |_| Err(WireError::new("no"))).unwrap_err();
    assert_eq!(err.0, "no");
}

/// Span ids of an encoded request, in wire order.
fn ids_of(buf: &[u8]) -> Vec<Vec<u8>> {
    span_ids(&ExportTraceServiceRequest::decode(buf).unwrap())
}

#[test]
fn a_payload_of_parts_splits_as_its_joined_request_does_and_shares_one_group_parts() {
    let one_span = bytes::Bytes::from(request(1, 1).encode_to_vec());
    let mixed = bytes::Bytes::from(request(3, 7).encode_to_vec());
    let payload =
        crate::Payload::from_parts(vec![one_span.clone(), mixed.clone(), one_span.clone()]);
    let joined = payload.to_bytes();

    let by_parts = split_payload_by(&payload, by_span_id(3)).unwrap();
    let whole = split_traces_by(&joined, by_span_id(3)).unwrap();
    assert_eq!(by_parts.len(), whole.len());
    for (g, w) in by_parts.iter().zip(&whole) {
        assert_eq!(g.group, w.group);
        assert_eq!(g.spans, w.spans);
        assert_eq!(
            ids_of(&g.payload.to_bytes()),
            ids_of(&w.request),
            "group {}",
            g.group
        );
    }
    // The one-span parts went whole into their group: shared, not copied.
    let home = by_parts
        .iter()
        .find(|g| {
            g.payload
                .parts()
                .iter()
                .any(|p| p.as_ptr() == one_span.as_ptr())
        })
        .expect("a one-group part is passed on as it is");
    let shared = home
        .payload
        .parts()
        .iter()
        .filter(|p| p.as_ptr() == one_span.as_ptr() && p.len() == one_span.len())
        .count();
    assert_eq!(shared, 2);
    assert!(
        by_parts
            .iter()
            .flat_map(|g| g.payload.parts())
            .all(|p| p.as_ptr() != mixed.as_ptr()),
        "the mixed part is cut"
    );
    assert!(
        split_payload_by(&crate::Payload::default(), by_span_id(3))
            .unwrap()
            .is_empty()
    );
    let broken = crate::Payload::from_parts(vec![one_span, bytes::Bytes::from_static(b"\x0a\xff")]);
    assert!(split_payload_by(&broken, by_span_id(3)).is_err());
}
