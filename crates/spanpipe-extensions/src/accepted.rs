//! `zpages` and `pprof`: OTel Collector extensions that many configs list (`extensions: [health_check, pprof,
//! zpages]`) but that are Go-runtime debugging pages. spanpipe accepts their configuration with the Collector's
//! option names and defaults, validates it, serves nothing, and warns once per configured component naming what
//! to use instead (the service's `/metrics`, `RUST_LOG`, a profiler such as `perf`).

use std::sync::Arc;

use serde::Deserialize;
use spanpipe_core::listen::Endpoint;
use spanpipe_core::{BuildContext, ConfigError, Extension, ExtensionFactory, Node, Registry};

/// `zpages` (the Collector's defaults).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ZpagesConfig {
    /// Where the Collector serves `/debug/servicez`, `/debug/pipelinez`, `/debug/tracez`.
    pub endpoint: String,
    pub expvar: Expvar,
}

/// `zpages.expvar`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Expvar {
    pub enabled: bool,
}

impl Default for ZpagesConfig {
    fn default() -> Self {
        ZpagesConfig {
            endpoint: "localhost:55679".into(),
            expvar: Expvar::default(),
        }
    }
}

/// `pprof` (the Collector's defaults).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PprofConfig {
    /// Where the Collector serves Go's `/debug/pprof/`.
    pub endpoint: String,
    pub block_profile_fraction: i64,
    pub mutex_profile_fraction: i64,
    pub save_to_file: String,
}

impl Default for PprofConfig {
    fn default() -> Self {
        PprofConfig {
            endpoint: "localhost:1777".into(),
            block_profile_fraction: 0,
            mutex_profile_fraction: 0,
            save_to_file: String::new(),
        }
    }
}

/// An extension that does nothing (its config was checked).
struct Inert;

impl Extension for Inert {}

fn check_endpoint(ctx: &BuildContext, node: &Node, endpoint: &str) -> Result<(), ConfigError> {
    Endpoint::parse(endpoint)
        .map(|_| ())
        .map_err(|m| ctx.invalid(node, &["endpoint"], m))
}

/// Builds `zpages` extensions.
pub struct ZpagesFactory;

impl ExtensionFactory for ZpagesFactory {
    fn type_name(&self) -> &'static str {
        "zpages"
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<Arc<dyn Extension>, ConfigError> {
        let cfg: ZpagesConfig = ctx.config(node)?;
        check_endpoint(ctx, node, &cfg.endpoint)?;
        Ok(Arc::new(Inert))
    }
}

/// Builds `pprof` extensions.
pub struct PprofFactory;

impl ExtensionFactory for PprofFactory {
    fn type_name(&self) -> &'static str {
        "pprof"
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<Arc<dyn Extension>, ConfigError> {
        let cfg: PprofConfig = ctx.config(node)?;
        check_endpoint(ctx, node, &cfg.endpoint)?;
        Ok(Arc::new(Inert))
    }
}

/// Registers both, with the warning their users see.
pub fn register(registry: &mut Registry) {
    registry.extension(ZpagesFactory).notice(
        "extensions",
        "zpages",
        "accepted but not served: spanpipe has no zPages; pipeline and exporter state is on the internal \
         metrics endpoint (service.telemetry.metrics.address) and in the logs",
    );
    registry.extension(PprofFactory).notice(
        "extensions",
        "pprof",
        "accepted but not served: pprof profiles Go programs; profile spanpipe with `perf record -g -p <pid>` \
         (or any sampling profiler) instead",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanpipe_core::ComponentId;

    fn build(f: &dyn ExtensionFactory, yaml: &str) -> Result<Arc<dyn Extension>, ConfigError> {
        let ctx = BuildContext::new(
            f.type_name().parse::<ComponentId>().unwrap(),
            format!("extensions.{}", f.type_name()),
        );
        let node = spanpipe_config::load_str("t.yaml", yaml).unwrap();
        f.build(&ctx, &node)
    }

    #[test]
    fn configs_are_checked() {
        assert!(
            build(
                &ZpagesFactory,
                "endpoint: 0.0.0.0:55679\nexpvar: { enabled: true }"
            )
            .is_ok()
        );
        assert!(
            build(
                &PprofFactory,
                "endpoint: :1777\nblock_profile_fraction: 3\nsave_to_file: x"
            )
            .is_ok()
        );
        assert!(build(&ZpagesFactory, "endpont: x").is_err());
        let e = build(&PprofFactory, "endpoint: nope")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("extensions.pprof.endpoint"), "{e}");
    }
}
