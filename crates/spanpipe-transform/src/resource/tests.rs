use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;

use super::*;
use crate::test_util::{attr, batch, build, decode, kv, request, resource_spans, s, span};

#[tokio::test]
async fn actions_change_resources_and_leave_spans_alone() {
    let (p, cap) = build(
        &ResourceProcessorFactory,
        "attributes:\n  - {action: upsert, key: deployment.environment, value: prod}\n  - {action: delete, key: host.name}\n  - {action: insert, key: service.name, value: fallback}\n",
    )
    .unwrap();
    let req = request(vec![
        resource_spans(
            vec![kv("service.name", s("a")), kv("host.name", s("h1"))],
            vec![span(1, 1, "x", 1, vec![kv("k", s("v"))])],
        ),
        resource_spans(vec![], vec![span(2, 2, "y", 1, vec![])]),
    ]);
    p.consume(batch(req.clone())).await.unwrap();
    let out = cap.take();
    assert_eq!(out[0].items, 2);
    let got = decode(&out[0].payload.to_vec());
    let want = decode(&req);
    let r0 = &got.resource_spans[0].resource.as_ref().unwrap().attributes;
    assert_eq!(
        attr(r0, "service.name"),
        Some(&Value::StringValue("a".into()))
    );
    assert_eq!(attr(r0, "host.name"), None);
    assert_eq!(
        attr(r0, "deployment.environment"),
        Some(&Value::StringValue("prod".into()))
    );
    let r1 = &got.resource_spans[1].resource.as_ref().unwrap().attributes;
    assert_eq!(
        attr(r1, "service.name"),
        Some(&Value::StringValue("fallback".into()))
    );
    for (g, w) in got.resource_spans.iter().zip(&want.resource_spans) {
        assert_eq!(g.scope_spans, w.scope_spans, "spans untouched");
        assert_eq!(g.schema_url, w.schema_url);
    }
}

#[tokio::test]
async fn a_resource_spans_without_resource_gets_one() {
    let (p, cap) = build(
        &ResourceProcessorFactory,
        "actions:\n  - {action: insert, key: team, value: ml}\n",
    )
    .unwrap();
    let mut rs: ResourceSpans = resource_spans(vec![], vec![span(1, 1, "x", 1, vec![])]);
    rs.resource = None;
    let req = ExportTraceServiceRequest {
        resource_spans: vec![rs],
    }
    .encode_to_vec();
    p.consume(batch(req)).await.unwrap();
    let got = decode(&cap.take()[0].payload.to_vec());
    let r = &got.resource_spans[0].resource.as_ref().unwrap().attributes;
    assert_eq!(attr(r, "team"), Some(&Value::StringValue("ml".into())));
    assert_eq!(got.resource_spans[0].scope_spans[0].spans.len(), 1);
}

#[test]
fn errors_point_at_the_attributes_list() {
    let err = build(
        &ResourceProcessorFactory,
        "attributes:\n  - {action: insert}\n",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("processors.resource.attributes[0].key"),
        "{err}"
    );
    let err = build(&ResourceProcessorFactory, "{}")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("at least one action"), "{err}");
}
