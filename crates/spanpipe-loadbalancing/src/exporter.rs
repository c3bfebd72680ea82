//! The factory and the exporter the pipeline sees: it validates the config at build time (no I/O) and, at
//! start, runs the resolver and the balancer that owns one `otlp` exporter and sending queue per backend.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use spanpipe_config::{Node, Value};
use spanpipe_core::{
    Batch, BuildContext, BuiltExporter, ComponentError, ConfigError, ExportError, Exporter,
    ExporterFactory, ExporterSettings, Signal,
};
use spanpipe_otlp::exporter::otlp_grpc::{OtlpGrpcConfig, OtlpGrpcExporter};
use tokio::time::Instant;

use crate::balancer::Balancer;

use crate::config::{LoadBalancingConfig, ResolverKind, RoutingKey};

/// Builds `loadbalancing` exporters (traces).
pub struct LoadBalancingExporterFactory;

/// Everything a backend's exporter is built from at run time, checked once at build time.
#[derive(Clone)]
pub(crate) struct BackendTemplate {
    /// The context and node of `protocol.otlp`, so errors of a backend built later are located there too.
    pub ctx: BuildContext,
    pub node: Node,
    pub otlp: OtlpGrpcConfig,
    pub settings: ExporterSettings,
}

impl BackendTemplate {
    /// The `otlp` exporter for one backend `host:port`.
    pub fn exporter(&self, endpoint: &str) -> Result<OtlpGrpcExporter, ConfigError> {
        let mut cfg = self.otlp.clone();
        cfg.endpoint = Some(endpoint.to_string());
        OtlpGrpcExporter::from_config(&self.ctx, &self.node, &cfg)
    }
}

/// The validated parts of a config.
pub(crate) struct Validated {
    pub routing: RoutingKey,
    pub resolver: ResolverKind,
    pub template: BackendTemplate,
}

/// Validates `cfg` (errors located in `node`).
pub(crate) fn validate(
    ctx: &BuildContext,
    node: &Node,
    cfg: &LoadBalancingConfig,
) -> Result<Validated, ConfigError> {
    let routing = cfg
        .routing()
        .map_err(|(keys, m)| ctx.invalid(node, &keys, m))?;
    let resolver = cfg
        .resolver()
        .map_err(|(keys, m)| ctx.invalid(node, &keys, m))?;
    let otlp_node = node
        .get("protocol")
        .and_then(|p| p.get("otlp"))
        .cloned()
        .unwrap_or_else(|| Node::new(Value::Null, node.location.clone()));
    let otlp_ctx = BuildContext::new(ctx.id.clone(), format!("{}.protocol.otlp", ctx.path))
        .with_extensions(ctx.extensions.clone());
    let otlp = cfg.protocol.otlp.clone();
    let settings = ExporterSettings::new(
        &otlp_ctx,
        &otlp_node,
        otlp.sending_queue.clone(),
        otlp.retry_on_failure.clone(),
        otlp.timeout.0,
    )?;
    let template = BackendTemplate {
        ctx: otlp_ctx,
        node: otlp_node,
        otlp,
        settings,
    };
    // The Collector ignores protocol.otlp.endpoint; build one backend to check the rest of the otlp config.
    template.exporter("placeholder:4317")?;
    Ok(Validated {
        routing,
        resolver,
        template,
    })
}

impl ExporterFactory for LoadBalancingExporterFactory {
    fn type_name(&self) -> &'static str {
        "loadbalancing"
    }

    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<BuiltExporter, ConfigError> {
        let cfg: LoadBalancingConfig = ctx.config(node)?;
        let validated = validate(ctx, node, &cfg)?;
        let settings = ExporterSettings::new(
            ctx,
            node,
            cfg.sending_queue.clone(),
            cfg.retry_on_failure.clone(),
            cfg.timeout.0,
        )?;
        let balancer = Balancer::new(
            ctx.id.to_string(),
            validated.routing.clone(),
            validated.template.clone(),
        );
        Ok(BuiltExporter {
            exporter: Arc::new(LoadBalancingExporter {
                resolver: validated.resolver,
                balancer,
            }),
            settings,
        })
    }
}

/// How long one export attempt waits for room in a backend's queue or for a first backend before it answers
/// retryable (the exporter-level queue then retries it with `retry_on_failure`).
const ROUTE_WAIT: Duration = Duration::from_secs(5);

/// The exporter the pipeline sees: routes each batch into the backends' queues.
pub struct LoadBalancingExporter {
    resolver: ResolverKind,
    balancer: Arc<Balancer>,
}

#[async_trait]
impl Exporter for LoadBalancingExporter {
    async fn start(&self) -> Result<(), ComponentError> {
        crate::resolver::start(&self.resolver, &self.balancer)
            .await
            .map_err(|e| ComponentError::new(&self.balancer.id, e))
    }

    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let deadline = Instant::now() + ROUTE_WAIT;
        loop {
            match self.balancer.route(batch).await {
                Err(ExportError::Retryable { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    async fn shutdown(&self) {
        self.balancer.shutdown().await
    }
}
