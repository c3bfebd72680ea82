//! Config and error-mapping tests, against an in-process tonic server that records the raw bytes it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::EnabledCompressionEncodings;
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic_types::ErrorDetails;

use super::*;
use crate::exporter::test_util::{build_err, ctx, node, trace_batch};

fn build(yaml: &str) -> Result<BuiltExporter, ConfigError> {
    OtlpGrpcExporterFactory.build(&ctx("otlp"), &node(yaml))
}

#[test]
fn defaults_and_unknown_fields() {
    let cfg: OtlpGrpcConfig = ctx("otlp").config(&node("endpoint: h:4317")).unwrap();
    assert_eq!(cfg.compression, GrpcCompression::Gzip);
    assert_eq!(cfg.timeout.0, Duration::from_secs(5));
    assert!(!cfg.tls.insecure);
    assert_eq!(cfg.sending_queue, QueueSettings::default());
    let built = build("endpoint: h:4317").unwrap();
    assert_eq!(built.settings.timeout, Duration::from_secs(5));
    assert!(build_err(build("endpoint: h:4317\nendpont: x")).contains("endpont"));
    assert!(
        build_err(build("endpoint: h:4317\ntls: {insecure: true, verify: 1}")).contains("verify")
    );
}

#[test]
fn endpoint_is_required_and_validated() {
    assert!(build_err(build("timeout: 1s")).starts_with("exporters.otlp.endpoint"));
    assert!(build_err(build("endpoint: collector")).contains("port"));
    assert!(
        build_err(build(
            "endpoint: h:1\ntls: {insecure: true, insecure_skip_verify: true}"
        ))
        .contains("TLS")
    );
    assert!(build("endpoint: https://h:1\ntls: {insecure_skip_verify: true}").is_ok());
    assert!(
        build_err(build("endpoint: h:1\nsending_queue: {num_consumers: 0}"))
            .contains("num_consumers")
    );
}

#[test]
fn compression_and_headers_parse() {
    for (text, want) in [
        ("none", GrpcCompression::None),
        ("gzip", GrpcCompression::Gzip),
        ("zstd", GrpcCompression::Zstd),
    ] {
        let cfg: OtlpGrpcConfig = ctx("otlp")
            .config(&node(&format!("compression: {text}")))
            .unwrap();
        assert_eq!(cfg.compression, want);
    }
    assert!(
        ctx("otlp")
            .config::<OtlpGrpcConfig>(&node("compression: deflate"))
            .is_err()
    );
    assert!(build("endpoint: h:1\nheaders: {x-api-key: abc, x-num: 7}").is_ok());
    let e = build_err(build("endpoint: h:1\nheaders: {\"bad key\": v}"));
    assert!(e.starts_with("exporters.otlp.headers.bad key"), "{e}");
    assert!(build_err(build("endpoint: h:1\nheaders: {k: \"caf\u{e9}\"}")).contains("metadata"));
    assert!(build_err(build("endpoint: h:1\nheaders: {k-bin: v}")).contains("k-bin"));
}

#[test]
fn status_mapping_follows_the_collector() {
    let retry_info = |code| {
        Status::with_error_details(
            code,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
        )
    };
    let delay = |e: ExportError| match e {
        ExportError::Retryable { delay, .. } => delay,
        ExportError::Permanent { reason } | ExportError::Undecodable { reason } => {
            panic!("permanent: {reason}")
        }
    };
    assert_eq!(delay(map_status(&Status::unavailable("down"))), None);
    assert_eq!(
        delay(map_status(&retry_info(Code::Unavailable))),
        Some(Duration::from_secs(3))
    );
    assert_eq!(
        delay(map_status(&retry_info(Code::ResourceExhausted))),
        Some(Duration::from_secs(3))
    );
    for code in [
        Code::Cancelled,
        Code::DeadlineExceeded,
        Code::Aborted,
        Code::OutOfRange,
        Code::DataLoss,
    ] {
        assert!(
            matches!(
                map_status(&Status::new(code, "x")),
                ExportError::Retryable { .. }
            ),
            "{code:?}"
        );
    }
    for code in [
        Code::ResourceExhausted,
        Code::InvalidArgument,
        Code::Unauthenticated,
        Code::Unknown,
    ] {
        assert!(
            matches!(
                map_status(&Status::new(code, "x")),
                ExportError::Permanent { .. }
            ),
            "{code:?}"
        );
    }
    let e = map_status(&Status::invalid_argument("bad span"));
    assert!(e.to_string().contains("bad span"), "{e}");
}

#[test]
fn paths_name_each_service() {
    assert!(
        export_path(Signal::Metrics)
            .as_str()
            .contains("metrics.v1.MetricsService")
    );
    assert!(
        export_path(Signal::Logs)
            .as_str()
            .contains("logs.v1.LogsService")
    );
}

type Answer = Arc<dyn Fn() -> Result<Bytes, Status> + Send + Sync>;

struct Seen {
    path: String,
    encoding: Option<String>,
    api_key: Option<String>,
    body: Bytes,
}

