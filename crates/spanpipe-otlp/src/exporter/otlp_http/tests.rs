//! Config tests, and error mapping against an in-process hyper server whose answer depends on the path prefix.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Mutex;

use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::*;
use crate::compression::decompress;
use crate::exporter::test_util::{build_err, ctx, node, trace_batch};

fn cfg(yaml: &str) -> OtlpHttpConfig {
    ctx("otlp_http").config(&node(yaml)).unwrap()
}

fn build(yaml: &str) -> Result<BuiltExporter, ConfigError> {
    OtlpHttpExporterFactory.build(&ctx("otlp_http"), &node(yaml))
}

fn url(u: &Option<reqwest::Url>) -> &str {
    u.as_ref().map(|u| u.as_str()).unwrap_or("-")
}

#[test]
fn defaults_and_unknown_fields() {
    let c = cfg("endpoint: http://h:4318");
    assert_eq!(c.encoding, Encoding::Proto);
    assert_eq!(c.compression, Compression::Gzip);
    assert_eq!(c.timeout.0, Duration::from_secs(30));
    assert_eq!(
        build("endpoint: http://h:4318").unwrap().settings.timeout,
        Duration::from_secs(30)
    );
    assert!(build_err(build("endpoint: http://h\nencodng: json")).contains("encodng"));
    assert!(build_err(build("endpoint: http://h\ntls: {cafile: x}")).contains("cafile"));
}

#[test]
fn url_credentials_and_an_authorization_header_are_not_both_accepted() {
    let err = build_err(build(
        "endpoint: https://u:p@h:4318\nheaders: {Authorization: Bearer t}",
    ));
    assert!(
        err.contains("endpoint") && err.contains("keep only one"),
        "{err}"
    );
    assert!(build("endpoint: https://u:p@h:4318").is_ok());
    assert!(build("endpoint: https://h:4318\nheaders: {Authorization: Bearer t}").is_ok());
}

#[test]
fn endpoints_are_joined_and_per_signal_urls_win() {
    let urls = cfg("endpoint: http://h:4318/").urls().unwrap();
    assert_eq!(url(&urls[0]), "http://h:4318/v1/traces");
    assert_eq!(url(&urls[1]), "http://h:4318/v1/metrics");
    assert_eq!(url(&urls[2]), "http://h:4318/v1/logs");
    let urls = cfg("endpoint: https://h/otlp\ntraces_endpoint: https://t/custom")
        .urls()
        .unwrap();
    assert_eq!(url(&urls[0]), "https://t/custom");
    assert_eq!(url(&urls[2]), "https://h/otlp/v1/logs");
    let urls = cfg("logs_endpoint: http://l/x").urls().unwrap();
    assert!(urls[0].is_none() && urls[1].is_none());
    assert_eq!(url(&urls[2]), "http://l/x");
}

#[test]
fn missing_or_bad_endpoints_are_validation_errors() {
    assert!(
        build_err(build("encoding: json")).starts_with("exporters.otlp_http.endpoint: is required")
    );
    assert!(build_err(build("endpoint: h:4318")).starts_with("exporters.otlp_http.endpoint"));
    assert!(
        build_err(build("endpoint: http://h\nmetrics_endpoint: nope")).contains("metrics_endpoint")
    );
}

#[test]
fn compression_encoding_and_headers_parse() {
    for (t, want) in [
        ("gzip", Compression::Gzip),
        ("zstd", Compression::Zstd),
        ("deflate", Compression::Deflate),
        ("none", Compression::None),
    ] {
        assert_eq!(cfg(&format!("compression: {t}")).compression, want);
    }
    assert_eq!(cfg("encoding: json").encoding, Encoding::Json);
    assert!(
        ctx("x")
            .config::<OtlpHttpConfig>(&node("compression: br"))
            .is_err()
    );
    assert!(build("endpoint: http://h\nheaders: {Authorization: Bearer x}").is_ok());
    let e = build_err(build("endpoint: http://h\nheaders: {\"a b\": x}"));
    assert!(e.starts_with("exporters.otlp_http.headers.a b"), "{e}");
}

#[test]
fn retry_after_reads_seconds_and_dates() {
    let now = SystemTime::now();
    let mut h = http::HeaderMap::new();
    assert_eq!(retry_after(&h, now), None);
    h.insert(RETRY_AFTER, "7".parse().unwrap());
    assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
    let later = httpdate::fmt_http_date(now + Duration::from_secs(20));
    h.insert(RETRY_AFTER, later.parse().unwrap());
    let d = retry_after(&h, now).unwrap();
    assert!(
        d <= Duration::from_secs(20) && d >= Duration::from_secs(18),
        "{d:?}"
    );
    h.insert(
        RETRY_AFTER,
        "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
    );
    assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
    h.insert(RETRY_AFTER, "soon".parse().unwrap());
    assert_eq!(retry_after(&h, now), None);
}

