//! In-process tests: a real receiver on 127.0.0.1 port 0 in front of a consumer that records what it gets.

mod door;
mod grpc;
mod http;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use spanpipe_config::ByteSize;
use spanpipe_core::{Batch, ConsumeError, Consumer, Receiver, SignalConsumers};

use super::OtlpReceiver;
use super::config::{GrpcConfig, HttpConfig, OtlpReceiverConfig, Protocols};

/// What the test consumer answers.
#[derive(Clone, Copy)]
enum Mode {
    Accept,
    /// Accept after a delay (an in-flight request during shutdown).
    Slow(Duration),
    Refuse(Duration),
    Reject,
}

/// Records every batch it accepts.
struct Recorder {
    mode: Mode,
    batches: Mutex<Vec<Batch>>,
}

impl Recorder {
    fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Recorder {
            mode,
            batches: Mutex::new(Vec::new()),
        })
    }

    fn batches(&self) -> Vec<Batch> {
        self.batches.lock().unwrap().clone()
    }
}

#[async_trait]
impl Consumer for Recorder {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        match self.mode {
            Mode::Accept => {
                self.batches.lock().unwrap().push(batch);
                Ok(())
            }
            Mode::Slow(delay) => {
                tokio::time::sleep(delay).await;
                self.batches.lock().unwrap().push(batch);
                Ok(())
            }
            Mode::Refuse(retry_after) => Err(ConsumeError::Refused {
                reason: "queue full".into(),
                retry_after,
            }),
            Mode::Reject => Err(ConsumeError::Rejected {
                reason: "not wanted".into(),
            }),
        }
    }
}

/// Body limit used by the HTTP tests (small, so 413s are cheap to provoke).
const MAX_BODY: u64 = 64 << 10;

/// A receiver with both protocols on ephemeral ports whose only pipeline takes traces into `recorder`.
async fn start(recorder: &Arc<Recorder>, include_metadata: bool) -> OtlpReceiver {
    let config = OtlpReceiverConfig {
        protocols: Protocols {
            grpc: Some(GrpcConfig {
                endpoint: "127.0.0.1:0".into(),
                max_recv_msg_size_mib: 1,
                include_metadata,
                ..GrpcConfig::default()
            }),
            http: Some(HttpConfig {
                endpoint: "127.0.0.1:0".into(),
                max_request_body_size: ByteSize(MAX_BODY),
                include_metadata,
                ..HttpConfig::default()
            }),
        },
        ..OtlpReceiverConfig::default()
    };
    let receiver = OtlpReceiver::new("otlp/test", config);
    let consumers = SignalConsumers {
        traces: Some(recorder.clone()),
        ..Default::default()
    };
    receiver.start(consumers).await.unwrap();
    receiver
}

/// A request of `spans` valid spans; `pad` bytes of attribute make it as large as needed.
fn traces(spans: u64, pad: usize) -> ExportTraceServiceRequest {
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: [7u8; 16].to_vec(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            name: format!("span {i}"),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_100_000_000,
            attributes: vec![KeyValue {
                key: "pad".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("x".repeat(pad))),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn traces_bytes(spans: u64) -> Vec<u8> {
    traces(spans, 10).encode_to_vec()
}

/// A request whose only span has a 15-byte trace id.
fn bad_id_bytes() -> Vec<u8> {
    let mut req = traces(1, 1);
    req.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1; 15];
    req.encode_to_vec()
}

#[tokio::test]
async fn port_in_use_fails_start_and_shutdown_frees_it() {
    let rec = Recorder::new(Mode::Accept);
    let first = start(&rec, false).await;
    let addr = first.http_addr().unwrap();
    let config = OtlpReceiverConfig {
        protocols: Protocols {
            grpc: None,
            http: Some(HttpConfig {
                endpoint: addr.to_string(),
                ..HttpConfig::default()
            }),
        },
        ..OtlpReceiverConfig::default()
    };
    let second = OtlpReceiver::new("otlp/second", config);
    let err = second.start(SignalConsumers::default()).await.unwrap_err();
    assert!(err.to_string().contains("cannot listen"), "{err}");
    assert!(
        first.start(SignalConsumers::default()).await.is_err(),
        "double start"
    );

    first.shutdown().await;
    assert!(first.http_addr().is_none());
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
    second.start(SignalConsumers::default()).await.unwrap();
    second.shutdown().await;
}
