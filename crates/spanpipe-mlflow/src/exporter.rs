//! The `mlflow` exporter: one export attempt per call (the core's sending queue queues, retries and times out).
//!
//! A batch becomes one or more MLflow requests: resources are routed to experiments, each experiment's spans are
//! grouped by trace and cut to size ([`crate::group`]). The core retries a failed batch as a whole, and that is
//! safe: MLflow upserts spans by id, so re-sending is idempotent; requests already acknowledged are skipped
//! anyway ([`crate::delivered`]).

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use spanpipe_core::{Batch, ComponentError, ExportError, Exporter};
use spanpipe_net::compression::{Compression, compress};

use crate::api::{Api, Endpoints, Failure};
use crate::auth::Auth;
use crate::config::{AuthSource, Destination, Settings};
use crate::delivered::{Delivered, key};
use crate::experiments::{Resolver, ResolverSettings};
use crate::group::{Chunk, Plan};
use crate::routing::{Router, Target};

/// Reads an environment variable; injectable so tests need not mutate the process environment.
pub type EnvFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Bodies above this are compressed on a blocking thread so a big request does not stall the runtime.
const BLOCKING_COMPRESS_ABOVE: usize = 256 << 10;

/// Sends traces to MLflow.
pub struct MlflowExporter {
    id: String,
    settings: Settings,
    router: Router,
    resolver: Resolver,
    delivered: Delivered,
    env: EnvFn,
    api: OnceLock<Api>,
    /// The authenticator extension named by `auth.authenticator`, found when the exporter was built.
    client_auth: Option<Arc<dyn spanpipe_core::auth::ClientAuth>>,
}

/// Spans MLflow refused for good while the rest of the batch went through.
#[derive(Default)]
struct Rejected {
    spans: usize,
    first: Option<String>,
}

impl Rejected {
    fn add(&mut self, spans: usize, reason: String) {
        self.spans += spans;
        self.first.get_or_insert(reason);
    }

    fn merge(&mut self, other: Rejected) {
        self.spans += other.spans;
        if let Some(r) = other.first {
            self.first.get_or_insert(r);
        }
    }
}

impl MlflowExporter {
    pub fn new(id: String, settings: Settings, env: EnvFn) -> Self {
        let router = Router::new(settings.rules.clone(), settings.default_target.clone())
            .with_allow_list(settings.guard.allowed.clone(), &id);
        let resolver = Resolver::new(&ResolverSettings {
            exporter: id.clone(),
            create: settings.guard.create,
            creations_per_minute: settings.guard.creations_per_minute,
        });
        MlflowExporter {
            id,
            settings,
            router,
            resolver,
            delivered: Delivered::default(),
            env,
            api: OnceLock::new(),
            client_auth: None,
        }
    }

    /// Uses the credentials of an authenticator extension (`auth.authenticator`).
    pub fn with_client_auth(mut self, auth: Arc<dyn spanpipe_core::auth::ClientAuth>) -> Self {
        self.client_auth = Some(auth);
        self
    }

    fn auth(&self, source: &AuthSource) -> Result<Auth, String> {
        match (source, &self.client_auth) {
            (AuthSource::Authenticator(_), Some(a)) => Ok(Auth::Client(a.clone())),
            (AuthSource::Authenticator(id), None) => Err(format!(
                "auth.authenticator {id:?}: the extension was not found when the exporter was built"
            )),
            (other, _) => Ok(Auth::from_source(other)),
        }
    }

