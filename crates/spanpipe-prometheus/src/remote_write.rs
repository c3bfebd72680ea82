//! `prometheus_remote_write`: sends each metrics batch to a remote-write 1.0 endpoint (Prometheus with
//! `--web.enable-remote-write-receiver`, Mimir, Thanos...), named and labelled exactly as the `prometheus`
//! exporter serves them.
//!
//! Each point becomes time series stamped with the point's time: a number one series, a histogram one
//! `_bucket{le=...}` series per bound plus `+Inf`, `_sum` and `_count`, a summary one series per quantile plus
//! `_sum` and `_count`. Delta points are dropped (as the Go exporter does; use cumulative sources). Requests are
//! cut at `max_batch_size_bytes` (before compression) and sent one after another; a retry resends all of them,
//! which Prometheus takes as duplicates of identical samples, i.e. without error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use serde::Deserialize;
use spanpipe_config::{ByteSize, Duration as ConfigDuration, Secret};
use spanpipe_core::{
    Batch, BuildContext, BuiltExporter, ComponentError, ConfigError, ExportError, Exporter,
    ExporterFactory, ExporterSettings, Node, QueueSettings, RetrySettings, Signal, StartOnce,
};
use spanpipe_net::client::TlsSettings;
use spanpipe_net::client::{check_http_url, http_headers};
use spanpipe_otlp::exporter::otlp_http::{map_send_error, read_capped, retry_after};

use crate::names::go_float;
use crate::prompb::{Label, Sample, TimeSeries, WriteRequest};
use crate::scrape::{ResourceToTelemetry, const_labels};
use crate::translate::{Options, Point, Value, translate};

/// Prometheus' staleness marker.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Configuration of the `prometheus_remote_write` exporter (names of the OTel Collector's).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    /// e.g. `http://127.0.0.1:9090/api/v1/write`. Required.
    pub endpoint: Option<String>,
    pub headers: BTreeMap<String, Secret>,
    pub tls: TlsSettings,
    pub timeout: ConfigDuration,
    pub namespace: String,
    pub external_labels: BTreeMap<String, String>,
    pub add_metric_suffixes: bool,
    pub resource_to_telemetry_conversion: ResourceToTelemetry,
    pub without_scope_info: bool,
    /// One `target_info` series per resource, carrying its attributes.
    pub target_info: TargetInfo,
    pub max_batch_size_bytes: ByteSize,
    /// One consumer by default, so one series' samples arrive in time order (Prometheus refuses older ones).
    pub sending_queue: QueueSettings,
    /// The Collector's name for this exporter's queue: when given, its settings apply to `sending_queue`.
    pub remote_write_queue: Option<RemoteWriteQueue>,
    pub retry_on_failure: RetrySettings,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            endpoint: None,
            headers: BTreeMap::new(),
            tls: TlsSettings::default(),
            timeout: ConfigDuration(Duration::from_secs(5)),
            namespace: String::new(),
            external_labels: BTreeMap::new(),
            add_metric_suffixes: true,
            resource_to_telemetry_conversion: ResourceToTelemetry::default(),
            without_scope_info: false,
            target_info: TargetInfo { enabled: true },
            max_batch_size_bytes: ByteSize(3_000_000),
            sending_queue: QueueSettings {
                num_consumers: 1,
                ..QueueSettings::default()
            },
            remote_write_queue: None,
            retry_on_failure: RetrySettings::default(),
        }
    }
}

/// `remote_write_queue` (the Collector's defaults when the section is present).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteQueue {
    pub enabled: bool,
    pub queue_size: usize,
    pub num_consumers: usize,
}

impl Default for RemoteWriteQueue {
    fn default() -> Self {
        RemoteWriteQueue {
            enabled: true,
            queue_size: 10_000,
            num_consumers: 5,
        }
    }
}

/// `target_info: { enabled: true }`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TargetInfo {
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Builds `prometheus_remote_write` exporters.
pub struct RemoteWriteExporterFactory;

impl ExporterFactory for RemoteWriteExporterFactory {
    fn type_name(&self) -> &'static str {
        "prometheus_remote_write"
    }

    fn signals(&self) -> &'static [Signal] {
        &[Signal::Metrics]
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<BuiltExporter, ConfigError> {
        let cfg: RemoteWriteConfig = ctx.config(node)?;
        let url = match &cfg.endpoint {
            Some(e) => check_http_url(e).map_err(|m| ctx.invalid(node, &["endpoint"], m))?,
            None => return Err(ctx.invalid(node, &["endpoint"], "is required")),
        };
        let headers =
            http_headers(&cfg.headers).map_err(|(k, m)| ctx.invalid(node, &["headers", &k], m))?;
        let options = Options {
            namespace: cfg.namespace.clone(),
            add_metric_suffixes: cfg.add_metric_suffixes,
            resource_to_telemetry: cfg.resource_to_telemetry_conversion.enabled,
            without_scope_info: cfg.without_scope_info,
            const_labels: const_labels(ctx, node, "external_labels", &cfg.external_labels)?,
        };
        let settings = ExporterSettings::new(
            ctx,
            node,
            match &cfg.remote_write_queue {
                Some(q) => QueueSettings {
                    enabled: q.enabled,
                    queue_size: q.queue_size,
                    num_consumers: q.num_consumers,
                    ..cfg.sending_queue.clone()
                },
                None => cfg.sending_queue.clone(),
            },
            cfg.retry_on_failure.clone(),
            cfg.timeout.0,
        )?;
        Ok(BuiltExporter {
            exporter: Arc::new(RemoteWriteExporter {
                id: ctx.id.to_string(),
                url,
                headers,
                tls: cfg.tls,
                timeout: cfg.timeout.0,
                options,
                target_info: cfg.target_info.enabled,
                max_bytes: usize::try_from(cfg.max_batch_size_bytes.0)
                    .unwrap_or(usize::MAX)
                    .max(1),
                client: StartOnce::default(),
            }),
            settings,
        })
    }
}

