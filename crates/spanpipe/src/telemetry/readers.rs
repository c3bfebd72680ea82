//! `service.telemetry.metrics.readers`: the OTel Collector's (v0.123+) way of configuring its internal metrics
//! endpoint, `- pull: { exporter: { prometheus: { host, port } } }`. A pull reader takes the place of `address`;
//! `periodic` (push) readers are refused with a located error, spanpipe's own metrics being pull only.

use serde::Deserialize;
use spanpipe_config::{ConfigError, Node};

/// One reader.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reader {
    pub pull: Option<Pull>,
    /// Push readers: not supported (a located error).
    pub periodic: Option<serde::de::IgnoredAny>,
}

/// `pull`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pull {
    pub exporter: PullExporter,
}

/// `pull.exporter`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PullExporter {
    pub prometheus: Option<PrometheusPull>,
}

/// `pull.exporter.prometheus`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusPull {
    pub host: String,
    pub port: u16,
    /// Accepted; the `otel_scope_*` labels are not added to spanpipe's own metrics anyway.
    pub without_scope_info: bool,
    /// Accepted; spanpipe's own metric names are fixed (the Collector's, with `_total`).
    pub without_type_suffix: bool,
    /// Accepted; see `without_type_suffix`.
    pub without_units: bool,
}

impl Default for PrometheusPull {
    fn default() -> Self {
        PrometheusPull {
            host: "localhost".into(),
            port: 8888,
            without_scope_info: false,
            without_type_suffix: false,
            without_units: false,
        }
    }
}

/// The address the readers ask for (`None`: no readers), or a located error for an unsupported reader.
pub fn address(readers: &[Reader], node: &Node) -> Result<Option<String>, ConfigError> {
    let at = |i: usize, key: &str| {
        let reader = node
            .get("metrics")
            .and_then(|m| m.get("readers"))
            .and_then(|r| match &r.value {
                spanpipe_config::Value::Seq(items) => items.get(i),
                _ => None,
            });
        let location = reader
            .and_then(|r| r.get(key).or(Some(r)))
            .map_or_else(|| node.location.clone(), |n| n.location.clone());
        (
            location,
            format!("service.telemetry.metrics.readers[{i}].{key}"),
        )
    };
    let mut found = None;
    for (i, r) in readers.iter().enumerate() {
        if r.periodic.is_some() {
            let (location, key) = at(i, "periodic");
            return Err(ConfigError::new(
                location,
                key,
                "push (periodic) readers are not supported: spanpipe's own metrics are served for scraping; \
                 use a pull reader with a prometheus exporter",
            ));
        }
        let Some(prom) = r.pull.as_ref().and_then(|p| p.exporter.prometheus.as_ref()) else {
            let (location, key) = at(i, "pull");
            return Err(ConfigError::new(
                location,
                key,
                "expected pull.exporter.prometheus",
            ));
        };
        if found.is_some() {
            let (location, key) = at(i, "pull");
            return Err(ConfigError::new(
                location,
                key,
                "only one pull reader is supported",
            ));
        }
        let host = match prom.host.as_str() {
            "localhost" | "" => "127.0.0.1",
            h => h,
        };
        found = Some(if host.contains(':') {
            format!("[{host}]:{}", prom.port)
        } else {
            format!("{host}:{}", prom.port)
        });
    }
    Ok(found)
}