    /// Endpoints and credentials; for Databricks from `DATABRICKS_HOST` / `DATABRICKS_TOKEN` (a configured
    /// token or token_file wins over the variable).
    fn endpoints_and_auth(&self) -> Result<(Endpoints, Auth), String> {
        let var = |k: &str| {
            (self.env)(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        match &self.settings.destination {
            Destination::Mlflow(url) => {
                Ok((Endpoints::mlflow(url)?, self.auth(&self.settings.auth)?))
            }
            Destination::Databricks => {
                let host = var("DATABRICKS_HOST").ok_or(
                    "tracking_uri: databricks needs DATABRICKS_HOST (the workspace URL) in the environment",
                )?;
                let endpoints =
                    Endpoints::databricks(&host).map_err(|e| format!("DATABRICKS_HOST: {e}"))?;
                let auth = match &self.settings.auth {
                    AuthSource::None => Auth::Bearer(var("DATABRICKS_TOKEN").ok_or(
                        "tracking_uri: databricks needs DATABRICKS_TOKEN in the environment (or token / token_file)",
                    )?),
                    other => self.auth(other)?,
                };
                Ok((endpoints, auth))
            }
        }
    }

    /// Sends every chunk of one experiment, resolved to `id`. `Err` only for a retryable failure (the batch is
    /// retried); permanent refusals are collected in `rejected` so the other experiments of the batch still get
    /// their spans.
    async fn send_target(
        &self,
        api: &Api,
        target: &Target,
        mut id: String,
        chunks: Vec<Chunk>,
        rejected: &mut Rejected,
    ) -> Result<(), ExportError> {
        let mut resolved_again = false;
        let mut chunks = chunks.into_iter();
        while let Some(chunk) = chunks.next() {
            let what = format!("mlflow {target} (id {id})");
            match self.send_chunk(api, &id, &chunk).await {
                Ok(()) => continue,
                Err(f) if unknown_experiment(&f) && !resolved_again => {
                    if let Target::Name(name) = target {
                        // Deleted and purged, or a new database behind the same URL: look the name up again.
                        resolved_again = true;
                        self.resolver.invalidate(name);
                        tracing::warn!(exporter = %self.id, experiment = %name, old_id = %id,
                            "MLflow no longer knows this experiment; resolving its name again");
                        id = match self.resolver.resolve(api, target).await {
                            Ok(id) => id,
                            Err(ExportError::Permanent { reason }) => {
                                rejected.add(
                                    chunk.spans + chunks.map(|c| c.spans).sum::<usize>(),
                                    reason,
                                );
                                return Ok(());
                            }
                            Err(e) => return Err(e),
                        };
                        match self.send_chunk(api, &id, &chunk).await {
                            Ok(()) => continue,
                            Err(f) => self.refused(f, &what, chunk.spans, rejected)?,
                        }
                    } else {
                        self.refused(f, &what, chunk.spans, rejected)?;
                    }
                }
                Err(f) => self.refused(f, &what, chunk.spans, rejected)?,
            }
        }
        Ok(())
    }

    /// Sends the experiments of a batch concurrently (each experiment's requests in order), so a big or slow one
    /// never queues another behind it. `Err`: the first retryable failure, after every experiment had its try.
    async fn send_all(
        &self,
        api: &Api,
        targets: Vec<(&Target, String, Vec<Chunk>)>,
        rejected: &mut Rejected,
    ) -> Result<(), ExportError> {
        let sends = targets
            .into_iter()
            .filter(|(_, _, chunks)| !chunks.is_empty())
            .map(|(target, id, chunks)| async move {
                let mut r = Rejected::default();
                self.send_target(api, target, id, chunks, &mut r)
                    .await
                    .map(|()| r)
            });
        let mut first_err = None;
        for result in futures::future::join_all(sends).await {
            match result {
                Ok(r) => rejected.merge(r),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// A failed request: retryable → `Err` (stop, retry the batch); permanent → noted in `rejected`.
    fn refused(
        &self,
        f: Failure,
        what: &str,
        spans: usize,
        rejected: &mut Rejected,
    ) -> Result<(), ExportError> {
        let hint = match &f {
            Failure::Status {
                status: 404,
                message,
                ..
            } if message.starts_with("Workspace") => " (create the workspace or fix `workspace`)",
            Failure::Status { status: 404, .. } => " (the experiment does not exist)",
            Failure::Status { status: 401, .. } => {
                " (check token, token_file, username/password or the auth.authenticator extension's token)"
            }
            Failure::Status { status: 403, .. } => {
                " (forbidden: check the credentials' permissions, or the server's --allowed-hosts)"
            }
            Failure::Status { status: 413, .. } => {
                " (lower max_request_bytes / max_spans_per_request)"
            }
            _ => "",
        };
        match f.into_export_error(what) {
            ExportError::Permanent { reason } => {
                rejected.add(spans, format!("{reason}{hint}"));
                Ok(())
            }
            retryable => Err(retryable),
        }
    }

    /// One request, unless MLflow already acknowledged the same body for this experiment. A 401 with a token file
    /// that changed since it was read is tried once more with the new token.
    async fn send_chunk(&self, api: &Api, id: &str, chunk: &Chunk) -> Result<(), Failure> {
        let k = key(id, &chunk.body);
        if self.delivered.contains(k) {
            return Ok(());
        }
        let body = self
            .compressed(&chunk.body)
            .await
            .map_err(Failure::Transport)?;
        let c = self.settings.compression;
        let result = match api.post_traces(id, body.clone(), c).await {
            Err(f) if f.status() == Some(401) && api.auth.refresh_after_unauthorized() => {
                api.post_traces(id, body, c).await
            }
            other => other,
        };
        if result.is_ok() {
            self.delivered.insert(k);
            tracing::debug!(exporter = %self.id, experiment_id = id, spans = chunk.spans, traces = chunk.traces,
                bytes = chunk.body.len(), "sent to MLflow");
        }
        result
    }

    async fn compressed(&self, body: &[u8]) -> Result<Bytes, ExportError> {
        let c = self.settings.compression;
        if c == Compression::None {
            return Ok(Bytes::copy_from_slice(body));
        }
        let out = if body.len() > BLOCKING_COMPRESS_ABOVE {
            let owned = body.to_vec();
            tokio::task::spawn_blocking(move || compress(c, &owned))
                .await
                .map_err(|e| ExportError::permanent(format!("mlflow: compression task: {e}")))?
        } else {
            compress(c, body)
        };
        out.map(Bytes::from)
            .map_err(|e| ExportError::permanent(format!("mlflow: compression: {e}")))
    }
}

/// MLflow's answer for an experiment id it does not know (not an unknown workspace, also a 404).
fn unknown_experiment(f: &Failure) -> bool {
    matches!(f, Failure::Status { status: 404, code, message, .. }
        if code.as_deref() == Some("RESOURCE_DOES_NOT_EXIST") && !message.starts_with("Workspace"))
}

#[async_trait]
impl Exporter for MlflowExporter {
    /// Builds the client; never contacts MLflow (experiments are resolved on first use), so a server that is
    /// down at startup only delays delivery.
    async fn start(&self) -> Result<(), ComponentError> {
        if self.api.get().is_some() {
            return Ok(());
        }
        let (endpoints, auth) = self
            .endpoints_and_auth()
            .map_err(|m| ComponentError::new(&self.id, m))?;
        let s = &self.settings;
        let api = Api::new(endpoints, auth, &s.tls, s.timeout, s.workspace.as_deref())
            .map_err(|m| ComponentError::new(&self.id, m))?;
        tracing::info!(exporter = %self.id, traces = %api.endpoints.traces, default = %self.router.default_target(),
            "mlflow exporter ready");
        let _ = self.api.set(api);
        Ok(())
    }

    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let Some(api) = self.api.get() else {
            return Err(ExportError::permanent("mlflow: exporter not started"));
        };
        let plan = Plan::parse(&batch.payload)
            .map_err(|e| ExportError::permanent(format!("mlflow: invalid OTLP traces: {e}")))?;
        let targets: Vec<Target> = plan
            .resources
            .iter()
            .map(|r| self.router.route(r.resource, &batch.metadata))
            .collect();
        let mut order: Vec<&Target> = Vec::new();
        for t in &targets {
            if !order.contains(&t) {
                order.push(t);
            }
        }
        let chunks_of = |target: &Target| {
            plan.chunks(
                |r| &targets[r] == target,
                self.settings.max_spans,
                self.settings.max_bytes,
            )
        };
        // Experiments known without asking MLflow (ids, cached names) are sent first: resolving a new name (a
        // slow MLflow, a throttled creation) never delays them.
        let (ready, pending): (Vec<_>, Vec<_>) = order
            .into_iter()
            .map(|t| (t, self.resolver.ready(t)))
            .partition(|(_, id)| id.is_some());
        let mut rejected = Rejected::default();
        let ready: Vec<_> = ready
            .into_iter()
            .filter_map(|(t, id)| Some((t, id?, chunks_of(t))))
            .collect();
        self.send_all(api, ready, &mut rejected).await?;
        // New names resolve concurrently; one that cannot be resolved yet (retryable) does not stop the others.
        let resolved =
            futures::future::join_all(pending.iter().map(|(t, _)| self.resolver.resolve(api, t)))
                .await;
        let mut deferred: Option<ExportError> = None;
        let mut resolved_now = Vec::new();
        for ((target, _), id) in pending.into_iter().zip(resolved) {
            match id {
                Ok(id) => resolved_now.push((target, id, chunks_of(target))),
                Err(ExportError::Permanent { reason }) => {
                    rejected.add(chunks_of(target).iter().map(|c| c.spans).sum(), reason);
                }
                Err(e) => {
                    deferred.get_or_insert(e);
                }
            }
        }
        self.send_all(api, resolved_now, &mut rejected).await?;
        // Retried later: what was acknowledged meanwhile is skipped then (`delivered`).
        if let Some(e) = deferred {
            return Err(e);
        }
        match rejected.first {
            None => Ok(()),
            Some(reason) => Err(ExportError::permanent(format!(
                "{reason} [{} of {} spans of the batch refused]",
                rejected.spans,
                plan.span_count()
            ))),
        }
    }
}
