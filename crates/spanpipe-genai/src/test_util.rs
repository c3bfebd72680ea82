//! Builders for the unit tests: spans and requests with the attributes the connector reads.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use crate::config::{GenaiMetricsConfig, Settings};

/// An attribute value.
pub enum V<'a> {
    S(&'a str),
    I(i64),
    D(f64),
}

pub fn kv(k: &str, v: &V<'_>) -> KeyValue {
    let value = match v {
        V::S(s) => Value::StringValue(s.to_string()),
        V::I(i) => Value::IntValue(*i),
        V::D(d) => Value::DoubleValue(*d),
    };
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A span of trace `t`, id `id` (parent `parent`, 0 = root), lasting `ms` milliseconds, status code `code`.
pub fn span(t: u8, id: u64, parent: u64, ms: f64, code: i32, attrs: &[(&str, V<'_>)]) -> Span {
    let start = 1_760_000_000_000_000_000u64;
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
                attributes: resource.iter().map(|(k, v)| kv(k, &V::S(v))).collect(),
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
    let cfg: GenaiMetricsConfig = node.deserialize("connectors.genai_metrics").unwrap();
    cfg.validate().unwrap()
}

/// A small price table (per 1M tokens).
pub const PRICES: &str = "currency: USD
prices:
  - model: gpt-test
    input: 2.0
    output: 8.0
    cache_read: 0.5
  - model: gpt-test
    effective_from: 2030-01-01
    input: 1.0
    output: 4.0
  - model_regex: 'claude-.*'
    input: 3.0
    output: 15.0
";

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
use spanpipe_core::{Batch, ConsumeError, Consumer};

/// A downstream that keeps what it is given.
#[derive(Default)]
pub struct Capture(pub Mutex<Vec<Batch>>);

#[async_trait::async_trait]
impl Consumer for Capture {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.0.lock().unwrap().push(batch);
        Ok(())
    }
}

/// `metric{sorted labels}` → (count or value, sum) of the last request captured.
pub fn points(c: &Arc<Capture>) -> BTreeMap<String, (f64, f64)> {
    let batches = c.0.lock().unwrap();
    let mut out = BTreeMap::new();
    let Some(last) = batches.last() else {
        return out;
    };
    let req = ExportMetricsServiceRequest::decode(last.payload.to_bytes()).unwrap();
    for m in req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        let key = |attrs: &[KeyValue]| {
            let mut l: Vec<String> = attrs
                .iter()
                .map(|kv| {
                    let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(Value::StringValue(s)) => s.clone(),
                        Some(Value::BoolValue(b)) => b.to_string(),
                        _ => "?".into(),
                    };
                    format!("{}={v}", kv.key)
                })
                .collect();
            l.sort();
            format!("{}{{{}}}", m.name, l.join(","))
        };
        match &m.data {
            Some(Data::Histogram(h)) => {
                for p in &h.data_points {
                    out.insert(key(&p.attributes), (p.count as f64, p.sum.unwrap_or(0.0)));
                }
            }
            Some(Data::Sum(s)) => {
                for p in &s.data_points {
                    let v = match p.value {
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        Some(number_data_point::Value::AsInt(i)) => i as f64,
                        None => 0.0,
                    };
                    out.insert(key(&p.attributes), (v, v));
                }
            }
            _ => {}
        }
    }
    out
}
