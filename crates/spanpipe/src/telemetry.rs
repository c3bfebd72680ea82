//! Self-telemetry settings (`service.telemetry`): logs through `tracing`, internal metrics on a Prometheus
//! endpoint through `metrics-exporter-prometheus`.

mod readers;

use std::collections::BTreeMap;

use serde::Deserialize;
use spanpipe_config::{ConfigError, Node};
use tracing_subscriber::EnvFilter;

/// `service.telemetry`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub logs: LogsConfig,
    pub metrics: MetricsConfig,
    /// The Collector's resource of its own telemetry: accepted; spanpipe's `/metrics` carries no resource.
    pub resource: BTreeMap<String, Option<String>>,
}

/// `service.telemetry.logs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// `RUST_LOG` wins when set.
    pub level: String,
    pub encoding: LogEncoding,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            level: "info".into(),
            encoding: LogEncoding::Console,
        }
    }
}

/// Log line format.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogEncoding {
    #[serde(alias = "text")]
    Console,
    Json,
}

/// `service.telemetry.metrics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where `/metrics` is served; empty disables it.
    pub address: String,
    /// `none` disables internal metrics; `basic`, `normal` and `detailed` all enable them.
    pub level: String,
    /// The Collector's newer form: a `pull` reader's prometheus `host`/`port` replaces `address`.
    pub readers: Vec<readers::Reader>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            address: "127.0.0.1:8888".into(),
            level: "normal".into(),
            readers: Vec::new(),
        }
    }
}

impl TelemetryConfig {
    pub fn from_node(node: &Node) -> Result<Self, ConfigError> {
        let mut cfg: TelemetryConfig = node.deserialize("service.telemetry")?;
        if let Some(address) = readers::address(&cfg.metrics.readers, node)? {
            cfg.metrics.address = address;
        }
        Ok(cfg)
    }
}

/// Installs the log subscriber. Called once, before anything logs.
pub fn init_logs(cfg: &LogsConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cfg.encoding {
        LogEncoding::Json => builder.json().init(),
        LogEncoding::Console => builder.init(),
    }
}

/// Installs the metrics recorder (before components register their counters) and serves `/metrics`.
/// A port already in use is one warning line naming `service.telemetry.metrics.address`, not fatal: the pipeline
/// matters more than its own metrics (the OTel Collector refuses to start instead).
pub fn init_metrics(cfg: &MetricsConfig) {
    if cfg.level == "none" || cfg.address.is_empty() {
        return;
    }
    let addr: std::net::SocketAddr = match cfg.address.parse() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(address = %cfg.address, error = %e, "internal metrics disabled: bad address");
            return;
        }
    };
    let listener = match std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
    {
        Ok(l) => l,
        Err(e) => {
            let line = spanpipe_core::listen_error(METRICS_ADDRESS, addr, &e);
            tracing::warn!("{line}, or \"\" to disable; internal metrics are disabled");
            return;
        }
    };
    match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => {
            spanpipe_core::telemetry::describe();
            tokio::spawn(process_metrics());
            tokio::spawn(serve_metrics(listener, handle));
            tracing::info!(%addr, "internal metrics on /metrics");
        }
        Err(e) => tracing::warn!(%addr, error = %e, "internal metrics disabled"),
    }
}

/// Serves the recorder's `/metrics` through spanpipe's hardened server layer (the same connection caps and
/// timeouts as every other endpoint), for the life of the process; keeps the recorder's upkeep going.
async fn serve_metrics(
    listener: tokio::net::TcpListener,
    handle: metrics_exporter_prometheus::PrometheusHandle,
) {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let handle = handle.clone();
        async move {
            let (status, body) = match (req.method(), req.uri().path()) {
                (&http::Method::GET, "/metrics") => (http::StatusCode::OK, handle.render()),
                (_, "/metrics") => (http::StatusCode::METHOD_NOT_ALLOWED, String::new()),
                _ => (http::StatusCode::NOT_FOUND, String::new()),
            };
            let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let never = tokio_util::sync::CancellationToken::new();
    spanpipe_net::serve_admin(
        "internal metrics",
        listener,
        svc,
        never,
        std::time::Duration::from_secs(1),
    )
    .await;
}

const METRICS_ADDRESS: &str = "service.telemetry.metrics.address";

/// How often the process metrics are refreshed (reading one small /proc file).
const PROCESS_METRICS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The OTel Collector's process metrics: `otelcol_process_uptime_seconds_total` and, on Linux,
/// `otelcol_process_memory_rss_bytes`. Runs until the runtime stops.
async fn process_metrics() {
    metrics::describe_counter!(
        "otelcol_process_uptime_seconds_total",
        metrics::Unit::Seconds,
        "Uptime of the process."
    );
    metrics::describe_gauge!(
        "otelcol_process_memory_rss_bytes",
        metrics::Unit::Bytes,
        "Total physical memory (resident set size)."
    );
    metrics::describe_gauge!(
        "spanpipe_memory_budget_used_bytes",
        metrics::Unit::Bytes,
        "Bytes of requests held in pipelines, queues and exports (service.memory_limit bounds it)."
    );
    metrics::describe_gauge!(
        "spanpipe_memory_budget_limit_bytes",
        metrics::Unit::Bytes,
        "service.memory_limit (0: unlimited)."
    );
    let started = std::time::Instant::now();
    let uptime = metrics::counter!("otelcol_process_uptime_seconds_total");
    let rss = metrics::gauge!("otelcol_process_memory_rss_bytes");
    let budget_used = metrics::gauge!("spanpipe_memory_budget_used_bytes");
    let budget_limit = metrics::gauge!("spanpipe_memory_budget_limit_bytes");
    let budget = spanpipe_core::budget::MemoryBudget::global();
    let mut tick = tokio::time::interval(PROCESS_METRICS_EVERY);
    loop {
        tick.tick().await;
        uptime.absolute(started.elapsed().as_secs());
        if let Some(bytes) = resident_bytes() {
            rss.set(bytes as f64);
        }
        budget_used.set(budget.used() as f64);
        budget_limit.set(budget.limit() as f64);
    }
}

/// `VmRSS` of /proc/self/status (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_in_bytes() {
        let status = "Name:\tspanpipe\nVmPeak:\t  9000 kB\nVmRSS:\t   53148 kB\nThreads:\t5\n";
        assert_eq!(parse_vm_rss(status), Some(53148 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        if cfg!(target_os = "linux") {
            assert!(
                resident_bytes().unwrap() > 1 << 20,
                "this test process holds over 1 MiB"
            );
        }
    }
}
