//! Builders for unit tests: OTLP values, spans and requests made with the real prost types.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

pub fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    }
}

pub fn i(v: i64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::IntValue(v)),
    }
}

pub fn d(v: f64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::DoubleValue(v)),
    }
}

pub fn b(v: bool) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::BoolValue(v)),
    }
}

pub fn kv(k: &str, v: AnyValue) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(v),
        ..Default::default()
    }
}

/// A span with ids derived from `trace` and `n`.
pub fn span(trace: u8, n: u8, name: &str, kind: i32, attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![n.max(1); 8],
        name: name.into(),
        kind,
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        attributes: attrs,
        ..Default::default()
    }
}

pub fn with_status(mut sp: Span, code: i32) -> Span {
    sp.status = Some(Status {
        code,
        message: String::new(),
    });
    sp
}

pub fn resource_spans(resource: Vec<KeyValue>, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: resource,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "lib".into(),
                version: "1.0".into(),
                ..Default::default()
            }),
            spans,
            schema_url: String::new(),
        }],
        schema_url: "https://schema".into(),
    }
}

pub fn request(rs: Vec<ResourceSpans>) -> Vec<u8> {
    ExportTraceServiceRequest { resource_spans: rs }.encode_to_vec()
}

pub fn decode(buf: &[u8]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(buf).expect("valid request")
}

/// All spans of a request in order.
pub fn spans(req: &ExportTraceServiceRequest) -> Vec<Span> {
    req.resource_spans
        .iter()
        .flat_map(|rs| {
            rs.scope_spans
                .iter()
                .flat_map(|ss| ss.spans.iter().cloned())
        })
        .collect()
}

/// The value of attribute `k` in a list.
pub fn attr<'a>(attrs: &'a [KeyValue], k: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|a| a.key == k)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// A consumer that keeps what it gets.
#[derive(Default)]
pub struct Capture(pub std::sync::Mutex<Vec<spanpipe_core::Batch>>);

#[async_trait::async_trait]
impl spanpipe_core::Consumer for Capture {
    async fn consume(
        &self,
        batch: spanpipe_core::Batch,
    ) -> Result<(), spanpipe_core::ConsumeError> {
        self.0.lock().unwrap().push(batch);
        Ok(())
    }
}

impl Capture {
    pub fn take(&self) -> Vec<spanpipe_core::Batch> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Builds a processor of `factory` from YAML, in front of a [`Capture`].
pub fn build(
    factory: &dyn spanpipe_core::ProcessorFactory,
    yaml: &str,
) -> Result<
    (
        std::sync::Arc<dyn spanpipe_core::Processor>,
        std::sync::Arc<Capture>,
    ),
    spanpipe_core::ConfigError,
> {
    let node = spanpipe_config::load_str("t.yaml", yaml).unwrap();
    let id: spanpipe_core::ComponentId = factory.type_name().parse().unwrap();
    let ctx = spanpipe_core::BuildContext::new(id, format!("processors.{}", factory.type_name()));
    let cap = std::sync::Arc::new(Capture::default());
    let p = factory.build(&ctx, &node, spanpipe_core::Signal::Traces, cap.clone())?;
    Ok((p, cap))
}

/// A traces batch of an encoded request.
pub fn batch(payload: Vec<u8>) -> spanpipe_core::Batch {
    let n = spanpipe_core::wire::scan_traces(&payload, |_, _| {})
        .unwrap()
        .spans;
    spanpipe_core::Batch::new(spanpipe_core::Signal::Traces, payload, n)
}
