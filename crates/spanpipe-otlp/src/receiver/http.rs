//! OTLP/HTTP: `POST` protobuf or JSON bodies (optionally gzip/zstd/deflate) to one path per signal, over HTTP/1.1
//! or cleartext HTTP/2, answered as the OTLP specification says (status codes, `google.rpc.Status` bodies,
//! `Retry-After`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use spanpipe_core::Signal;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::auth::{PeerAddr, ReceiverAuth};
use super::config::HttpConfig;
use super::cors::Cors;
use super::ingest::{Admitted, Door, Ingest, Partial, metadata_from_headers};
use super::status::ReceiveError;
use crate::compression::{self, Compression, DecompressError};
use crate::json::json_to_protobuf;
use spanpipe_net::TlsServer;
use spanpipe_net::server::{self, ConnLimits, Server};

/// Bodies at least this large are decompressed/converted on the blocking pool, so one big request does not stall
/// the other connections served by the same runtime thread.
const BLOCKING_BODY: usize = 256 << 10;
/// The same for JSON, which converts ~30x slower than protobuf scans.
const BLOCKING_JSON_BODY: usize = 16 << 10;

/// The body formats OTLP/HTTP defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf`: passed on as received.
    Protobuf,
    /// `application/json`: converted to protobuf.
    Json,
}

impl Format {
    /// From `Content-Type`, ignoring parameters such as `; charset=utf-8`.
    pub fn from_headers(headers: &HeaderMap) -> Option<Format> {
        let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let essence = value.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Format::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Format::Json)
        } else {
            None
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// What the HTTP server needs per request.
pub struct HttpState {
    routes: [(String, Signal); 3],
    max_body: usize,
    include_metadata: bool,
    ingest: Arc<Ingest>,
    auth: Option<Arc<ReceiverAuth>>,
    limits: ConnLimits,
    max_concurrent_streams: Option<u32>,
    cors: Option<Cors>,
    /// `compression_algorithms`, lowercased (`""`: no encoding); `None`: all.
    encodings: Option<Vec<String>>,
}

impl HttpState {
    /// Resolves the config once, so requests only compare paths and read plain fields.
    pub fn new(
        cfg: &HttpConfig,
        ingest: Arc<Ingest>,
        auth: Option<Arc<ReceiverAuth>>,
    ) -> Arc<Self> {
        let header = cfg.read_header_timeout.0;
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        Arc::new(HttpState {
            routes: [
                (cfg.traces_url_path.clone(), Signal::Traces),
                (cfg.metrics_url_path.clone(), Signal::Metrics),
                (cfg.logs_url_path.clone(), Signal::Logs),
            ],
            max_body: usize::try_from(cfg.max_request_body_size.0).unwrap_or(usize::MAX),
            include_metadata: cfg.include_metadata,
            ingest,
            auth,
            limits: ConnLimits {
                max_connections: cfg.max_connections,
                handshake_timeout: nonzero(header),
                first_request_timeout: nonzero(header),
                idle_timeout: nonzero(cfg.idle_timeout.0),
                max_age: None,
                max_age_grace: None,
            },
            max_concurrent_streams: (cfg.max_concurrent_streams > 0)
                .then_some(cfg.max_concurrent_streams),
            // Checked when the config was validated.
            cors: Cors::new(&cfg.cors).ok().flatten(),
            encodings: cfg
                .compression_algorithms
                .as_ref()
                .map(|l| l.iter().map(|n| n.to_ascii_lowercase()).collect()),
        })
    }
}

/// Serves OTLP/HTTP on `listener` (HTTPS with `tls`) until `stop`, then lets in-flight requests finish for up to
/// `grace` and closes the rest.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    tls: Option<Arc<TlsServer>>,
    stop: CancellationToken,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(state.limits.handshake_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(state.max_concurrent_streams);
    let limits = state.limits.clone();
    let handler = state.clone();
    let service = service_fn(move |req| {
        let state = handler.clone();
        async move { Ok::<_, Infallible>(handle(&state, req).await) }
    });
    let server = Arc::new(Server {
        name: "OTLP/HTTP",
        builder,
        service,
        tls,
        limits,
    });
    server::serve(listener, server, stop, grace).await;
}

/// Answers one request; never fails (every error becomes an OTLP error response). With `cors`, a preflight is
/// answered before anything else (browsers send no credentials on it) and every answer carries the CORS headers.
pub async fn handle<B>(state: &HttpState, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let Some(cors) = &state.cors else {
        return handle_otlp(state, req).await;
    };
    if Cors::is_preflight(req.method(), req.headers()) {
        return cors.preflight(req.headers());
    }
    let origin = cors.allowed_origin(req.headers());
    let mut response = handle_otlp(state, req).await;
    cors.decorate(origin, &mut response);
    response
}

async fn handle_otlp<B>(state: &HttpState, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let request_format = Format::from_headers(req.headers());
    if let Some(auth) = &state.auth
        && let Err(e) = auth.check(req.headers(), req.extensions().get::<PeerAddr>())
    {
        return error_response(&e, request_format == Some(Format::Json));
    }
    let started = std::time::Instant::now();
    let answer = match process(state, req).await {
        Ok((format, signal, partial)) => {
            let body = match format {
                Format::Protobuf => Bytes::from(partial.encode()),
                Format::Json => Bytes::from(partial.json(signal)),
            };
            response(StatusCode::OK, format, body)
        }
        Err(e) => error_response(&e, request_format == Some(Format::Json)),
    };
    state.ingest.observe(started);
    answer
}

async fn process<B>(
    state: &HttpState,
    req: Request<B>,
) -> Result<(Format, Signal, Partial), ReceiveError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let signal = state
        .routes
        .iter()
        .find(|(path, _)| path == req.uri().path())
        .map(|(_, s)| *s)
        .ok_or_else(|| ReceiveError::NotFound("no OTLP endpoint at this path".into()))?;
    state.ingest.check_signal(signal)?;
    if req.method() != Method::POST {
        return Err(ReceiveError::MethodNotAllowed);
    }
    let format = Format::from_headers(req.headers()).ok_or_else(|| {
        ReceiveError::Unsupported(
            "unsupported Content-Type; use application/x-protobuf or application/json".into(),
        )
    })?;
    let compression = match req.headers().get(CONTENT_ENCODING) {
        None => Compression::None,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(Compression::from_header)
            .ok_or_else(|| {
                ReceiveError::Unsupported(
                    "unsupported Content-Encoding; use gzip, zstd, deflate or identity".into(),
                )
            })?,
    };
    if let Some(allowed) = &state.encodings {
        let name = req
            .headers()
            .get(CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| v != "identity")
            .unwrap_or_default();
        if !allowed.contains(&name) {
            return Err(ReceiveError::Unsupported(format!(
                "Content-Encoding {name:?} is not in compression_algorithms"
            )));
        }
    }
    let too_large =
        || ReceiveError::TooLarge(format!("request body exceeds {} bytes", state.max_body));
    // Content-Length, when sent, is the lower bound of the size hint: refuse before reading anything.
    if req.body().size_hint().lower() > state.max_body as u64 {
        return Err(too_large());
    }
    let (mut parts, body) = req.into_parts();
    let metadata = if state.include_metadata {
        ReceiverAuth::strip(state.auth.as_ref(), &mut parts.headers);
        metadata_from_headers(&parts.headers)
    } else {
        Default::default()
    };
    let body = match Limited::new(body, state.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => {
            return Err(ReceiveError::Invalid(format!(
                "could not read the request body: {e}"
            )));
        }
    };
    let limit = state.max_body;
    let blocking =
        body.len() >= BLOCKING_BODY || (format == Format::Json && body.len() >= BLOCKING_JSON_BODY);
    let door = state.ingest.door;
    let admitted = if blocking {
        tokio::task::spawn_blocking(move || decode(signal, format, compression, body, limit, door))
            .await
            .map_err(|_| ReceiveError::Invalid("could not decode the request".into()))?
    } else {
        decode(signal, format, compression, body, limit, door)
    }
    .inspect_err(|e| state.ingest.count_refused(signal, e))?;
    let partial = state.ingest.deliver(signal, admitted, metadata).await?;
    Ok((format, signal, partial))
}

