use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use spanpipe_core::wire::walk_spans;

use super::*;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// Two resources (services a and b, tenant t1 / t2); spans of traces 1 and 2 under each.
fn request() -> Vec<u8> {
    let span = |t: u8, name: &str, tenant: Option<&str>| Span {
        trace_id: vec![t; 16],
        span_id: vec![t; 8],
        name: name.into(),
        attributes: tenant.map(|x| vec![kv("tenant", x)]).unwrap_or_default(),
        ..Default::default()
    };
    let rs = |svc: &str, tenant: &str, spans: Vec<Span>| ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", svc), kv("tenant", tenant)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            rs(
                "a",
                "t1",
                vec![span(1, "x", None), span(2, "y", Some("t9"))],
            ),
            rs("b", "t2", vec![span(1, "x", None), span(2, "x", None)]),
        ],
    }
    .encode_to_vec()
}

fn positions(key: &RoutingKey) -> Vec<u32> {
    let buf = request();
    let mut out = Vec::new();
    walk_spans(&buf, |ctx| {
        out.push(span_position(key, ctx)?);
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn trace_id_routes_a_trace_together_across_resources() {
    let p = positions(&RoutingKey::TraceId);
    assert_eq!(p[0], p[2], "trace 1 under both resources");
    assert_eq!(p[1], p[3], "trace 2 under both resources");
    assert_ne!(p[0], p[1]);
    assert_eq!(
        p[0],
        crate::ring::position(&[1; 16]),
        "the trace id's position"
    );
}

#[test]
fn service_and_resource_route_by_the_resource() {
    for key in [RoutingKey::Service, RoutingKey::Resource] {
        let p = positions(&key);
        assert_eq!(p[0], p[1], "{key:?}: one resource, one position");
        assert_eq!(p[2], p[3]);
        assert_ne!(p[0], p[2]);
    }
}

#[test]
fn attributes_read_the_span_first_then_the_resource_and_pseudo_attributes() {
    let p = positions(&RoutingKey::Attributes(vec!["tenant".into()]));
    // span 2 under resource a carries its own tenant (t9); the others take their resource's.
    assert_eq!(p[2], p[3], "t2, t2");
    assert_ne!(p[0], p[1], "t1 vs the span's t9");
    assert_ne!(p[0], p[2]);
    let by_name = positions(&RoutingKey::Attributes(vec!["span.name".into()]));
    assert_eq!(by_name[0], by_name[2]);
    assert_eq!(by_name[0], by_name[3]);
    assert_ne!(by_name[0], by_name[1]);
}

#[test]
fn unreadable_spans_are_errors_not_panics() {
    let ctx = SpanCtx {
        resource: b"\x0a\xff",
        scope: &[],
        raw: b"\x0a\xff",
    };
    for key in [
        RoutingKey::TraceId,
        RoutingKey::Service,
        RoutingKey::Resource,
        RoutingKey::Attributes(vec!["x".into()]),
    ] {
        assert!(span_position(&key, ctx).is_err(), "{key:?}");
    }
}
