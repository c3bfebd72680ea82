//! Shared fixtures for the exporter tests: config nodes, build contexts and small OTLP requests.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use spanpipe_core::{Batch, BuildContext, ComponentId, ConfigError, Node, Signal};

pub const TRACE_ID: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xa0];

/// Parses a YAML snippet as a component's config node.
pub fn node(yaml: &str) -> Node {
    spanpipe_config::load_str("test.yaml", yaml).unwrap()
}

/// A build context for component `kind` (no name).
pub fn ctx(kind: &str) -> BuildContext {
    BuildContext::new(ComponentId::new(kind, None), format!("exporters.{kind}"))
}

/// The message of a build error (panics if the build succeeded).
pub fn build_err<T>(r: Result<T, ConfigError>) -> String {
    match r {
        Ok(_) => panic!("expected a config error"),
        Err(e) => format!("{}: {}", e.key, e.message),
    }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// Span `i`: span id `0xaa + i`, parent `0xaa` (except span 0, a root), 250 ms long, error status when odd.
pub fn span(i: u64) -> Span {
    Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: (0xaa + i).to_be_bytes().to_vec(),
        parent_span_id: if i == 0 {
            vec![]
        } else {
            0xaau64.to_be_bytes().to_vec()
        },
        name: format!("span-{i}"),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_250_000_000,
        attributes: vec![
            kv(
                "gen_ai.system",
                any_value::Value::StringValue("openai".into()),
            ),
            kv("tokens", any_value::Value::IntValue(42)),
        ],
        status: Some(Status {
            message: String::new(),
            code: if i % 2 == 1 { 2 } else { 1 },
        }),
        ..Default::default()
    }
}

/// `resources` resource spans with `spans` spans each (span ids restart per resource).
pub fn trace_request(resources: u64, spans: u64) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: (0..resources)
            .map(|r| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(
                        "service.name",
                        any_value::Value::StringValue(format!("svc-{r}")),
                    )],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: (0..spans).map(span).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// A traces batch of one resource with `spans` spans.
pub fn trace_batch(spans: u64) -> Batch {
    let payload = Bytes::from(trace_request(1, spans).encode_to_vec());
    Batch::new(Signal::Traces, payload, spans as usize)
}

/// One gauge with one point.
pub fn metric_request() -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "requests".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: 1_700_000_000_000_000_000,
                            value: Some(number_data_point::Value::AsInt(7)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// One log record with a string body.
pub fn log_request() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_000,
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("hello".into())),
                    }),
                    trace_id: TRACE_ID.to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A client authenticator whose token tests can rotate (`None`: no credential yet).
pub struct TestClientAuth {
    pub header: &'static str,
    pub token: std::sync::Mutex<Option<&'static str>>,
}

impl spanpipe_core::auth::ClientAuth for TestClientAuth {
    fn credential(
        &self,
    ) -> Result<spanpipe_core::auth::ClientCredential, spanpipe_core::AuthError> {
        match *self.token.lock().unwrap() {
            Some(t) => Ok(spanpipe_core::auth::ClientCredential {
                header: self.header.into(),
                value: format!("Bearer {t}").into(),
            }),
            None => Err(spanpipe_core::AuthError("token file /t is empty".into())),
        }
    }
}

/// An extension offering `auth` to exporters (`None`: an extension that is no authenticator).
struct TestExtension(Option<std::sync::Arc<TestClientAuth>>);

#[async_trait::async_trait]
impl spanpipe_core::Extension for TestExtension {
    fn client_auth(&self) -> Option<std::sync::Arc<dyn spanpipe_core::auth::ClientAuth>> {
        self.0
            .clone()
            .map(|a| a as std::sync::Arc<dyn spanpipe_core::auth::ClientAuth>)
    }
}

/// A build context for `kind` with extensions `bearertokenauth` (offering `auth`) and `health_check` (not an
/// authenticator).
pub fn ctx_with_auth(kind: &str, auth: std::sync::Arc<TestClientAuth>) -> BuildContext {
    let exts: Vec<(ComponentId, std::sync::Arc<dyn spanpipe_core::Extension>)> = vec![
        (
            ComponentId::new("bearertokenauth", None),
            std::sync::Arc::new(TestExtension(Some(auth))),
        ),
        (
            ComponentId::new("health_check", None),
            std::sync::Arc::new(TestExtension(None)),
        ),
    ];
    ctx(kind).with_extensions(spanpipe_core::ExtensionHost::new(exts))
}
