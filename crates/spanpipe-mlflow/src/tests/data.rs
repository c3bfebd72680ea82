//! OTLP requests for unit tests.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use spanpipe_core::{Batch, Signal};

pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// Span `i` of trace `t` (span 0 is the root).
pub fn span(t: u64, i: u64) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&(t + 1).to_be_bytes());
    Span {
        trace_id: trace_id.to_vec(),
        span_id: ((t + 1) * 1000 + i).to_be_bytes().to_vec(),
        parent_span_id: if i == 0 {
            vec![]
        } else {
            ((t + 1) * 1000).to_be_bytes().to_vec()
        },
        name: format!("t{t}-s{i}"),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_100_000_000,
        attributes: vec![kv("mlflow.spanType", "\"LLM\"")],
        ..Default::default()
    }
}

fn resource(svc: &str, extra: &[KeyValue]) -> Option<Resource> {
    let mut attributes = vec![kv("service.name", svc)];
    attributes.extend_from_slice(extra);
    Some(Resource {
        attributes,
        ..Default::default()
    })
}

/// `resources` resources with two scopes each, and `traces` traces of `t % 9 + 1` spans whose spans are spread
/// over resources and scopes and interleaved with each other in batch order.
pub fn interleaved_request(resources: u64, traces: u64) -> ExportTraceServiceRequest {
    let mut rs: Vec<ResourceSpans> = (0..resources)
        .map(|r| ResourceSpans {
            resource: resource(&format!("svc-{r}"), &[]),
            scope_spans: (0..2)
                .map(|s| ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: format!("scope-{r}-{s}"),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            schema_url: format!("https://schema/{r}"),
        })
        .collect();
    for i in 0..9 {
        for t in 0..traces {
            if i < t % 9 + 1 {
                let r = ((t + i) % resources) as usize;
                rs[r].scope_spans[(i % 2) as usize].spans.push(span(t, i));
            }
        }
    }
    ExportTraceServiceRequest { resource_spans: rs }
}

/// One resource, one scope, one trace of `n` spans.
pub fn one_trace(n: u64) -> ExportTraceServiceRequest {
    resource_request("svc", &[], 0, n)
}

/// One resource (`service.name` = `svc` plus `extra` attributes) holding trace `t` with `n` spans.
pub fn resource_request(
    svc: &str,
    extra: &[KeyValue],
    t: u64,
    n: u64,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(svc, extra),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "scope".into(),
                    ..Default::default()
                }),
                spans: (0..n).map(|i| span(t, i)).collect(),
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// (service.name, scope name, span) of every span, in order.
pub fn span_origin(req: &ExportTraceServiceRequest) -> Vec<(String, String, &Span)> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let svc = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .and_then(|a| a.value.as_ref())
            .and_then(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            let scope = ss
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for s in &ss.spans {
                out.push((svc.clone(), scope.clone(), s));
            }
        }
    }
    out
}

/// A traces batch of `req`.
pub fn batch(req: &ExportTraceServiceRequest) -> Batch {
    let n = span_origin(req).len();
    Batch::new(Signal::Traces, Bytes::from(req.encode_to_vec()), n)
}
