//! The sink's OTLP/HTTP trace endpoint: `POST /v1/traces` with `application/x-protobuf` (gzip/zstd/deflate
//! bodies accepted), over HTTP/1.1 or h2c.

use std::convert::Infallible;
use std::sync::Arc;

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

/// Accepts connections until `stop`.
pub async fn serve(
    listener: TcpListener,
    counter: Arc<Counter>,
    max_request: usize,
    stop: CancellationToken,
) {
    // Bounded by `stop`, which fires at --max-duration at the latest.
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let counter = counter.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, counter.clone(), max_request));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn handle(
    req: Request<Incoming>,
    counter: Arc<Counter>,
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