#[derive(Clone)]
struct Shared {
    answer: Answer,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A raw-bytes OTLP service; `K` picks the service name (0 traces, 1 metrics).
#[derive(Clone)]
struct RawSvc<const K: usize>(Shared);

impl NamedService for RawSvc<0> {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl NamedService for RawSvc<1> {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}

struct Handler {
    shared: Shared,
    path: String,
    encoding: Option<String>,
}

impl UnaryService<Bytes> for Handler {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, Status>;

    fn call(&mut self, req: tonic::Request<Bytes>) -> Self::Future {
        let api_key = req
            .metadata()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        self.shared.seen.lock().unwrap().push(Seen {
            path: self.path.clone(),
            encoding: self.encoding.clone(),
            api_key,
            body: req.into_inner(),
        });
        let answer = (self.shared.answer)().map(tonic::Response::new);
        Box::pin(async move { answer })
    }
}

impl<const K: usize, B> Service<http::Request<B>> for RawSvc<K>
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let handler = Handler {
            shared: self.0.clone(),
            path: req.uri().path().to_string(),
            encoding: req
                .headers()
                .get("grpc-encoding")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
        };
        Box::pin(async move {
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            accept.enable(CompressionEncoding::Zstd);
            let mut grpc = Grpc::new(RawCodec)
                .apply_compression_config(accept, EnabledCompressionEncodings::default());
            Ok(grpc.unary(handler, req).await)
        })
    }
}

async fn serve(answer: Answer) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shared = Shared {
        answer,
        seen: seen.clone(),
    };
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let router = tonic::transport::Server::builder()
        .add_service(RawSvc::<0>(shared.clone()))
        .add_service(RawSvc::<1>(shared));
    tokio::spawn(router.serve_with_incoming(incoming));
    (addr, seen)
}

async fn started(yaml: &str) -> Arc<dyn Exporter> {
    let exporter = build(yaml).unwrap().exporter;
    exporter.start().await.unwrap();
    exporter
}

#[tokio::test]
async fn sends_the_payload_unchanged_with_gzip_and_headers() {
    let partial = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 1,
            error_message: "one too old".into(),
        }),
    };
    let body = Bytes::from(partial.encode_to_vec());
    let (addr, seen) = serve(Arc::new(move || Ok(body.clone()))).await;
    let exporter = started(&format!(
        "endpoint: {addr}\ntls: {{insecure: true}}\nheaders: {{x-api-key: k1}}"
    ))
    .await;
    let batch = trace_batch(5);
    exporter.export(&batch).await.unwrap();
    let metrics = Batch::new(Signal::Metrics, Bytes::from_static(b"\x0a\x00"), 0);
    exporter.export(&metrics).await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].path,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    );
    assert_eq!(seen[0].encoding.as_deref(), Some("gzip"));
    assert_eq!(seen[0].api_key.as_deref(), Some("k1"));
    assert_eq!(seen[0].body, batch.payload);
    assert_eq!(
        seen[1].path,
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
    );
    assert_eq!(&seen[1].body[..], b"\x0a\x00");
}

#[tokio::test]
async fn zstd_and_none_reach_the_server() {
    let (addr, seen) = serve(Arc::new(|| Ok(Bytes::new()))).await;
    for (c, want) in [("zstd", Some("zstd")), ("none", None)] {
        let exporter = started(&format!("endpoint: http://{addr}\ncompression: {c}")).await;
        exporter.export(&trace_batch(2)).await.unwrap();
        let last = seen.lock().unwrap().pop().unwrap();
        assert_eq!(last.encoding.as_deref(), want);
        assert_eq!(last.body, trace_batch(2).payload);
        // A batch of parts (what `batch` and the queue's batching make) arrives as the one request they form.
        let parts = Batch::concat(vec![trace_batch(2), trace_batch(3), trace_batch(1)]).unwrap();
        assert_eq!(parts.payload.parts().len(), 3);
        exporter.export(&parts).await.unwrap();
        let last = seen.lock().unwrap().pop().unwrap();
        assert_eq!(last.body, parts.payload.to_vec());
    }
}

