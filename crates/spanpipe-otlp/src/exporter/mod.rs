//! The `otlp` (gRPC), `otlp_http`, `debug` and `file` exporters.
//!
//! Each implements one export attempt; the core's sending queue adds queueing, retries and the per-attempt
//! timeout. Builds are side-effect free (`validate` runs them): clients, channels and files are created in
//! `start()`.

pub mod client_auth;
pub mod debug;
pub mod endpoint;
pub mod file;
mod grpc_unary;
pub mod logging;
pub mod otlp_grpc;
pub mod otlp_http;
mod partial;
pub mod tls;

#[cfg(test)]
pub(crate) mod test_util;

use spanpipe_core::Signal;

/// Every exporter here handles all three signals.
pub(crate) const ALL_SIGNALS: &[Signal] = &[Signal::Traces, Signal::Metrics, Signal::Logs];

/// What an item of `signal` is called in messages ("12 spans").
pub(crate) fn item_noun(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans",
        Signal::Metrics => "data points",
        Signal::Logs => "log records",
    }
}
