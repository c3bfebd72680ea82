//! An in-process stand-in for an MLflow tracking server that answers as MLflow 3.17 does (status codes and error
//! bodies as observed, see shared/mlflow-facts.md), plus fault injection for what a real server cannot be made
//! to do on demand (429/503 with Retry-After, a create race). The end-to-end suites use a real server.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::{Value, json};
use spanpipe_net::compression::{Compression, decompress};

/// FastAPI's answer to a body MLflow cannot parse.
pub fn invalid_format() -> Value {
    json!({"detail": "Invalid OpenTelemetry format"})
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    /// Decompressed body.
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Experiment {
    pub id: String,
    pub name: String,
    pub deleted: bool,
}

/// The server's state; tests set faults and read what arrived.
#[derive(Debug, Default)]
pub struct State {
    pub experiments: Vec<Experiment>,
    /// `Some`: workspaces enabled with these names; `None`: disabled (a workspace header → 500 FEATURE_DISABLED).
    pub workspaces: Option<Vec<String>>,
    /// Required `Authorization` value, if any.
    pub auth: Option<String>,
    /// Scripted answers for the next `/v1/traces` requests: (status, retry-after, JSON body); status 0 answers
    /// normally.
    pub faults: VecDeque<(u16, Option<&'static str>, Value)>,
    /// Experiment names someone else "creates" just before our create call.
    pub create_race: Vec<String>,
    /// Searches for these names are answered only after this long (a slow MLflow, for one name).
    pub slow_search: HashMap<String, std::time::Duration>,
    pub seen: Vec<Seen>,
    /// span id → experiment ids it was stored in (an upsert keeps one entry per experiment).
    pub spans: HashMap<Vec<u8>, Vec<String>>,
    next_id: usize,
}

impl State {
    pub fn with_default() -> Self {
        State {
            experiments: vec![Experiment {
                id: "0".into(),
                name: "Default".into(),
                deleted: false,
            }],
            ..State::default()
        }
    }

    pub fn id_of(&self, name: &str) -> Option<String> {
        self.experiments
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.id.clone())
    }

    /// Spans stored in `experiment_id`.
    pub fn spans_in(&self, experiment_id: &str) -> usize {
        self.spans
            .values()
            .filter(|e| e.iter().any(|x| x == experiment_id))
            .count()
    }

    pub fn trace_posts(&self) -> Vec<&Seen> {
        self.seen
            .iter()
            .filter(|s| s.path.ends_with("/traces") && s.method == "POST")
            .collect()
    }

    pub fn create(&mut self, name: &str) -> String {
        self.next_id = self.next_id.max(self.experiments.len());
        let id = self.next_id.to_string();
        self.next_id += 1;
        self.experiments.push(Experiment {
            id: id.clone(),
            name: name.into(),
            deleted: false,
        });
        id
    }
}

pub type Shared = Arc<Mutex<State>>;

fn answer(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("static"));
    r
}

fn mlflow_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    answer(status, json!({"error_code": code, "message": message}))
}

fn experiment_json(e: &Experiment) -> Value {
    json!({"experiment_id": e.id, "name": e.name, "lifecycle_stage": if e.deleted { "deleted" } else { "active" }})
}

/// The name in `name = '...'` / `name = "..."` (quotes stripped, nothing unescaped, as MLflow does).
fn filter_name(filter: &str) -> Option<&str> {
    let v = filter.strip_prefix("name = ")?;
    let q = v.chars().next()?;
    (v.len() >= 2 && (q == '\'' || q == '"') && v.ends_with(q)).then(|| &v[1..v.len() - 1])
}

fn traces(st: &mut State, h: &BTreeMap<String, String>, raw: &[u8]) -> Response<Full<Bytes>> {
    if h.get("content-type").map(String::as_str) != Some("application/x-protobuf") {
        return answer(400, json!({"detail": "Invalid Content-Type"}));
    }
    let body = match h.get("content-encoding").map(String::as_str) {
        None => raw.to_vec(),
        Some("gzip") => decompress(Compression::Gzip, raw, 64 << 20).unwrap_or_default(),
        Some("deflate") => decompress(Compression::Deflate, raw, 64 << 20).unwrap_or_default(),
        Some(other) => {
            return answer(
                400,
                json!({"detail": format!("Unsupported Content-Encoding: {other}")}),
            );
        }
    };
    let Some(exp) = h.get("x-mlflow-experiment-id") else {
        return answer(
            422,
            json!({"detail": [{"type": "missing", "loc": ["header", "x-mlflow-experiment-id"]}]}),
        );
    };
    let Ok(req) = ExportTraceServiceRequest::decode(body.as_slice()) else {
        return answer(400, json!({"detail": "Invalid OpenTelemetry format"}));
    };
    if req.resource_spans.is_empty() {
        return answer(
            400,
            json!({"detail": "Invalid OpenTelemetry format - no spans found"}),
        );
    }
    if !exp.bytes().all(|b| b.is_ascii_digit()) {
        return mlflow_error(
            400,
            "INVALID_PARAMETER_VALUE",
            &format!("Invalid experiment ID '{exp}'. Experiment ID must be a valid integer."),
        );
    }
    if !st.experiments.iter().any(|e| &e.id == exp) {
        return mlflow_error(
            404,
            "RESOURCE_DOES_NOT_EXIST",
            &format!("No Experiment with id={exp} exists"),
        );
    }
    for s in req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        let at = st.spans.entry(s.span_id.clone()).or_default();
        if !at.contains(exp) {
            at.push(exp.clone());
        }
    }
    let mut r = Response::new(Full::new(Bytes::new()));
    r.headers_mut().insert(
        "content-type",
        "application/x-protobuf".parse().expect("static"),
    );
    r
}