#[tokio::test]
async fn server_errors_map_to_retryable_or_permanent() {
    let (addr, _) = serve(Arc::new(|| {
        Err(Status::with_error_details(
            Code::Unavailable,
            "overloaded",
            ErrorDetails::with_retry_info(Some(Duration::from_millis(1500))),
        ))
    }))
    .await;
    let exporter = started(&format!("endpoint: {addr}\ntls: {{insecure: true}}")).await;
    match exporter.export(&trace_batch(1)).await {
        Err(ExportError::Retryable { delay, reason }) => {
            assert_eq!(delay, Some(Duration::from_millis(1500)));
            assert!(reason.contains("overloaded"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    let (addr, _) = serve(Arc::new(|| Err(Status::invalid_argument("bad trace id")))).await;
    let exporter = started(&format!("endpoint: {addr}\ntls: {{insecure: true}}")).await;
    match exporter.export(&trace_batch(1)).await {
        Err(ExportError::Permanent { reason }) => {
            assert!(reason.contains("bad trace id"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dead_backend_starts_and_then_retries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let exporter = started(&format!(
        "endpoint: 127.0.0.1:{port}\ntls: {{insecure: true}}"
    ))
    .await;
    let err = exporter.export(&trace_batch(1)).await.unwrap_err();
    assert!(matches!(err, ExportError::Retryable { .. }), "{err:?}");
}

#[tokio::test]
async fn export_before_start_is_an_error_not_a_panic() {
    let exporter = build("endpoint: h:4317").unwrap().exporter;
    assert!(matches!(
        exporter.export(&trace_batch(1)).await,
        Err(ExportError::Permanent { .. })
    ));
}

#[tokio::test]
async fn tls_setups_start_lazily_and_a_missing_ca_file_fails_start() {
    for yaml in [
        "endpoint: otel.example.com:4317",
        "endpoint: https://127.0.0.1:1\ntls: {insecure_skip_verify: true}",
    ] {
        let e = build(yaml).unwrap().exporter;
        e.start().await.unwrap();
    }
    let e = build("endpoint: h:4317\ntls: {ca_file: /nonexistent/ca.pem}")
        .unwrap()
        .exporter;
    let err = e.start().await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

/// `compression: none` takes the zero-copy path (grpc_unary.rs): same metadata, same error mapping.
#[tokio::test]
async fn uncompressed_zero_copy_path_keeps_headers_errors_and_dead_backend_semantics() {
    let (addr, seen) = serve(Arc::new(|| Ok(Bytes::new()))).await;
    let exporter = started(&format!(
        "endpoint: http://{addr}\ncompression: none\nheaders: {{x-api-key: k2}}"
    ))
    .await;
    let batch = trace_batch(7);
    exporter.export(&batch).await.unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].api_key.as_deref(), Some("k2"));
        assert_eq!(seen[0].body, batch.payload);
    }

    let (addr, _) = serve(Arc::new(|| {
        Err(Status::with_error_details(
            Code::Unavailable,
            "overloaded",
            ErrorDetails::with_retry_info(Some(Duration::from_millis(1500))),
        ))
    }))
    .await;
    let exporter = started(&format!("endpoint: http://{addr}\ncompression: none")).await;
    match exporter.export(&trace_batch(1)).await {
        Err(ExportError::Retryable { delay, reason }) => {
            assert_eq!(delay, Some(Duration::from_millis(1500)));
            assert!(reason.contains("overloaded"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let (addr, _) = serve(Arc::new(|| Err(Status::invalid_argument("bad trace id")))).await;
    let exporter = started(&format!("endpoint: http://{addr}\ncompression: none")).await;
    assert!(matches!(
        exporter.export(&trace_batch(1)).await,
        Err(ExportError::Permanent { reason }) if reason.contains("bad trace id")
    ));
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let exporter = started(&format!(
        "endpoint: http://127.0.0.1:{port}\ncompression: none"
    ))
    .await;
    let err = exporter.export(&trace_batch(1)).await.unwrap_err();
    assert!(matches!(err, ExportError::Retryable { .. }), "{err:?}");
}

#[tokio::test]
async fn auth_authenticator_sends_its_metadata_compressed_or_not() {
    use crate::exporter::test_util::{TestClientAuth, ctx_with_auth};
    let (addr, seen) = serve(Arc::new(|| Ok(Bytes::new()))).await;
    let auth = Arc::new(TestClientAuth {
        header: "x-api-key",
        token: Mutex::new(Some("one")),
    });
    for c in ["gzip", "none"] {
        let yaml = format!(
            "endpoint: http://{addr}\ncompression: {c}\nheaders: {{x-api-key: static, x-other: o}}\nauth: {{authenticator: bearertokenauth}}"
        );
        let e = OtlpGrpcExporterFactory
            .build(&ctx_with_auth("otlp", auth.clone()), &node(&yaml))
            .unwrap()
            .exporter;
        e.start().await.unwrap();
        e.export(&trace_batch(1)).await.unwrap();
        *auth.token.lock().unwrap() = Some("two");
        e.export(&trace_batch(1)).await.unwrap();
        *auth.token.lock().unwrap() = Some("one");
    }
    let keys: Vec<Option<String>> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.api_key.clone())
        .collect();
    let want = |t: &str| Some(format!("Bearer {t}"));
    assert_eq!(keys, [want("one"), want("two"), want("one"), want("two")]);
    *auth.token.lock().unwrap() = None;
    let e = OtlpGrpcExporterFactory
        .build(
            &ctx_with_auth("otlp", auth.clone()),
            &node(&format!(
                "endpoint: http://{addr}\nauth: {{authenticator: bearertokenauth}}"
            )),
        )
        .unwrap()
        .exporter;
    e.start().await.unwrap();
    assert!(matches!(
        e.export(&trace_batch(1)).await,
        Err(ExportError::Retryable { .. })
    ));
    let e = build_err(build(
        "endpoint: h:4317\nauth: {authenticator: bearertokenauth}",
    ));
    assert!(e.starts_with("exporters.otlp.auth.authenticator"), "{e}");
}
