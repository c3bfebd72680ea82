//! `logging`: the OTel Collector's exporter removed in v0.111 in favour of `debug`, still found in many configs.
//! Accepted as a deprecated alias of [`debug`](super::debug) with its old options: `loglevel` (or `logLevel`)
//! maps to a verbosity as the Collector did (`debug` → `detailed`, `info` → `normal`, `warn`/`error` →
//! `basic`); `verbosity` wins when both are set. The service warns, naming the replacement.

use std::sync::Arc;

use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;
use spanpipe_core::{
    BuildContext, BuiltExporter, ConfigError, ExporterFactory, ExporterSettings, Node,
    QueueSettings, RetrySettings, Signal,
};

use super::debug::{DebugConfig, DebugExporter, Verbosity};

/// The Collector's `loglevel`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Configuration of the `logging` exporter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    #[serde(alias = "logLevel")]
    pub loglevel: LogLevel,
    pub verbosity: Option<Verbosity>,
    /// Accepted; every batch is printed (the Collector's log sampling is not reproduced).
    pub sampling_initial: u32,
    /// Accepted; see `sampling_initial`.
    pub sampling_thereafter: u32,
    pub sending_queue: QueueSettings,
    pub retry_on_failure: RetrySettings,
    pub timeout: ConfigDuration,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        let debug = DebugConfig::default();
        LoggingConfig {
            loglevel: LogLevel::Info,
            verbosity: None,
            sampling_initial: 2,
            sampling_thereafter: 500,
            sending_queue: debug.sending_queue,
            retry_on_failure: debug.retry_on_failure,
            timeout: debug.timeout,
        }
    }
}

impl LoggingConfig {
    /// `verbosity`, or the one `loglevel` implies.
    pub fn effective_verbosity(&self) -> Verbosity {
        self.verbosity.unwrap_or(match self.loglevel {
            LogLevel::Debug => Verbosity::Detailed,
            LogLevel::Info => Verbosity::Normal,
            LogLevel::Warn | LogLevel::Error => Verbosity::Basic,
        })
    }
}

/// Builds `logging` exporters (a `debug` exporter each).
pub struct LoggingExporterFactory;

impl ExporterFactory for LoggingExporterFactory {
    fn type_name(&self) -> &'static str {
        "logging"
    }

    fn signals(&self) -> &'static [Signal] {
        super::ALL_SIGNALS
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<BuiltExporter, ConfigError> {
        let cfg: LoggingConfig = ctx.config(node)?;
        let verbosity = cfg.effective_verbosity();
        let settings = ExporterSettings::new(
            ctx,
            node,
            cfg.sending_queue,
            cfg.retry_on_failure,
            cfg.timeout.0,
        )?;
        Ok(BuiltExporter {
            exporter: Arc::new(DebugExporter::new(ctx.id.to_string(), verbosity)),
            settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::test_util::{build_err, ctx, node};

    fn cfg(yaml: &str) -> LoggingConfig {
        ctx("logging").config(&node(yaml)).unwrap()
    }

    #[test]
    fn loglevel_maps_to_verbosity() {
        assert_eq!(cfg("{}").effective_verbosity(), Verbosity::Normal);
        assert_eq!(
            cfg("loglevel: debug").effective_verbosity(),
            Verbosity::Detailed
        );
        assert_eq!(
            cfg("logLevel: warn").effective_verbosity(),
            Verbosity::Basic
        );
        assert_eq!(
            cfg("loglevel: debug\nverbosity: basic").effective_verbosity(),
            Verbosity::Basic
        );
        assert!(
            LoggingExporterFactory
                .build(&ctx("logging"), &node("sampling_initial: 5"))
                .is_ok()
        );
        let e = build_err(LoggingExporterFactory.build(&ctx("logging"), &node("loglevel: loud")));
        assert!(e.contains("loglevel"), "{e}");
    }
}
