//! `resolver.k8s`: the ready endpoints of a Service from its EndpointSlices (`discovery.k8s.io/v1`), read from
//! the API server with the pod's service-account token and CA: one list, then a watch from its
//! `resourceVersion` (no polling). A watch the server ends is resumed from the last version seen; an expired
//! version (HTTP 410, or a watch `ERROR` event with code 410) starts over with a fresh list.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::endpoint;
use crate::balancer::Balancer;

/// The service account's files in every pod.
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The longest watch event line accepted (an EndpointSlice holds at most 1000 endpoints).
const MAX_EVENT_BYTES: usize = 8 << 20;
/// How long the server keeps one watch open before we resume it.
const WATCH_SECONDS: u64 = 300;
/// How long a watch may stay silent before it is given up as dead.
const WATCH_IDLE: Duration = Duration::from_secs(WATCH_SECONDS + 60);

/// The pod's namespace (`name` without `.namespace`), or `default` outside a pod.
pub(crate) fn pod_namespace() -> String {
    std::fs::read_to_string(format!("{SA_DIR}/namespace"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// How to reach the API server.
#[derive(Clone)]
pub(crate) struct ApiClient {
    /// `https://host:port` (tests: `http://127.0.0.1:port`).
    pub base: String,
    /// Read before every request, so a rotated token is used.
    pub token_file: Option<PathBuf>,
    pub http: reqwest::Client,
}

impl ApiClient {
    /// The in-cluster client: `KUBERNETES_SERVICE_HOST` / `_PORT`, the service account's token and CA.
    pub fn in_cluster() -> Result<Self, String> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
            "resolver.k8s runs in a Kubernetes pod: KUBERNETES_SERVICE_HOST is not set".to_string()
        })?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let tls = spanpipe_otlp::exporter::tls::TlsSettings {
            ca_file: Some(format!("{SA_DIR}/ca.crt").into()),
            ..Default::default()
        };
        let http = tls
            .http_client(http::HeaderMap::new(), Duration::ZERO)
            .map_err(|e| format!("resolver.k8s: {e}"))?;
        Ok(ApiClient {
            base: format!("https://{host}:{port}"),
            token_file: Some(format!("{SA_DIR}/token").into()),
            http,
        })
    }

    fn get(&self, url: String) -> reqwest::RequestBuilder {
        let mut req = self.http.get(url).header("accept", "application/json");
        if let Some(path) = &self.token_file
            && let Ok(token) = std::fs::read_to_string(path)
        {
            req = req.bearer_auth(token.trim());
        }
        req
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ObjectMeta {
    name: String,
    resource_version: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Conditions {
    /// Absent means unknown, taken as ready (the API's convention).
    ready: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SliceEndpoint {
    addresses: Vec<String>,
    conditions: Conditions,
    hostname: Option<String>,
}

/// The parts of an `EndpointSlice` the resolver uses.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EndpointSlice {
    metadata: ObjectMeta,
    endpoints: Vec<SliceEndpoint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EndpointSliceList {
    metadata: ObjectMeta,
    items: Vec<EndpointSlice>,
}

#[derive(Debug, Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

/// How one watch ended.
#[derive(Debug, PartialEq, Eq)]
enum WatchEnd {
    /// The server closed it (its timeout): resume from the last version.
    Closed,
    /// 410 Gone: the version is too old, list again.
    Expired,
    Failed(String),
    Stopped,
}

/// The watch of one Service's EndpointSlices.
pub(crate) struct EndpointSliceWatch {
    pub api: ApiClient,
    pub service: String,
    pub namespace: String,
    pub ports: Vec<u16>,
    /// Per list request.
    pub timeout: Duration,
    pub return_hostnames: bool,
}

impl EndpointSliceWatch {
    fn url(&self) -> String {
        format!(
            "{}/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{}",
            self.api.base, self.namespace, self.service
        )
    }

    /// `host:port` for every ready endpoint of every slice and every configured port, sorted.
    fn endpoints(&self, slices: &BTreeMap<String, EndpointSlice>) -> Vec<String> {
        let mut out = Vec::new();
        for slice in slices.values() {
            for ep in &slice.endpoints {
                if ep.conditions.ready == Some(false) {
                    continue;
                }
                for port in &self.ports {
                    match (&ep.hostname, self.return_hostnames) {
                        (Some(h), true) if !h.is_empty() => {
                            out.push(format!("{h}.{}.{}:{port}", self.service, self.namespace));
                        }
                        _ => out.extend(
                            ep.addresses
                                .iter()
                                .filter_map(|a| a.parse().ok())
                                .map(|ip| endpoint(ip, *port)),
                        ),
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    async fn list(&self) -> Result<(BTreeMap<String, EndpointSlice>, String), String> {
        let resp = self
            .api
            .get(self.url())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| format!("list EndpointSlices: {e}"))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("list EndpointSlices: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "list EndpointSlices: HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        let list: EndpointSliceList =
            serde_json::from_slice(&body).map_err(|e| format!("list EndpointSlices: {e}"))?;
        let slices = list
            .items
            .into_iter()
            .map(|s| (s.metadata.name.clone(), s))
            .collect();
        Ok((slices, list.metadata.resource_version))
    }

    /// One watch from `version`, applying every event to `slices` and the balancer.
    async fn watch(
        &self,
        slices: &mut BTreeMap<String, EndpointSlice>,
        version: &mut String,
        balancer: &Balancer,
    ) -> WatchEnd {
        let url = format!(
            "{}&watch=true&allowWatchBookmarks=true&timeoutSeconds={WATCH_SECONDS}&resourceVersion={version}",
            self.url()
        );
        let stop = balancer.stop.clone();
        let connect = tokio::select! {
            r = tokio::time::timeout(self.timeout.max(Duration::from_secs(1)), self.api.get(url).send()) => r,
            _ = stop.cancelled() => return WatchEnd::Stopped,
        };
        let mut resp = match connect {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return WatchEnd::Failed(format!("watch EndpointSlices: {e}")),
            Err(_) => return WatchEnd::Failed("watch EndpointSlices: no answer".into()),
        };
        if resp.status() == reqwest::StatusCode::GONE {
            return WatchEnd::Expired;
        }
        if !resp.status().is_success() {
            return WatchEnd::Failed(format!("watch EndpointSlices: HTTP {}", resp.status()));
        }
        let mut line: Vec<u8> = Vec::new();
        loop {
            // The server ends a watch after `timeoutSeconds` and sends bookmarks meanwhile: silence well past
            // that means the connection is dead.
            let chunk = tokio::select! {
                c = tokio::time::timeout(WATCH_IDLE, resp.chunk()) => c,
                _ = stop.cancelled() => return WatchEnd::Stopped,
            };
            let chunk = match chunk {
                Ok(Ok(Some(c))) => c,
                Ok(Ok(None)) => return WatchEnd::Closed,
                Ok(Err(e)) => return WatchEnd::Failed(format!("watch EndpointSlices: {e}")),
                Err(_) => {
                    return WatchEnd::Failed("watch EndpointSlices: connection silent".into());
                }
            };
            let mut rest: &[u8] = &chunk;
            while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
                line.extend_from_slice(&rest[..nl]);
                rest = &rest[nl + 1..];
                let event = std::mem::take(&mut line);
                if event.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if let Some(end) = self.apply(&event, slices, version) {
                    return end;
                }
                balancer.set_resolved(self.endpoints(slices)).await;
            }
            line.extend_from_slice(rest);
            if line.len() > MAX_EVENT_BYTES {
                return WatchEnd::Failed("watch EndpointSlices: event too large".into());
            }
        }
    }

    /// Applies one watch event line; `Some` ends the watch.
    fn apply(
        &self,
        event: &[u8],
        slices: &mut BTreeMap<String, EndpointSlice>,
        version: &mut String,
    ) -> Option<WatchEnd> {
        let ev: WatchEvent = match serde_json::from_slice(event) {
            Ok(e) => e,
            Err(e) => return Some(WatchEnd::Failed(format!("watch event: {e}"))),
        };
        match ev.kind.as_str() {
            "ADDED" | "MODIFIED" | "DELETED" => {
                let slice: EndpointSlice = match serde_json::from_value(ev.object) {
                    Ok(s) => s,
                    Err(e) => return Some(WatchEnd::Failed(format!("watch event object: {e}"))),
                };
                if !slice.metadata.resource_version.is_empty() {
                    *version = slice.metadata.resource_version.clone();
                }
                if ev.kind == "DELETED" {
                    slices.remove(&slice.metadata.name);
                } else {
                    slices.insert(slice.metadata.name.clone(), slice);
                }
                None
            }
            "BOOKMARK" => {
                if let Some(v) = ev.object["metadata"]["resourceVersion"].as_str() {
                    *version = v.to_string();
                }
                None
            }
            "ERROR" if ev.object["code"].as_u64() == Some(410) => Some(WatchEnd::Expired),
            other => Some(WatchEnd::Failed(format!(
                "watch event {other}: {}",
                ev.object["message"].as_str().unwrap_or("")
            ))),
        }
    }

    /// List, then watch; again from a fresh list after an expiry or an error (waiting 1 s, then up to 30 s).
    pub async fn run(self, balancer: Arc<Balancer>) {
        let stop = balancer.stop.clone();
        let mut wait = Duration::from_secs(1);
        loop {
            let listed = tokio::select! {
                r = self.list() => r,
                _ = stop.cancelled() => return,
            };
            let (mut slices, mut version) = match listed {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(exporter = %balancer.id, error = %e, "loadbalancing: k8s resolver; keeping the last backends");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.cancelled() => return,
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            balancer.set_resolved(self.endpoints(&slices)).await;
            loop {
                match self.watch(&mut slices, &mut version, &balancer).await {
                    WatchEnd::Closed => {
                        wait = Duration::from_secs(1);
                        continue;
                    }
                    WatchEnd::Expired => {
                        tracing::info!(exporter = %balancer.id, "loadbalancing: k8s watch expired (410); listing again");
                        break;
                    }
                    WatchEnd::Stopped => return,
                    WatchEnd::Failed(e) => {
                        tracing::warn!(exporter = %balancer.id, error = %e, "loadbalancing: k8s watch failed; listing again");
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = stop.cancelled() => return,
                        }
                        wait = (wait * 2).min(Duration::from_secs(30));
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
