//! `otlp_http`: OTLP over HTTP (reqwest, one pooled client per exporter). With `encoding: proto` the batch's bytes
//! are sent as they are (compressed unless `compression: none`); `json` re-encodes through a full decode.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use serde::Deserialize;
use spanpipe_config::{ByteSize, Duration as ConfigDuration, Secret};
use spanpipe_core::retry::{classify_http, parse_retry_after};
use spanpipe_core::{
    Batch, BuildContext, BuiltExporter, ComponentError, ConfigError, ExportError, Exporter,
    ExporterFactory, ExporterSettings, Node, QueueSettings, RetrySettings, Signal, StartOnce,
};
use spanpipe_net::client::{PartsBody, TlsSettings, check_http_url, http_headers};
use spanpipe_net::compression::{Compression, compress_parts};

use super::client_auth::{ClientAuthSettings, http_header};
use super::endpoint::join_signal_path;
use super::partial::{PartialSuccessLog, rejected_from_json, rejected_from_protobuf};
use crate::json::protobuf_to_json;

/// How bodies are encoded on the wire.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// `application/x-protobuf`: the batch's bytes, no re-encoding.
    #[default]
    Proto,
    /// `application/json` (OTLP/JSON): a full decode and serialize per batch, for backends that need it.
    Json,
}

/// Configuration of the `otlp_http` exporter; names and defaults follow the OTel Collector's `otlphttp`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpHttpConfig {
    /// Base URL; `/v1/traces`, `/v1/metrics` and `/v1/logs` are appended.
    pub endpoint: Option<String>,
    /// Full URLs that win over `endpoint` for their signal.
    pub traces_endpoint: Option<String>,
    pub metrics_endpoint: Option<String>,
    pub logs_endpoint: Option<String>,
    pub encoding: Encoding,
    pub compression: Compression,
    pub headers: BTreeMap<String, Secret>,
    /// Client authentication through an authenticator extension (`auth: { authenticator: bearertokenauth }`).
    pub auth: Option<ClientAuthSettings>,
    pub tls: TlsSettings,
    pub timeout: ConfigDuration,
    pub sending_queue: QueueSettings,
    pub retry_on_failure: RetrySettings,
    /// The Collector's `confighttp` client tuning, accepted so its configs load; the client keeps its own
    /// pooling (idle connections are kept and reused per host).
    pub read_buffer_size: Option<ByteSize>,
    pub write_buffer_size: Option<ByteSize>,
    pub max_idle_conns: Option<u32>,
    pub max_idle_conns_per_host: Option<u32>,
    pub max_conns_per_host: Option<u32>,
    pub idle_conn_timeout: Option<ConfigDuration>,
    pub disable_keep_alives: bool,
    pub http2_read_idle_timeout: Option<ConfigDuration>,
    pub http2_ping_timeout: Option<ConfigDuration>,
    /// Only `""`: proxies come from `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` in the environment.
    pub proxy_url: String,
}

impl Default for OtlpHttpConfig {
    fn default() -> Self {
        OtlpHttpConfig {
            endpoint: None,
            traces_endpoint: None,
            metrics_endpoint: None,
            logs_endpoint: None,
            encoding: Encoding::Proto,
            compression: Compression::Gzip,
            headers: BTreeMap::new(),
            auth: None,
            tls: TlsSettings::default(),
            timeout: ConfigDuration(Duration::from_secs(30)),
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
            read_buffer_size: None,
            write_buffer_size: None,
            max_idle_conns: None,
            max_idle_conns_per_host: None,
            max_conns_per_host: None,
            idle_conn_timeout: None,
            disable_keep_alives: false,
            http2_read_idle_timeout: None,
            http2_ping_timeout: None,
            proxy_url: String::new(),
        }
    }
}

impl OtlpHttpConfig {
    /// The URL per signal (traces, metrics, logs); errors name the offending key.
    fn urls(&self) -> Result<[Option<reqwest::Url>; 3], (&'static str, String)> {
        if self.endpoint.is_none()
            && self.traces_endpoint.is_none()
            && self.metrics_endpoint.is_none()
            && self.logs_endpoint.is_none()
        {
            return Err((
                "endpoint",
                "is required (or traces_endpoint, metrics_endpoint, logs_endpoint)".into(),
            ));
        }
        let one = |key: &'static str, own: &Option<String>, signal: Signal| {
            let (key, url) = match (own, &self.endpoint) {
                (Some(u), _) => (key, u.clone()),
                (None, Some(base)) => ("endpoint", join_signal_path(base, signal)),
                (None, None) => return Ok(None),
            };
            check_http_url(&url).map(Some).map_err(|m| (key, m))
        };
        Ok([
            one("traces_endpoint", &self.traces_endpoint, Signal::Traces)?,
            one("metrics_endpoint", &self.metrics_endpoint, Signal::Metrics)?,
            one("logs_endpoint", &self.logs_endpoint, Signal::Logs)?,
        ])
    }
}