/// Decompresses (capped at `limit`), converts JSON to protobuf, then passes the `door` (the same check for both
/// formats and transports). An uncompressed valid protobuf body is passed on as the same `Bytes` it arrived in.
pub fn decode(
    signal: Signal,
    format: Format,
    compression: Compression,
    body: Bytes,
    limit: usize,
    door: Door,
) -> Result<Admitted, ReceiveError> {
    let raw = match compression {
        Compression::None => body,
        c => compression::decompress(c, &body, limit)
            .map(Bytes::from)
            .map_err(|e| match e {
                DecompressError::TooLarge(_) => ReceiveError::TooLarge(e.to_string()),
                DecompressError::Invalid(_) => ReceiveError::Invalid(e.to_string()),
            })?,
    };
    let encoded = match format {
        Format::Protobuf => raw,
        Format::Json => json_to_protobuf(signal, &raw)
            .map(|(encoded, _)| Bytes::from(encoded))
            .map_err(|e| ReceiveError::Invalid(e.to_string()))?,
    };
    door.admit(signal, encoded)
}

fn response(status: StatusCode, format: Format, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    resp
}

/// The OTLP/HTTP error answer: status, `google.rpc.Status` body encoded like the request (protobuf unless the
/// request was JSON), `Allow` for 405 and `Retry-After` for 503.
fn error_response(e: &ReceiveError, json: bool) -> Response<Full<Bytes>> {
    let format = if json { Format::Json } else { Format::Protobuf };
    let mut resp = response(e.http_status(), format, Bytes::from(e.http_body(json)));
    if *e == ReceiveError::MethodNotAllowed {
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
    }
    if let Some(secs) = e.retry_after_secs() {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
