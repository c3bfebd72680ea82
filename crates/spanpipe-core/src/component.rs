//! Component traits and their factories. Adding a component is one module implementing a factory plus one
//! registration line in the binary; the core only ever sees these traits.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Batch, ComponentId, ConfigError, Consumer, Node, QueueSettings, RetrySettings, Signal,
};

/// A component failed to start or run (a port already in use, a file that cannot be opened).
#[derive(Debug, thiserror::Error)]
#[error("{id}: {message}")]
pub struct ComponentError {
    pub id: String,
    pub message: String,
}

impl ComponentError {
    pub fn new(id: impl std::fmt::Display, message: impl std::fmt::Display) -> Self {
        ComponentError {
            id: id.to_string(),
            message: message.to_string(),
        }
    }
}

/// The one line a listener that cannot bind says: the option that configured it, the address, and — for the
/// common case of two collectors on one machine — that the port is taken (`kind.id` prefixes it as a
/// [`ComponentError`]).
pub fn listen_error(option: &str, addr: impl std::fmt::Display, e: &std::io::Error) -> String {
    let addr = addr.to_string();
    if e.kind() == std::io::ErrorKind::AddrInUse {
        let port = addr.rsplit(':').next().unwrap_or(&addr);
        format!(
            "{option}: cannot listen on {addr}: port {port} is already in use (another spanpipe or OTel Collector \
             on this machine?); set {option} to a free port"
        )
    } else {
        format!("{option}: cannot listen on {addr}: {e}")
    }
}

/// What a factory gets besides its config: who it is, the key path to use in error messages, and the extensions
/// it may name (a storage for its queue, an authenticator for its server).
#[derive(Clone, Debug)]
pub struct BuildContext {
    pub id: ComponentId,
    /// e.g. `exporters.otlp/backend`
    pub path: String,
    pub extensions: ExtensionHost,
}

impl BuildContext {
    pub fn new(id: ComponentId, path: String) -> Self {
        BuildContext {
            id,
            path,
            extensions: ExtensionHost::default(),
        }
    }

    pub fn with_extensions(mut self, extensions: ExtensionHost) -> Self {
        self.extensions = extensions;
        self
    }

    /// The service's state and exporter send outcomes (for health checks), shared by every component.
    pub fn status(&self) -> &crate::ServiceStatus {
        self.extensions.status()
    }

    /// The enabled extension `name` refers to (a `ComponentId` string such as `file_storage/queue`), or an error
    /// located at `keys` saying it is not defined or not listed in `service.extensions`.
    pub fn extension(
        &self,
        node: &Node,
        keys: &[&str],
        name: &str,
    ) -> Result<Arc<dyn Extension>, ConfigError> {
        let found = name
            .parse::<ComponentId>()
            .ok()
            .and_then(|id| self.extensions.get(&id).cloned());
        found.ok_or_else(|| {
            self.invalid(
                node,
                keys,
                format!(
                    "extension \"{name}\" is not defined in `extensions` and listed in `service.extensions`"
                ),
            )
        })
    }
    /// Deserializes this component's config node, `null` meaning "all defaults".
    pub fn config<T: serde::de::DeserializeOwned>(&self, node: &Node) -> Result<T, ConfigError> {
        node.deserialize(&self.path)
    }

    /// A validation error at `keys` below this component (located at the deepest of them present in `node`).
    pub fn invalid(&self, node: &Node, keys: &[&str], message: impl Into<String>) -> ConfigError {
        let mut at = node;
        for k in keys {
            match at.get(k) {
                Some(n) => at = n,
                None => break,
            }
        }
        let mut path = self.path.clone();
        for k in keys {
            path.push('.');
            path.push_str(k);
        }
        ConfigError::new(at.location.clone(), path, message)
    }
}

/// Where a receiver pushes each signal it accepts; `None` for a signal no pipeline takes from it.
#[derive(Clone, Default)]
pub struct SignalConsumers {
    pub traces: Option<Arc<dyn Consumer>>,
    pub metrics: Option<Arc<dyn Consumer>>,
    pub logs: Option<Arc<dyn Consumer>>,
}

