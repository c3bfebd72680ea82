//! HTTP to MLflow: the client, the endpoints, and MLflow's error answers mapped to retryable / permanent.
//!
//! MLflow answers errors in two shapes: `{"error_code": "...", "message": "..."}` (its REST handlers, and the OTLP
//! endpoint for store errors such as an unknown experiment) and FastAPI's `{"detail": ...}` (bad body, missing
//! header). Both are reduced to [`Failure::Status`] with the code and a short message.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use spanpipe_core::ExportError;
use spanpipe_net::client::TlsSettings;
use spanpipe_net::compression::Compression;
use spanpipe_otlp::exporter::otlp_http::{map_send_error, read_capped, retry_after};

use crate::auth::{Auth, AuthError};

/// The header MLflow routes OTLP spans by.
pub const EXPERIMENT_HEADER: &str = "x-mlflow-experiment-id";
/// The header naming the workspace (servers started with `--enable-workspaces`, the OpenShift gateway).
pub const WORKSPACE_HEADER: &str = "x-mlflow-workspace";
/// How much of an error message goes into logs.
const MESSAGE_CHARS: usize = 300;

/// Where requests go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// OTLP/HTTP traces URL.
    pub traces: reqwest::Url,
    /// Base of the experiments REST API, ending in `/api/2.0/mlflow/`.
    pub api: reqwest::Url,
}

impl Endpoints {
    /// A tracking server at `base` (which may carry a path prefix, e.g. behind a gateway).
    pub fn mlflow(base: &reqwest::Url) -> Result<Self, String> {
        Self::with_traces_path(base.as_str(), "v1/traces")
    }

    /// Databricks: OTLP at `<host>/api/2.0/otel/v1/traces`; a host without scheme means https.
    pub fn databricks(host: &str) -> Result<Self, String> {
        let host = host.trim();
        let host = if host.contains("://") {
            host.to_string()
        } else {
            format!("https://{host}")
        };
        Self::with_traces_path(&host, "api/2.0/otel/v1/traces")
    }

    fn with_traces_path(base: &str, traces: &str) -> Result<Self, String> {
        let base = base.trim_end_matches('/');
        let parse = |u: String| reqwest::Url::parse(&u).map_err(|e| format!("{u:?}: {e}"));
        Ok(Endpoints {
            traces: parse(format!("{base}/{traces}"))?,
            api: parse(format!("{base}/api/2.0/mlflow/"))?,
        })
    }
}

/// Why a request did not succeed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// No answer (connect, TLS, timeout); already classified by spanpipe-otlp.
    Transport(ExportError),
    /// Credentials unavailable (token file unreadable).
    Auth(AuthError),
    /// An HTTP error answer.
    Status {
        status: u16,
        /// MLflow's `error_code` (`RESOURCE_DOES_NOT_EXIST`, `FEATURE_DISABLED`, ...), when it sent one.
        code: Option<String>,
        message: String,
        delay: Option<Duration>,
    },
}

impl Failure {
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            Failure::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The generic mapping, `what` prefixing the reason (it is also the "kind" errors are logged once per):
    /// The statuses every exporter shares ([`spanpipe_core::retry::classify_http`]): 429, 502, 503 and 504 retry
    /// with the server's Retry-After; everything else (400, 401, 422, 500 — FEATURE_DISABLED gets a hint —,
    /// 501: a store without OTLP ingestion) is permanent.
    pub fn into_export_error(self, what: &str) -> ExportError {
        match self {
            Failure::Transport(ExportError::Retryable { reason, delay }) => {
                ExportError::Retryable {
                    reason: format!("{what}: {reason}"),
                    delay,
                }
            }
            Failure::Transport(ExportError::Permanent { reason }) => {
                ExportError::permanent(format!("{what}: {reason}"))
            }
            Failure::Transport(ExportError::Undecodable { reason }) => {
                ExportError::undecodable(format!("{what}: {reason}"))
            }
            Failure::Auth(e) => ExportError::retryable(format!("{what}: {e}")),
            Failure::Status {
                status,
                code,
                message,
                delay,
            } => {
                let detail = match &code {
                    Some(c) => format!("{c}: {message}"),
                    None => message,
                };
                let reason = format!("{what}: http {status}: {detail}");
                if code.as_deref() == Some("FEATURE_DISABLED") {
                    return ExportError::permanent(format!(
                        "{reason} (the server has workspaces disabled: remove `workspace` or start MLflow with \
                         --enable-workspaces)"
                    ));
                }
                spanpipe_core::retry::classify_http(status, reason, delay)
            }
        }
    }
}

