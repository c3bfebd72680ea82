//! Builders for the unit tests: spans and requests with the attributes the connector reads.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use crate::config::{Settings, SpanMetricsConfig};

pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// A span of trace `t`, id `id` (parent `parent`, 0 = root), lasting `ms` milliseconds, status code `code`.
pub fn span(t: u8, id: u64, parent: u64, ms: f64, code: i32, attrs: &[(&str, &str)]) -> Span {
    let start = 1_700_000_000_000_000_000u64;
    Span {
        trace_id: vec![t; 16],
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: if parent == 0 {
            vec![]
        } else {
            parent.to_be_bytes().to_vec()
        },
        name: "s".into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + (ms * 1e6) as u64,
        attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
        status: Some(Status {
            code,
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// One request: one resource with `resource` attributes holding `spans`.
pub fn request(resource: &[(&str, &str)], spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| kv(k, v)).collect(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Settings from a YAML snippet (defaults for everything else).
pub fn settings(yaml: &str) -> Settings {
    let node = spanpipe_config::load_str("test.yaml", yaml).unwrap();
    let cfg: SpanMetricsConfig = node.deserialize("connectors.mlflow_spanmetrics").unwrap();
    cfg.validate().unwrap()
}