/// Pushes metrics with the remote-write protocol.
pub struct RemoteWriteExporter {
    id: String,
    url: reqwest::Url,
    headers: http::HeaderMap,
    tls: TlsSettings,
    timeout: Duration,
    options: Options,
    target_info: bool,
    max_bytes: usize,
    client: StartOnce<reqwest::Client>,
}

fn series(
    labels: &[(Arc<str>, String)],
    name: String,
    extra: Option<(&str, String)>,
    value: f64,
    ts: i64,
) -> TimeSeries {
    let mut l: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label {
            name: k.to_string(),
            value: v.clone(),
        })
        .collect();
    l.push(Label {
        name: "__name__".into(),
        value: name,
    });
    if let Some((k, v)) = extra {
        l.push(Label {
            name: k.into(),
            value: v,
        });
    }
    l.sort_by(|a, b| a.name.cmp(&b.name));
    TimeSeries {
        labels: l,
        samples: vec![Sample {
            value,
            timestamp: ts,
        }],
    }
}

/// The time series of one point (none for a delta point).
pub fn point_series(p: &Point, out: &mut Vec<TimeSeries>) {
    if p.delta {
        return;
    }
    let ts = i64::try_from(p.time_ns / 1_000_000).unwrap_or(i64::MAX);
    let v = |x: f64| {
        if p.stale {
            f64::from_bits(STALE_NAN)
        } else {
            x
        }
    };
    let name = |suffix: &str| format!("{}{suffix}", p.family);
    match &p.value {
        Value::Number(x) => out.push(series(&p.labels, name(""), None, v(*x), ts)),
        Value::Histogram {
            bounds,
            counts,
            sum,
            count,
        } => {
            let mut cumulative = 0u64;
            for (b, c) in bounds.iter().zip(counts) {
                cumulative += c;
                let le = Some(("le", go_float(*b)));
                out.push(series(
                    &p.labels,
                    name("_bucket"),
                    le,
                    v(cumulative as f64),
                    ts,
                ));
            }
            let inf = Some(("le", "+Inf".to_string()));
            out.push(series(
                &p.labels,
                name("_bucket"),
                inf,
                v(*count as f64),
                ts,
            ));
            out.push(series(&p.labels, name("_sum"), None, v(*sum), ts));
            out.push(series(
                &p.labels,
                name("_count"),
                None,
                v(*count as f64),
                ts,
            ));
        }
        Value::Summary {
            quantiles,
            sum,
            count,
        } => {
            for (q, x) in quantiles {
                let q = Some(("quantile", go_float(*q)));
                out.push(series(&p.labels, name(""), q, v(*x), ts));
            }
            out.push(series(&p.labels, name("_sum"), None, v(*sum), ts));
            out.push(series(
                &p.labels,
                name("_count"),
                None,
                v(*count as f64),
                ts,
            ));
        }
    }
}

/// A metrics request as remote-write requests of at most `max_bytes` each (a single larger series goes alone).
pub fn write_requests(
    req: &ExportMetricsServiceRequest,
    o: &Options,
    target_info: bool,
    max_bytes: usize,
) -> Vec<WriteRequest> {
    let mut all = Vec::new();
    translate(req, o, |p| point_series(&p, &mut all));
    if target_info {
        target_info::target_info(req, o, &mut all);
    }
    let mut out = Vec::new();
    let mut current = WriteRequest::default();
    let mut size = 0usize;
    for ts in all {
        let len = ts.encoded_len() + 4;
        if size + len > max_bytes && !current.timeseries.is_empty() {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.timeseries.push(ts);
    }
    if !current.timeseries.is_empty() {
        out.push(current);
    }
    out
}

impl RemoteWriteExporter {
    fn make_client(&self) -> Result<reqwest::Client, String> {
        self.tls.http_client(self.headers.clone(), self.timeout)
    }

    async fn send(&self, client: &reqwest::Client, w: &WriteRequest) -> Result<(), ExportError> {
        let body = snap::raw::Encoder::new()
            .compress_vec(&w.encode_to_vec())
            .map_err(|e| ExportError::permanent(format!("snappy: {e}")))?;
        let resp = client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .header(CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .await
            .map_err(map_send_error)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let delay = retry_after(resp.headers(), SystemTime::now());
        let body = read_capped(resp).await;
        let text = String::from_utf8_lossy(&body[..body.len().min(256)])
            .trim()
            .to_string();
        let reason = format!("http {}: {text}", status.as_u16());
        Err(if status.as_u16() == 429 || status.is_server_error() {
            ExportError::Retryable { reason, delay }
        } else {
            ExportError::Permanent { reason }
        })
    }
}

#[async_trait]
impl Exporter for RemoteWriteExporter {
    async fn start(&self) -> Result<(), ComponentError> {
        self.client.start(&self.id, || self.make_client())
    }

    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let client = self.client.get()?;
        if batch.signal != Signal::Metrics {
            return Err(ExportError::permanent(format!(
                "prometheus_remote_write exports metrics, not {}",
                batch.signal
            )));
        }
        let req = batch
            .payload
            .decode::<ExportMetricsServiceRequest>()
            .map_err(|e| ExportError::undecodable(format!("malformed metrics: {e}")))?;
        for w in write_requests(&req, &self.options, self.target_info, self.max_bytes) {
            self.send(client, &w).await?;
        }
        Ok(())
    }
}

mod target_info;

#[cfg(test)]
mod tests;
