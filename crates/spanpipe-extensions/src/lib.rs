//! spanpipe's service extensions: side services that are not in any pipeline but run with the collector.
//!
//! `health_check` answers Kubernetes liveness and readiness probes from the service's state and its exporters'
//! send outcomes ([`spanpipe_core::ServiceStatus`]), under the OTel Collector's option names.

pub mod accepted;
pub mod health_check;

use spanpipe_core::Registry;

/// Registers every component of this crate.
pub fn register(registry: &mut Registry) {
    registry.extension(health_check::HealthCheckFactory);
    accepted::register(registry);
}