#[test]
fn error_snippets_are_capped() {
    let long = "x".repeat(1000);
    let d = error_detail(
        reqwest::StatusCode::BAD_REQUEST,
        "text/plain",
        long.as_bytes(),
    );
    assert_eq!(d.len(), ERROR_SNIPPET_CHARS + 3);
    let d = error_detail(reqwest::StatusCode::BAD_REQUEST, "", b"");
    assert_eq!(d, "Bad Request");
}

struct Recorded {
    path: String,
    content_type: String,
    encoding: Option<String>,
    api_key: Option<String>,
    content_length: Option<String>,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Recorded>>>;

async fn handle(req: Request<Incoming>, log: Log) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let (content_type, encoding, api_key, content_length) = (
        header("content-type").unwrap_or_default(),
        header("content-encoding"),
        header("x-api-key"),
        header("content-length"),
    );
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    log.lock().unwrap().push(Recorded {
        path: path.clone(),
        content_type,
        encoding,
        api_key,
        content_length,
        body,
    });
    let answer = |code: u16, body: Bytes| {
        Response::builder()
            .status(code)
            .body(Full::new(body))
            .unwrap()
    };
    let mut resp = match path.split('/').nth(1).unwrap_or("") {
        "s200" => answer(200, Bytes::new()),
        "s400" => answer(400, Bytes::from_static(b"invalid span: trace id is empty")),
        "s400pb" => {
            let s = tonic_types::Status {
                code: 3,
                message: "bad proto".into(),
                details: vec![],
            };
            let mut r = answer(400, Bytes::from(s.encode_to_vec()));
            r.headers_mut()
                .insert(CONTENT_TYPE, "application/x-protobuf".parse().unwrap());
            r
        }
        "s429" => {
            let mut r = answer(429, Bytes::new());
            r.headers_mut().insert(RETRY_AFTER, "2".parse().unwrap());
            r
        }
        "s503" => {
            let mut r = answer(503, Bytes::new());
            let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(10));
            r.headers_mut().insert(RETRY_AFTER, at.parse().unwrap());
            r
        }
        _ => answer(500, Bytes::from_static(b"internal error")),
    };
    resp.headers_mut()
        .entry(CONTENT_TYPE)
        .or_insert("text/plain".parse().unwrap());
    Ok(resp)
}

async fn serve() -> (SocketAddr, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let l = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let l = l.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(req, l.clone()));
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    (addr, log)
}

async fn started(yaml: &str) -> Arc<dyn Exporter> {
    let e = build(yaml).unwrap().exporter;
    e.start().await.unwrap();
    e
}