impl SignalConsumers {
    pub fn get(&self, signal: Signal) -> Option<&Arc<dyn Consumer>> {
        match signal {
            Signal::Traces => self.traces.as_ref(),
            Signal::Metrics => self.metrics.as_ref(),
            Signal::Logs => self.logs.as_ref(),
        }
    }

    pub fn set(&mut self, signal: Signal, consumer: Arc<dyn Consumer>) {
        match signal {
            Signal::Traces => self.traces = Some(consumer),
            Signal::Metrics => self.metrics = Some(consumer),
            Signal::Logs => self.logs = Some(consumer),
        }
    }
}

/// Accepts data from outside. Built without side effects; binds and serves in `start`.
#[async_trait]
pub trait Receiver: Send + Sync {
    async fn start(&self, consumers: SignalConsumers) -> Result<(), ComponentError>;
    /// Stop accepting, let in-flight requests finish.
    async fn shutdown(&self);
}

/// A consumer with a lifecycle, placed in front of the next consumer of its pipeline.
#[async_trait]
pub trait Processor: Consumer {
    async fn start(&self) -> Result<(), ComponentError> {
        Ok(())
    }
    /// Flush anything held into the next consumer.
    async fn shutdown(&self) {}
}

/// A connector's exporter side: consumes at the end of one pipeline, feeds the heads of others.
pub trait Connector: Processor {}
impl<T: Processor> Connector for T {}

/// Why an export call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExportError {
    /// Worth retrying (429/503, UNAVAILABLE, connection errors); `delay` is what the backend asked for.
    #[error("{reason}")]
    Retryable {
        reason: String,
        delay: Option<Duration>,
    },
    /// Will never succeed (400, INVALID_ARGUMENT, 401): counted as failed and logged, not retried.
    #[error("{reason}")]
    Permanent { reason: String },
    /// The exporter could not decode the batch. The receiver's door checked every request, so this is a bug; the
    /// delivery layer then cuts the batch back into its requests' resources and exports those that decode, so
    /// only the bad request is lost, never its batch-mates.
    #[error("{reason}")]
    Undecodable { reason: String },
}

impl ExportError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        ExportError::Retryable {
            reason: reason.into(),
            delay: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        ExportError::Permanent {
            reason: reason.into(),
        }
    }

    pub fn undecodable(reason: impl Into<String>) -> Self {
        ExportError::Undecodable {
            reason: reason.into(),
        }
    }

    /// A short label for "log once per kind of error".
    pub fn kind(&self) -> &str {
        match self {
            ExportError::Retryable { reason, .. }
            | ExportError::Permanent { reason }
            | ExportError::Undecodable { reason } => reason.split(':').next().unwrap_or(reason),
        }
    }
}

/// Sends batches to a backend. The core wraps every exporter in the same sending queue, retry and timeout
/// machinery, so an exporter only implements one attempt.
#[async_trait]
pub trait Exporter: Send + Sync {
    async fn start(&self) -> Result<(), ComponentError> {
        Ok(())
    }
    /// One attempt to deliver `batch`. May be called concurrently (`num_consumers`) and again for the same batch.
    async fn export(&self, batch: &Batch) -> Result<(), ExportError>;
    async fn shutdown(&self) {}
}

/// The settings every exporter shares (the OTel Collector's exporterhelper options). Exporter configs embed
/// these fields explicitly, because `deny_unknown_fields` does not combine with `#[serde(flatten)]`.
#[derive(Clone, Debug, Default)]
pub struct ExporterSettings {
    pub sending_queue: QueueSettings,
    pub retry_on_failure: RetrySettings,
    /// Per attempt; zero means none.
    pub timeout: Duration,
    /// The extension named by `sending_queue.storage`: the queue is kept there (opened at start).
    pub storage: Option<Arc<dyn crate::storage::Storage>>,
}

