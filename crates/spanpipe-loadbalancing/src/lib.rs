//! The `loadbalancing` exporter (the OTel Collector contrib exporter of that name): routes every span by a routing
//! key (trace id by default) over a consistent-hash ring of OTLP/gRPC backends, so all spans of a trace reach the
//! same backend — what a second tier with `tail_sampling`, `mlflow_spanmetrics` or MLflow's per-trace grouping
//! needs. Backends come from a resolver (`static`, `dns`, `k8s`); each has its own `otlp` exporter and sending
//! queue, so a dead backend never stalls the others, and a membership change moves only ~1/N of the keys.
//!
//! Requests stay encoded: they are cut by routing key at span boundaries through `spanpipe_core::wire`.

mod backend;
mod balancer;
pub mod config;
mod exporter;
mod resolver;
pub mod ring;
pub mod route;
#[cfg(test)]
mod test_util;

pub use config::LoadBalancingConfig;
pub use exporter::LoadBalancingExporterFactory;

use spanpipe_core::Registry;

/// Registers the `loadbalancing` exporter.
pub fn register(registry: &mut Registry) {
    registry.exporter(exporter::LoadBalancingExporterFactory, &[]);
}
