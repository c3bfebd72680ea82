//! The sink's OTLP/HTTP trace endpoint: `POST /v1/traces` with `application/x-protobuf` (gzip/zstd/deflate
//! bodies accepted), over HTTP/1.1 or h2c; scripted faults answer instead when `--fault` says so.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use spanpipe_otlp::compression::{Compression, decompress};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::counter::Counter;
use super::faults::{Action, Faults, RetryAfter};
use super::listen::{self, ConnKill};

/// Accepts connections until `stop` (closing the port while the fault script says "down").
pub async fn serve(
    listener: TcpListener,
    counter: Arc<Counter>,
    faults: Arc<Faults>,
    max_request: usize,
    stop: CancellationToken,
) {
    let f = faults.clone();
    listen::serve(listener, faults, stop, move |stream, kill| {
        let (counter, faults) = (counter.clone(), f.clone());
        async move {
            let svc = service_fn(move |req| {
                handle(
                    req,
                    counter.clone(),
                    faults.clone(),
                    kill.clone(),
                    max_request,
                )
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        }
    })
    .await;
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn handle(
    req: Request<Incoming>,
    counter: Arc<Counter>,
    faults: Arc<Faults>,
    kill: ConnKill,
    max: usize,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/v1/traces" {
        return Ok(reply(StatusCode::NOT_FOUND, "not found"));
    }
    if req.method() != Method::POST {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "use POST"));
    }
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .unwrap_or("")
    };
    if !header(header::CONTENT_TYPE).starts_with("application/x-protobuf") {
        return Ok(reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the sink reads application/x-protobuf only",
        ));
    }
    let Some(encoding) = Compression::from_header(header(header::CONTENT_ENCODING)) else {
        return Ok(reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content-encoding",
        ));
    };
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large or broken",
            ));
        }
    };
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match faults.on_request() {
        Action::Ok => {}
        Action::Reset => {
            kill.cancel();
            // The connection task drops this handler with the connection.
            std::future::pending::<()>().await;
        }
        Action::Status {
            http, retry_after, ..
        } => return Ok(fault_reply(http, retry_after)),
    }
    let ingested = match encoding {
        Compression::None => counter.ingest(&body),
        c => match decompress(c, &body, max) {
            Ok(plain) => counter.ingest(&plain),
            Err(e) => Err(e.to_string()),
        },
    };
    Ok(match ingested {
        Ok(()) => {
            // An empty ExportTraceServiceResponse encodes to zero bytes.
            let mut r = reply(StatusCode::OK, "");
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/x-protobuf"),
            );
            r
        }
        Err(_) => reply(StatusCode::BAD_REQUEST, "invalid ExportTraceServiceRequest"),
    })
}

/// A scripted error answer, with `Retry-After` as asked.
fn fault_reply(status: u16, retry_after: Option<RetryAfter>) -> Response<Full<Bytes>> {
    let mut r = reply(
        StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        "scripted fault",
    );
    let value = match retry_after {
        None => return r,
        Some(RetryAfter::Secs(n)) => n.to_string(),
        Some(RetryAfter::Date(n)) => {
            httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(n))
        }
    };
    if let Ok(v) = http::HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}
