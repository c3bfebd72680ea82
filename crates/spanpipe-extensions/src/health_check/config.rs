//! `health_check` settings: the OTel Collector's `healthcheckextension` names and defaults.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;

/// `extensions.health_check`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// `host:port` to serve on (`localhost:PORT` means 127.0.0.1).
    pub endpoint: String,
    /// Where readiness is answered (also at `/readyz`; liveness at `/livez`).
    pub path: String,
    /// Fixed bodies instead of the JSON status document.
    pub response_body: Option<ResponseBody>,
    /// Whether failing exporters make the collector unready.
    pub check_collector_pipeline: PipelineCheck,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            endpoint: "127.0.0.1:13133".into(),
            path: "/".into(),
            response_body: None,
            check_collector_pipeline: PipelineCheck::default(),
        }
    }
}

/// `response_body`: each body replaces the JSON document for its outcome; empty keeps the JSON.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseBody {
    pub healthy: String,
    pub unhealthy: String,
}

/// `check_collector_pipeline`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineCheck {
    pub enabled: bool,
    /// How long an exporter's sends must all have failed before it counts as down.
    pub interval: ConfigDuration,
    /// How many failed sends in a row (more than this) it takes as well.
    pub exporter_failure_threshold: u64,
}

impl Default for PipelineCheck {
    fn default() -> Self {
        PipelineCheck {
            enabled: false,
            interval: ConfigDuration(Duration::from_secs(300)),
            exporter_failure_threshold: 5,
        }
    }
}

/// Parses a listen endpoint: a socket address, or `localhost:<port>` (taken as 127.0.0.1, resolving nothing).
pub fn parse_endpoint(endpoint: &str) -> Result<SocketAddr, String> {
    let text = endpoint.trim();
    let parsed = match text.strip_prefix("localhost:") {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
        None => text.parse().ok(),
    };
    parsed.ok_or_else(|| {
        format!("{endpoint:?} is not a host:port socket address (e.g. 127.0.0.1:13133)")
    })
}

impl HealthCheckConfig {
    /// Checks what serde cannot; returns the offending keys and why.
    pub fn validate(&self) -> Result<SocketAddr, (Vec<&'static str>, String)> {
        let addr = parse_endpoint(&self.endpoint).map_err(|m| (vec!["endpoint"], m))?;
        if !self.path.starts_with('/') {
            return Err((vec!["path"], "must start with /".into()));
        }
        let check = &self.check_collector_pipeline;
        if check.exporter_failure_threshold == 0 {
            let keys = vec!["check_collector_pipeline", "exporter_failure_threshold"];
            return Err((keys, "must be a positive number".into()));
        }
        if check.interval.0.is_zero() {
            let keys = vec!["check_collector_pipeline", "interval"];
            return Err((keys, "must be greater than 0".into()));
        }
        Ok(addr)
    }
}