fn rest(
    st: &mut State,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (method, path) {
        ("POST", "/api/2.0/mlflow/experiments/search") => {
            let all = v["view_type"] == "ALL";
            let name = v["filter"]
                .as_str()
                .and_then(filter_name)
                .map(str::to_string);
            let found: Vec<Value> = st
                .experiments
                .iter()
                .filter(|e| (all || !e.deleted) && name.as_ref().is_none_or(|n| n == &e.name))
                .map(experiment_json)
                .collect();
            if found.is_empty() {
                answer(200, json!({}))
            } else {
                answer(200, json!({"experiments": found}))
            }
        }
        ("POST", "/api/2.0/mlflow/experiments/create") => {
            let name = v["name"].as_str().unwrap_or_default().to_string();
            if let Some(i) = st.create_race.iter().position(|n| n == &name) {
                st.create_race.remove(i);
                st.create(&name);
            }
            if st.experiments.iter().any(|e| e.name == name) {
                return mlflow_error(
                    400,
                    "RESOURCE_ALREADY_EXISTS",
                    &format!(
                        "Experiment(name={name}) already exists. Error: (sqlite3.IntegrityError)\n[SQL: ...]"
                    ),
                );
            }
            answer(200, json!({"experiment_id": st.create(&name)}))
        }
        ("GET", "/api/2.0/mlflow/experiments/get-by-name") => {
            let name: String = reqwest::Url::parse(&format!("http://x/?{query}"))
                .ok()
                .and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "experiment_name")
                        .map(|(_, v)| v.into_owned())
                })
                .unwrap_or_default();
            match st.experiments.iter().find(|e| e.name == name) {
                Some(e) => answer(200, json!({"experiment": experiment_json(e)})),
                None => mlflow_error(
                    404,
                    "RESOURCE_DOES_NOT_EXIST",
                    &format!("Could not find experiment with name '{name}'"),
                ),
            }
        }
        _ => answer(404, json!({"detail": "Not Found"})),
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Shared,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let raw = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if path.ends_with("/experiments/search") {
        let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let name = v["filter"]
            .as_str()
            .and_then(filter_name)
            .map(str::to_string);
        let delay = name.and_then(|n| {
            let st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.slow_search.get(&n).copied()
        });
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
    }
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    let is_traces = path.ends_with("/v1/traces");
    let body = match (
        is_traces,
        headers.get("content-encoding").map(String::as_str),
    ) {
        (true, Some("gzip")) => decompress(Compression::Gzip, &raw, 64 << 20).unwrap_or_default(),
        (true, Some("deflate")) => {
            decompress(Compression::Deflate, &raw, 64 << 20).unwrap_or_default()
        }
        _ => raw.to_vec(),
    };
    st.seen.push(Seen {
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
        body,
    });
    if let Some(want) = &st.auth
        && headers.get("authorization") != Some(want)
    {
        return Ok(answer(401, json!({"detail": "Unauthorized"})));
    }
    if let Some(ws) = headers.get("x-mlflow-workspace") {
        match &st.workspaces {
            None => {
                return Ok(mlflow_error(
                    500,
                    "FEATURE_DISABLED",
                    "Workspace APIs are not available: workspaces are not enabled on this server",
                ));
            }
            Some(known) if !known.contains(ws) => {
                return Ok(mlflow_error(
                    404,
                    "RESOURCE_DOES_NOT_EXIST",
                    &format!("Workspace '{ws}' not found"),
                ));
            }
            Some(_) => {}
        }
    }
    if is_traces
        && let Some((status, retry_after, body)) = st.faults.pop_front()
        && status != 0
    {
        let mut r = answer(status, body);
        if let Some(ra) = retry_after {
            r.headers_mut()
                .insert("retry-after", ra.parse().expect("static"));
        }
        return Ok(r);
    }
    Ok(if is_traces {
        traces(&mut st, &headers, &raw)
    } else {
        rest(&mut st, &method, &path, &query, &raw)
    })
}

/// Serves `state` on 127.0.0.1; returns the base URL.
pub async fn serve(state: Shared) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let st = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(req, st.clone()));
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// A fresh server with only the Default experiment.
pub async fn start() -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(State::with_default()));
    (serve(state.clone()).await, state)
}