impl ExporterSettings {
    /// Combines the shared fields of an exporter config, validating them (errors located in `node`).
    pub fn new(
        ctx: &BuildContext,
        node: &Node,
        sending_queue: QueueSettings,
        retry_on_failure: RetrySettings,
        timeout: Duration,
    ) -> Result<Self, ConfigError> {
        sending_queue
            .validate()
            .map_err(|(k, m)| ctx.invalid(node, &["sending_queue", k], m))?;
        retry_on_failure
            .validate()
            .map_err(|(k, m)| ctx.invalid(node, &["retry_on_failure", k], m))?;
        let storage = match &sending_queue.storage {
            Some(name) => {
                let keys = ["sending_queue", "storage"];
                let ext = ctx.extension(node, &keys, name)?;
                Some(ext.storage().ok_or_else(|| {
                    ctx.invalid(
                        node,
                        &keys,
                        format!("extension \"{name}\" is not a storage extension"),
                    )
                })?)
            }
            None => None,
        };
        Ok(ExporterSettings {
            sending_queue,
            retry_on_failure,
            timeout,
            storage,
        })
    }
}

/// What an exporter factory returns.
pub struct BuiltExporter {
    pub exporter: Arc<dyn Exporter>,
    pub settings: ExporterSettings,
}

/// Side services (health checks, storage, authenticators). None are required by the pipeline itself; a component
/// that needs one finds it by id through [`BuildContext::extension`] and asks it for a capability.
#[async_trait]
pub trait Extension: Send + Sync {
    async fn start(&self) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn shutdown(&self) {}
    /// The request authenticator this extension offers to receivers (`auth.authenticator`), if it is one.
    fn server_auth(&self) -> Option<Arc<dyn crate::ServerAuth>> {
        None
    }
    /// The credentials this extension offers to exporters (`auth.authenticator`), if it is a client authenticator.
    fn client_auth(&self) -> Option<Arc<dyn crate::auth::ClientAuth>> {
        None
    }
    /// The durable storage this extension offers to sending queues (`sending_queue.storage`), if it is one.
    fn storage(&self) -> Option<Arc<dyn crate::storage::Storage>> {
        None
    }
}

/// What the service offers its components (the OTel Collector's `component.Host`): the extensions enabled in
/// `service.extensions`, by id, and the service's status (state and exporter send outcomes, for health checks).
#[derive(Clone, Default)]
pub struct ExtensionHost(
    Arc<std::collections::BTreeMap<ComponentId, Arc<dyn Extension>>>,
    crate::ServiceStatus,
);

impl ExtensionHost {
    pub fn new(extensions: impl IntoIterator<Item = (ComponentId, Arc<dyn Extension>)>) -> Self {
        ExtensionHost(
            Arc::new(extensions.into_iter().collect()),
            Default::default(),
        )
    }

    /// The same extensions reporting to `status` (the one the service sets its state on).
    pub fn with_status(mut self, status: crate::ServiceStatus) -> Self {
        self.1 = status;
        self
    }

    pub fn get(&self, id: &ComponentId) -> Option<&Arc<dyn Extension>> {
        self.0.get(id)
    }

    /// The service's state and every exporter's send outcomes.
    pub fn status(&self) -> &crate::ServiceStatus {
        &self.1
    }
}

impl std::fmt::Debug for ExtensionHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Builds receivers of one type.
pub trait ReceiverFactory: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn signals(&self) -> &'static [Signal];
    fn build(&self, ctx: &BuildContext, config: &Node) -> Result<Arc<dyn Receiver>, ConfigError>;
}

/// Builds one processor instance per pipeline it appears in, wrapping that pipeline's next consumer.
pub trait ProcessorFactory: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn signals(&self) -> &'static [Signal];
    fn build(
        &self,
        ctx: &BuildContext,
        config: &Node,
        signal: Signal,
        next: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Processor>, ConfigError>;
}

/// Builds exporters of one type (one instance per id, shared by the pipelines that name it).
pub trait ExporterFactory: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn signals(&self) -> &'static [Signal];
    fn build(&self, ctx: &BuildContext, config: &Node) -> Result<BuiltExporter, ConfigError>;
}

/// Builds connectors: one instance per (from, to) signal pair the configuration uses.
pub trait ConnectorFactory: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn supports(&self, from: Signal, to: Signal) -> bool;
    fn build(
        &self,
        ctx: &BuildContext,
        config: &Node,
        from: Signal,
        to: Signal,
        downstream: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Connector>, ConfigError>;
}

/// Builds extensions.
pub trait ExtensionFactory: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn build(&self, ctx: &BuildContext, config: &Node) -> Result<Arc<dyn Extension>, ConfigError>;
}