/// A started client: endpoints, credentials and the pooled HTTP client.
pub struct Api {
    pub endpoints: Endpoints,
    pub auth: Auth,
    client: reqwest::Client,
}

impl Api {
    pub fn new(
        endpoints: Endpoints,
        auth: Auth,
        tls: &TlsSettings,
        timeout: Duration,
        workspace: Option<&str>,
    ) -> Result<Self, String> {
        let mut headers = http::HeaderMap::new();
        if let Some(ws) = workspace {
            let v = http::HeaderValue::from_str(ws)
                .map_err(|_| format!("workspace {ws:?} is not a header value"))?;
            headers.insert(WORKSPACE_HEADER, v);
        }
        let client = tls.http_client(headers, timeout)?;
        Ok(Api {
            endpoints,
            auth,
            client,
        })
    }

    /// POSTs one encoded (and already compressed) OTLP request to experiment `experiment_id`.
    pub async fn post_traces(
        &self,
        experiment_id: &str,
        body: Bytes,
        compression: Compression,
    ) -> Result<(), Failure> {
        let mut req = self
            .client
            .post(self.endpoints.traces.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .header(EXPERIMENT_HEADER, experiment_id)
            .body(body);
        if let Some(enc) = compression.header_value() {
            req = req.header(CONTENT_ENCODING, enc);
        }
        self.send(req).await.map(|_| ())
    }

    /// POSTs JSON to `<api>/<path>` and returns the JSON answer.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        let url = self.api_url(path)?;
        let req = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        parse_json(&self.send(req).await?)
    }

    /// GETs `<api>/<path>?<query>` and returns the JSON answer.
    pub async fn get_json(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<serde_json::Value, Failure> {
        let mut url = self.api_url(path)?;
        url.query_pairs_mut().extend_pairs(query);
        parse_json(&self.send(self.client.get(url)).await?)
    }

    fn api_url(&self, path: &str) -> Result<reqwest::Url, Failure> {
        self.endpoints.api.join(path).map_err(|e| {
            Failure::Transport(ExportError::permanent(format!("bad API path {path}: {e}")))
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Vec<u8>, Failure> {
        let req = self.auth.apply(req).map_err(Failure::Auth)?;
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Transport(map_send_error(e)))?;
        let status = resp.status();
        let delay = retry_after(resp.headers(), SystemTime::now());
        let body = read_capped(resp).await;
        if status.is_success() {
            return Ok(body);
        }
        let (code, message) = error_detail(&body);
        Err(Failure::Status {
            status: status.as_u16(),
            code,
            message: if message.is_empty() {
                status.canonical_reason().unwrap_or("no body").to_string()
            } else {
                message
            },
            delay,
        })
    }
}

fn parse_json(body: &[u8]) -> Result<serde_json::Value, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        Failure::Transport(ExportError::retryable(format!(
            "MLflow answered with invalid JSON: {e}"
        )))
    })
}

/// MLflow's `error_code` and message from an error body, else the start of the body as text.
pub fn error_detail(body: &[u8]) -> (Option<String>, String) {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if let Some(v) = &json {
        let code = v
            .get("error_code")
            .and_then(|c| c.as_str())
            .map(str::to_string);
        let message = match (v.get("message"), v.get("detail")) {
            (Some(serde_json::Value::String(m)), _) => Some(m.clone()),
            (_, Some(serde_json::Value::String(d))) => Some(d.clone()),
            (_, Some(d)) => Some(d.to_string()),
            _ => None,
        };
        if code.is_some() || message.is_some() {
            return (code, snippet(message.as_deref().unwrap_or("")));
        }
    }
    (None, snippet(String::from_utf8_lossy(body).trim()))
}

fn snippet(text: &str) -> String {
    // MLflow appends the SQL statement to some errors; the first line says what went wrong.
    let first = text.lines().next().unwrap_or("").trim();
    match first.char_indices().nth(MESSAGE_CHARS) {
        Some((end, _)) => format!("{}...", &first[..end]),
        None => first.to_string(),
    }
}
