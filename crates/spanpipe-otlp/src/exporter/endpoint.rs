//! Endpoint and header handling of the gRPC and HTTP exporters, done at build time so a typo is a config error
//! with file and line rather than a failed export. The protocol-neutral checks live in spanpipe-net's client
//! layer (re-exported here, their old path); the OTLP signal paths are OTLP's own.

use spanpipe_core::Signal;

pub use spanpipe_net::client::endpoint::{GrpcTarget, check_http_url, grpc_target, http_headers};

/// The OTLP/HTTP path of a signal.
pub fn http_signal_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "v1/traces",
        Signal::Metrics => "v1/metrics",
        Signal::Logs => "v1/logs",
    }
}

/// `base` + `/v1/<signal>`, with exactly one slash between them.
pub fn join_signal_path(base: &str, signal: Signal) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        http_signal_path(signal)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_paths_join_with_one_slash() {
        assert_eq!(
            join_signal_path("http://h:4318", Signal::Traces),
            "http://h:4318/v1/traces"
        );
        assert_eq!(
            join_signal_path("http://h:4318/", Signal::Metrics),
            "http://h:4318/v1/metrics"
        );
        assert_eq!(
            join_signal_path("http://h/otlp//", Signal::Logs),
            "http://h/otlp/v1/logs"
        );
    }
}