#[tokio::test]
async fn status_codes_map_to_retryable_and_permanent() {
    let (addr, _) = serve().await;
    let export = |prefix: &'static str| async move {
        started(&format!("endpoint: http://{addr}/{prefix}"))
            .await
            .export(&trace_batch(2))
            .await
    };
    assert!(export("s200").await.is_ok());
    match export("s400").await {
        Err(ExportError::Permanent { reason }) => {
            assert!(reason.starts_with("http 400: invalid span"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    match export("s400pb").await {
        Err(ExportError::Permanent { reason }) => assert_eq!(reason, "http 400: bad proto"),
        other => panic!("{other:?}"),
    }
    match export("s429").await {
        Err(ExportError::Retryable { delay, .. }) => {
            assert_eq!(delay, Some(Duration::from_secs(2)))
        }
        other => panic!("{other:?}"),
    }
    match export("s503").await {
        Err(ExportError::Retryable { delay: Some(d), .. }) => {
            assert!(
                d > Duration::from_secs(7) && d <= Duration::from_secs(10),
                "{d:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    match export("s500").await {
        Err(ExportError::Permanent { reason }) => {
            assert!(reason.contains("500: internal error"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn proto_bodies_are_the_payload_and_json_is_otlp_json() {
    let (addr, log) = serve().await;
    let batch = trace_batch(3);
    let e = started(&format!(
        "endpoint: http://{addr}/s200/\nheaders: {{x-api-key: k}}"
    ))
    .await;
    e.export(&batch).await.unwrap();
    let e = started(&format!(
        "traces_endpoint: http://{addr}/s200/raw\ncompression: none\nencoding: json"
    ))
    .await;
    e.export(&batch).await.unwrap();

    let log = log.lock().unwrap();
    assert_eq!(log[0].path, "/s200/v1/traces");
    assert_eq!(log[0].content_type, "application/x-protobuf");
    assert_eq!(log[0].encoding.as_deref(), Some("gzip"));
    assert_eq!(log[0].api_key.as_deref(), Some("k"));
    assert_eq!(
        decompress(Compression::Gzip, &log[0].body, 1 << 20).unwrap(),
        batch.payload.to_vec()
    );
    assert_eq!(log[1].path, "/s200/raw");
    assert_eq!(log[1].content_type, "application/json");
    assert_eq!(log[1].encoding, None);
    let v: serde_json::Value = serde_json::from_slice(&log[1].body).unwrap();
    assert_eq!(
        v["resourceSpans"][0]["scopeSpans"][0]["spans"][2]["spanId"],
        "00000000000000ac"
    );
    let decoded = ExportTraceServiceRequest::decode(batch.payload.to_bytes()).unwrap();
    assert_eq!(
        v["resourceSpans"].as_array().unwrap().len(),
        decoded.resource_spans.len()
    );
}

#[tokio::test]
async fn a_batch_of_parts_goes_out_as_one_body_with_its_length() {
    let (addr, log) = serve().await;
    let batch = Batch::concat(vec![trace_batch(3), trace_batch(2)]).unwrap();
    assert_eq!(batch.payload.parts().len(), 2);
    let plain = started(&format!(
        "endpoint: http://{addr}/s200/
compression: none"
    ))
    .await;
    plain.export(&batch).await.unwrap();
    let zipped = started(&format!(
        "endpoint: http://{addr}/s200/
compression: zstd"
    ))
    .await;
    zipped.export(&batch).await.unwrap();

    let log = log.lock().unwrap();
    let whole = batch.payload.to_vec();
    assert_eq!(log[0].body, whole);
    assert_eq!(log[0].content_length, Some(whole.len().to_string()));
    let req = ExportTraceServiceRequest::decode(log[0].body.clone()).unwrap();
    assert_eq!(req.resource_spans.len(), 2);
    assert_eq!(
        decompress(Compression::Zstd, &log[1].body, 1 << 20).unwrap(),
        whole
    );
}

#[tokio::test]
async fn missing_signal_endpoint_and_dead_backend() {
    let e = started("logs_endpoint: http://127.0.0.1:9/x").await;
    assert!(matches!(
        e.export(&trace_batch(1)).await,
        Err(ExportError::Permanent { .. })
    ));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = started(&format!("endpoint: http://127.0.0.1:{port}")).await;
    let err = e.export(&trace_batch(1)).await.unwrap_err();
    assert!(matches!(err, ExportError::Retryable { .. }), "{err:?}");
}

#[tokio::test]
async fn tls_options_build_clients_and_a_missing_ca_file_fails_start() {
    let e = build("endpoint: https://h\ntls: {insecure_skip_verify: true}")
        .unwrap()
        .exporter;
    e.start().await.unwrap();
    let e = build("endpoint: https://h\ntls: {ca_file: /nonexistent/ca.pem}")
        .unwrap()
        .exporter;
    let err = e.start().await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    assert!(
        build_err(build(
            "endpoint: https://h\ntls: {ca_file: x, insecure_skip_verify: true}"
        ))
        .contains("ca_file")
    );
}

#[tokio::test]
async fn auth_authenticator_puts_its_header_on_every_request() {
    use crate::exporter::test_util::{TestClientAuth, ctx_with_auth};
    let (addr, log) = serve().await;
    let auth = Arc::new(TestClientAuth {
        header: "x-api-key",
        token: Mutex::new(Some("one")),
    });
    let build_with = |yaml: &str| {
        OtlpHttpExporterFactory.build(&ctx_with_auth("otlp_http", auth.clone()), &node(yaml))
    };
    let yaml = format!(
        "endpoint: http://{addr}/s200\nheaders: {{x-api-key: static}}\nauth: {{authenticator: bearertokenauth}}"
    );
    let e = build_with(&yaml).unwrap().exporter;
    e.start().await.unwrap();
    e.export(&trace_batch(1)).await.unwrap();
    *auth.token.lock().unwrap() = Some("two");
    e.export(&trace_batch(1)).await.unwrap();
    let keys: Vec<Option<String>> = log
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.api_key.clone())
        .collect();
    assert_eq!(
        keys,
        [
            Some("Bearer one".to_string()),
            Some("Bearer two".to_string())
        ],
        "the authenticator's header wins over `headers` and follows rotation"
    );
    *auth.token.lock().unwrap() = None;
    match e.export(&trace_batch(1)).await {
        Err(ExportError::Retryable { reason, .. }) => {
            assert!(
                reason.contains("client auth: token file /t is empty"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    let not_auth = build_err(build_with(&format!(
        "endpoint: http://{addr}\nauth: {{authenticator: health_check}}"
    )));
    assert!(
        not_auth.starts_with("exporters.otlp_http.auth.authenticator: extension \"health_check\" cannot authenticate outgoing requests"),
        "{not_auth}"
    );
    let missing = build_err(build(&format!(
        "endpoint: http://{addr}\nauth: {{authenticator: bearertokenauth}}"
    )));
    assert!(missing.contains("is not defined"), "{missing}");
    let both = build_err(build_with(
        "endpoint: http://u:p@h\nauth: {authenticator: bearertokenauth}",
    ));
    assert!(both.contains("keep only one"), "{both}");
}