/// Builds `otlp_http` exporters.
pub struct OtlpHttpExporterFactory;

impl ExporterFactory for OtlpHttpExporterFactory {
    fn type_name(&self) -> &'static str {
        "otlp_http"
    }

    fn signals(&self) -> &'static [Signal] {
        super::ALL_SIGNALS
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<BuiltExporter, ConfigError> {
        let cfg: OtlpHttpConfig = ctx.config(node)?;
        if !cfg.proxy_url.is_empty() {
            return Err(ctx.invalid(
                node,
                &["proxy_url"],
                "is not supported: set HTTPS_PROXY / HTTP_PROXY (and NO_PROXY) in spanpipe's environment instead",
            ));
        }
        let urls = cfg.urls().map_err(|(k, m)| ctx.invalid(node, &[k], m))?;
        let headers =
            http_headers(&cfg.headers).map_err(|(k, m)| ctx.invalid(node, &["headers", &k], m))?;
        // The HTTP client turns `user:password@` into an `Authorization: Basic` header that silently replaces a
        // configured one: say so instead of picking one.
        let with_userinfo = urls
            .iter()
            .flatten()
            .any(|u| !u.username().is_empty() || u.password().is_some());
        if with_userinfo && headers.contains_key(http::header::AUTHORIZATION) {
            return Err(ctx.invalid(
                node,
                &["endpoint"],
                "has user:password@ credentials and `headers` sets authorization too: keep only one",
            ));
        }
        if with_userinfo && cfg.auth.is_some() {
            return Err(ctx.invalid(
                node,
                &["auth"],
                "the endpoint has user:password@ credentials too: keep only one",
            ));
        }
        if cfg.tls.ca_file.is_some() && cfg.tls.insecure_skip_verify {
            return Err(ctx.invalid(
                node,
                &["tls", "insecure_skip_verify"],
                "cannot be combined with ca_file",
            ));
        }
        let auth = super::client_auth::resolve(cfg.auth.as_ref(), ctx, node)?;
        let settings = ExporterSettings::new(
            ctx,
            node,
            cfg.sending_queue.clone(),
            cfg.retry_on_failure.clone(),
            cfg.timeout.0,
        )?;
        let exporter = OtlpHttpExporter {
            id: ctx.id.to_string(),
            urls,
            encoding: cfg.encoding,
            compression: cfg.compression,
            headers,
            auth,
            tls: cfg.tls,
            timeout: cfg.timeout.0,
            client: StartOnce::default(),
            partial: PartialSuccessLog::default(),
        };
        Ok(BuiltExporter {
            exporter: Arc::new(exporter),
            settings,
        })
    }
}

/// Sends batches to an OTLP/HTTP backend.
pub struct OtlpHttpExporter {
    id: String,
    /// Traces, metrics, logs.
    urls: [Option<reqwest::Url>; 3],
    encoding: Encoding,
    compression: Compression,
    headers: http::HeaderMap,
    /// Credentials per request (`auth.authenticator`); its header wins over a `headers` entry of the same name.
    auth: Option<Arc<dyn spanpipe_core::auth::ClientAuth>>,
    tls: TlsSettings,
    timeout: Duration,
    client: StartOnce<reqwest::Client>,
    partial: PartialSuccessLog,
}

/// Bodies above this are compressed on a blocking thread so a big batch does not stall the runtime.
const BLOCKING_COMPRESS_ABOVE: usize = 256 << 10;
/// How much of an answer body we read: enough for a partial success or an error message.
const MAX_ANSWER_BODY: usize = 64 << 10;
/// How much of an error body goes into the error message.
const ERROR_SNIPPET_CHARS: usize = 256;

impl OtlpHttpExporter {
    fn make_client(&self) -> Result<reqwest::Client, String> {
        self.tls.http_client(self.headers.clone(), self.timeout)
    }

