//! The `mlflow` exporter: OTLP traces into MLflow experiments — a self-hosted tracking server, the OpenShift
//! MLflow gateway (workspaces, rotating service-account tokens, cluster CA) or Databricks.
//!
//! Spans stay encoded: a batch is routed per resource to experiments, grouped by trace and cut into requests by
//! copying field bytes, then POSTed to MLflow's OTLP endpoint (`/v1/traces`, protobuf, gzip by default) with the
//! `x-mlflow-experiment-id` header. Experiment names are resolved (and created) lazily through MLflow's REST API.
//! See `README.md` for the configuration reference and the status-by-status error handling.

pub mod api;
pub mod auth;
pub mod bucket;
pub mod config;
pub mod delivered;
pub mod experiments;
pub mod exporter;
pub mod group;
pub mod routing;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use spanpipe_core::{
    BuildContext, BuiltExporter, ConfigError, ExporterFactory, ExporterSettings, Node, Registry,
    Signal,
};

use crate::config::MlflowConfig;
use crate::exporter::{EnvFn, MlflowExporter};

/// Registers the `mlflow` exporter.
pub fn register(registry: &mut Registry) {
    registry.exporter(MlflowExporterFactory::default(), &[]);
}

/// Builds `mlflow` exporters. `env` is how Databricks' variables are read when an exporter starts.
#[derive(Clone)]
pub struct MlflowExporterFactory {
    pub env: EnvFn,
}

impl Default for MlflowExporterFactory {
    fn default() -> Self {
        MlflowExporterFactory {
            env: Arc::new(|k| std::env::var(k).ok()),
        }
    }
}

impl ExporterFactory for MlflowExporterFactory {
    fn type_name(&self) -> &'static str {
        "mlflow"
    }

    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<BuiltExporter, ConfigError> {
        let cfg: MlflowConfig = ctx.config(node)?;
        let settings = cfg.validate().map_err(|e| e.locate(ctx, node))?;
        let exporter_settings = ExporterSettings::new(
            ctx,
            node,
            cfg.sending_queue.clone(),
            cfg.retry_on_failure.clone(),
            cfg.timeout.0,
        )?;
        let client_auth =
            spanpipe_otlp::exporter::client_auth::resolve(cfg.auth.as_ref(), ctx, node)?;
        let mut exporter = MlflowExporter::new(ctx.id.to_string(), settings, self.env.clone());
        if let Some(a) = client_auth {
            exporter = exporter.with_client_auth(a);
        }
        Ok(BuiltExporter {
            exporter: Arc::new(exporter),
            settings: exporter_settings,
        })
    }
}
