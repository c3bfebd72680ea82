//! Realistic agent-shaped requests for unit tests.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// One span of trace `t`, number `i`; the first of a trace is its root.
pub fn span(t: u64, i: u64, error: bool) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&t.to_be_bytes());
    trace_id[15] = 1;
    Span {
        trace_id: trace_id.to_vec(),
        span_id: (t * 1000 + i + 1).to_be_bytes().to_vec(),
        parent_span_id: if i == 0 {
            vec![]
        } else {
            (t * 1000 + 1).to_be_bytes().to_vec()
        },
        name: format!("span-{i}"),
        kind: 1,
        start_time_unix_nano: 1_700_000_000_000_000_000 + i * 1_000_000,
        end_time_unix_nano: 1_700_000_000_000_000_000 + i * 1_000_000 + 7_000_000,
        attributes: vec![
            kv("mlflow.spanType", "\"LLM\""),
            kv("gen_ai.operation.name", "chat"),
        ],
        status: Some(Status {
            message: String::new(),
            code: if error { 2 } else { 1 },
        }),
        ..Default::default()
    }
}

/// `resources` resources, one scope each, `spans` spans each (one trace per resource).
pub fn request(resources: u64, spans: u64) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: (0..resources)
            .map(|r| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", &format!("svc-{r}"))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: format!("scope-{r}"),
                        ..Default::default()
                    }),
                    spans: (0..spans).map(|i| span(r, i, i == 2)).collect(),
                    schema_url: String::new(),
                }],
                schema_url: format!("https://schema/{r}"),
            })
            .collect(),
    }
}