    /// The request body: encoded as configured, then compressed. Uncompressed protobuf is the batch's own parts.
    async fn body(&self, batch: &Batch) -> Result<reqwest::Body, ExportError> {
        let parts: Vec<Bytes> = match self.encoding {
            Encoding::Proto => batch.payload.parts().to_vec(),
            Encoding::Json => vec![
                protobuf_to_json(batch.signal, &batch.payload.to_bytes())
                    .map(Bytes::from)
                    .map_err(|e| e.into_export_error())?,
            ],
        };
        let c = self.compression;
        if c == Compression::None {
            return Ok(reqwest::Body::wrap(PartsBody::new(parts)));
        }
        let compressed = if batch.payload.len() > BLOCKING_COMPRESS_ABOVE {
            tokio::task::spawn_blocking(move || compress_parts(c, &parts))
                .await
                .map_err(|e| ExportError::permanent(format!("compression task: {e}")))?
        } else {
            compress_parts(c, &parts)
        };
        compressed
            .map(reqwest::Body::from)
            .map_err(|e| ExportError::permanent(format!("compression: {e}")))
    }
}

#[async_trait]
impl Exporter for OtlpHttpExporter {
    async fn start(&self) -> Result<(), ComponentError> {
        self.client.start(&self.id, || self.make_client())
    }

    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let client = self.client.get()?;
        let idx = match batch.signal {
            Signal::Traces => 0,
            Signal::Metrics => 1,
            Signal::Logs => 2,
        };
        let Some(url) = &self.urls[idx] else {
            return Err(ExportError::permanent(format!(
                "no endpoint for {}: set endpoint or {}_endpoint",
                batch.signal, batch.signal
            )));
        };
        let content_type = match self.encoding {
            Encoding::Proto => "application/x-protobuf",
            Encoding::Json => "application/json",
        };
        let mut req = client
            .post(url.clone())
            .header(CONTENT_TYPE, content_type)
            .body(self.body(batch).await?);
        if let Some(enc) = self.compression.header_value() {
            req = req.header(CONTENT_ENCODING, enc);
        }
        if let Some(auth) = &self.auth {
            let (name, value) = http_header(&**auth)?;
            req = req.header(name, value);
        }
        let resp = req.send().await.map_err(map_send_error)?;
        let status = resp.status();
        let delay = retry_after(resp.headers(), SystemTime::now());
        let answer_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = read_capped(resp).await;
        if status.is_success() {
            let rejected = if answer_type.contains("json") {
                rejected_from_json(batch.signal, &body)
            } else {
                rejected_from_protobuf(batch.signal, &body)
            };
            if let Some((n, msg)) = rejected {
                self.partial.note(&self.id, batch.signal, n, &msg);
            }
            return Ok(());
        }
        let reason = format!(
            "http {}: {}",
            status.as_u16(),
            error_detail(status, &answer_type, &body)
        );
        Err(classify_http(status.as_u16(), reason, delay))
    }
}

/// Up to [`MAX_ANSWER_BODY`] bytes of the answer; a broken body just ends early (the status already decided).
pub async fn read_capped(mut resp: reqwest::Response) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ANSWER_BODY - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= MAX_ANSWER_BODY {
            break;
        }
    }
    out
}

/// A transport failure (connect, TLS, timeout, reset) is worth a retry; only a request we could not even build
/// is permanent.
pub fn map_send_error(e: reqwest::Error) -> ExportError {
    let mut reason = format!("http request: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_builder() {
        ExportError::permanent(reason)
    } else {
        ExportError::retryable(reason)
    }
}

/// The `Retry-After` header as delay-seconds or an HTTP-date (a date in the past means "now"); see
/// [`parse_retry_after`].
pub fn retry_after(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, now)
}

/// What went wrong, for the error message: the `google.rpc.Status` message of a protobuf body, else the start of
/// the body as text, else the status' reason phrase.
fn error_detail(status: reqwest::StatusCode, content_type: &str, body: &[u8]) -> String {
    if content_type.contains("protobuf")
        && let Ok(s) = <tonic_types::Status as prost::Message>::decode(body)
        && !s.message.is_empty()
    {
        return snippet(&s.message);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no body").to_string();
    }
    snippet(text)
}

fn snippet(text: &str) -> String {
    match text.char_indices().nth(ERROR_SNIPPET_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests;
