//! One connection to the collector, gRPC (tonic with the raw-bytes codec, so no prost encode) or HTTP/1.1
//! (hyper, one connection with one request at a time: keep-alive as OTel SDK exporters do).

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use spanpipe_otlp::compression::{Compression, compress};
use spanpipe_otlp::grpc_codec::RawCodec;
use tokio::net::TcpStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use crate::args::{CompressionArg, Protocol, SendArgs};

const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Response bodies are tiny (an empty `ExportTraceServiceResponse` or a `Status`); read at most this much.
const MAX_RESPONSE: usize = 1 << 20;

/// Why a request was not acknowledged: a label for the summary (status code name, HTTP status, `transport`) and
/// whether it is worth another attempt.
#[derive(Debug)]
pub struct Failure {
    pub label: String,
    pub retryable: bool,
}

impl Failure {
    pub fn retryable(label: impl Into<String>) -> Self {
        Failure {
            label: label.into(),
            retryable: true,
        }
    }

    pub fn permanent(label: impl Into<String>) -> Self {
        Failure {
            label: label.into(),
            retryable: false,
        }
    }
}

pub enum Client {
    Grpc(tonic::client::Grpc<Channel>),
    Http(HttpClient),
}

pub struct HttpClient {
    addr: String,
    uri: Uri,
    host: HeaderValue,
    encoding: Option<&'static str>,
    compression: Compression,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    /// Opens one connection now, so a wrong endpoint fails the run at once rather than request by request.
    pub async fn connect(args: &SendArgs) -> anyhow::Result<Client> {
        match args.protocol {
            Protocol::Grpc => {
                let channel = Endpoint::from_shared(format!("http://{}", args.endpoint))
                    .context("invalid endpoint")?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .connect()
                    .await?;
                let mut grpc =
                    tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_RESPONSE);
                grpc = match args.compression {
                    CompressionArg::None => grpc,
                    CompressionArg::Gzip => grpc.send_compressed(CompressionEncoding::Gzip),
                    CompressionArg::Zstd => grpc.send_compressed(CompressionEncoding::Zstd),
                };
                Ok(Client::Grpc(grpc))
            }
            Protocol::Http => {
                let compression = match args.compression {
                    CompressionArg::None => Compression::None,
                    CompressionArg::Gzip => Compression::Gzip,
                    CompressionArg::Zstd => Compression::Zstd,
                };
                let mut c = HttpClient {
                    addr: args.endpoint.clone(),
                    uri: format!("http://{}/v1/traces", args.endpoint)
                        .parse()
                        .context("invalid endpoint")?,
                    host: HeaderValue::from_str(&args.endpoint).context("invalid endpoint")?,
                    encoding: compression.header_value(),
                    compression,
                    sender: None,
                };
                c.sender = Some(c.open().await?);
                Ok(Client::Http(c))
            }
        }
    }

    /// The body as it goes on the wire: gRPC compresses inside tonic, HTTP here (once, not per retry).
    pub fn prepare(&self, body: Bytes) -> Bytes {
        match self {
            Client::Http(h) if h.compression != Compression::None => {
                match compress(h.compression, &body) {
                    Ok(c) => Bytes::from(c),
                    Err(_) => body,
                }
            }
            _ => body,
        }
    }

    /// Sends one export request and waits for its acknowledgement.
    pub async fn export(&mut self, body: Bytes) -> Result<(), Failure> {
        match self {
            Client::Grpc(grpc) => {
                grpc.ready()
                    .await
                    .map_err(|_| Failure::retryable("transport"))?;
                let path = PathAndQuery::from_static(GRPC_PATH);
                let res: Result<tonic::Response<Bytes>, tonic::Status> =
                    grpc.unary(tonic::Request::new(body), path, RawCodec).await;
                res.map(|_| ()).map_err(|s| grpc_failure(&s))
            }
            Client::Http(h) => h.export(body).await,
        }
    }
}

fn grpc_failure(s: &tonic::Status) -> Failure {
    use tonic::Code;
    let label = format!("{:?}", s.code());
    match s.code() {
        Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded | Code::Aborted => {
            Failure::retryable(label)
        }
        // tonic reports a broken connection as UNKNOWN with the transport error as its source.
        Code::Unknown if std::error::Error::source(s).is_some() => Failure::retryable("transport"),
        _ => Failure::permanent(label),
    }
}

impl HttpClient {
    async fn open(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .context("connect timed out")??;
        tcp.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        // The connection task ends when the sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn export(&mut self, body: Bytes) -> Result<(), Failure> {
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self
                .open()
                .await
                .map_err(|_| Failure::retryable("transport"))?,
        };
        sender
            .ready()
            .await
            .map_err(|_| Failure::retryable("transport"))?;
        let mut req = Request::post(self.uri.clone())
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "application/x-protobuf");
        if let Some(enc) = self.encoding {
            req = req.header(header::CONTENT_ENCODING, enc);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|_| Failure::permanent("bad_request"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|_| Failure::retryable("transport"))?;
        let status = resp.status();
        // Read the whole response so the connection can carry the next request.
        Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|_| Failure::retryable("transport"))?;
        self.sender = Some(sender);
        if status.is_success() {
            return Ok(());
        }
        let label = format!("http_{}", status.as_u16());
        match status {
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Err(Failure::retryable(label)),
            _ => Err(Failure::permanent(label)),
        }
    }
}
