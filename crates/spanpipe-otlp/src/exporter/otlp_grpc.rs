//! `otlp`: OTLP over gRPC (tonic). The batch's encoded bytes go out unchanged through [`RawCodec`], so exporting
//! costs a compression and a copy into the HTTP/2 frames, never a protobuf encode.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::uri::PathAndQuery;
use serde::Deserialize;
use spanpipe_config::{Duration as ConfigDuration, Secret};
use spanpipe_core::retry::classify_grpc;
use spanpipe_core::{
    Batch, BuildContext, BuiltExporter, ComponentError, ConfigError, ExportError, Exporter,
    ExporterFactory, ExporterSettings, Node, QueueSettings, RetrySettings, Signal, StartOnce,
};
use spanpipe_net::client::{GrpcTarget, TlsSettings, grpc_target};
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::client_auth::{ClientAuthSettings, http_header};
use super::partial::{PartialSuccessLog, rejected_from_protobuf};
use crate::grpc_codec::RawCodec;

/// `compression:` of the gRPC exporter (what tonic can send).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GrpcCompression {
    None,
    #[default]
    Gzip,
    Zstd,
}

impl GrpcCompression {
    fn encoding(self) -> Option<CompressionEncoding> {
        match self {
            GrpcCompression::None => None,
            GrpcCompression::Gzip => Some(CompressionEncoding::Gzip),
            GrpcCompression::Zstd => Some(CompressionEncoding::Zstd),
        }
    }
}

/// Configuration of the `otlp` exporter; names and defaults follow the OTel Collector's `otlp` exporter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpGrpcConfig {
    /// `host:port` (TLS unless `tls.insecure`) or an `http://` / `https://` URL. Required.
    pub endpoint: Option<String>,
    pub tls: TlsSettings,
    pub compression: GrpcCompression,
    /// Sent as gRPC metadata with every request (e.g. an API key).
    pub headers: BTreeMap<String, Secret>,
    /// Client authentication through an authenticator extension (`auth: { authenticator: bearertokenauth }`).
    pub auth: Option<ClientAuthSettings>,
    pub timeout: ConfigDuration,
    pub sending_queue: QueueSettings,
    pub retry_on_failure: RetrySettings,
    /// Accepted for Collector configs: one channel to the endpoint (gRPC's `pick_first`).
    pub balancer_name: String,
    /// Accepted for Collector configs: a call waits for the connection within `timeout` either way.
    pub wait_for_ready: bool,
}

impl Default for OtlpGrpcConfig {
    fn default() -> Self {
        OtlpGrpcConfig {
            endpoint: None,
            tls: TlsSettings::default(),
            compression: GrpcCompression::Gzip,
            headers: BTreeMap::new(),
            auth: None,
            timeout: ConfigDuration(Duration::from_secs(5)),
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
            balancer_name: "round_robin".into(),
            wait_for_ready: false,
        }
    }
}

/// Builds `otlp` exporters.
pub struct OtlpGrpcExporterFactory;

impl ExporterFactory for OtlpGrpcExporterFactory {
    fn type_name(&self) -> &'static str {
        "otlp"
    }

    fn signals(&self) -> &'static [Signal] {
        super::ALL_SIGNALS
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<BuiltExporter, ConfigError> {
        let cfg: OtlpGrpcConfig = ctx.config(node)?;
        let exporter = OtlpGrpcExporter::from_config(ctx, node, &cfg)?;
        let settings = ExporterSettings::new(
            ctx,
            node,
            cfg.sending_queue.clone(),
            cfg.retry_on_failure.clone(),
            cfg.timeout.0,
        )?;
        Ok(BuiltExporter {
            exporter: Arc::new(exporter),
            settings,
        })
    }
}

/// Headers as gRPC metadata; the error names the offending key.
fn metadata(headers: &BTreeMap<String, Secret>) -> Result<MetadataMap, (String, String)> {
    let mut map = MetadataMap::with_capacity(headers.len());
    for (k, v) in headers {
        let key = AsciiMetadataKey::from_bytes(k.as_bytes())
            .map_err(|_| (k.clone(), format!("{k:?} is not a valid gRPC metadata key")))?;
        // The gRPC spec allows printable ASCII only in text metadata; tonic would pass other bytes through.
        let v = v.expose();
        if !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err((
                k.clone(),
                format!("the value of {k:?} must be printable ASCII (gRPC metadata)"),
            ));
        }
        let value = AsciiMetadataValue::try_from(v).map_err(|_| {
            (
                k.clone(),
                format!("the value of {k:?} is not valid gRPC metadata"),
            )
        })?;
        map.insert(key, value);
    }
    Ok(map)
}

/// The gRPC method of a signal's OTLP service.
pub fn export_path(signal: Signal) -> PathAndQuery {
    PathAndQuery::from_static(match signal {
        Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    })
}

/// Sends batches to one OTLP/gRPC endpoint over one lazily connected channel (HTTP/2 multiplexes the
/// concurrent exports of the queue's workers).
pub struct OtlpGrpcExporter {
    id: String,
    target: GrpcTarget,
    tls: TlsSettings,
    compression: Option<CompressionEncoding>,
    metadata: MetadataMap,
    /// Credentials per request (`auth.authenticator`); its key wins over a `headers` entry of the same name.
    auth: Option<Arc<dyn spanpipe_core::auth::ClientAuth>>,
    /// Sent as `grpc-timeout` so the server can give up too; the core enforces it on our side.
    timeout: Duration,
    channel: StartOnce<Channel>,
    partial: PartialSuccessLog,
}

impl OtlpGrpcExporter {
    /// Validates the config into an exporter; no I/O.
    pub fn from_config(
        ctx: &BuildContext,
        node: &Node,
        cfg: &OtlpGrpcConfig,
    ) -> Result<Self, ConfigError> {
        let target = grpc_target(cfg.endpoint.as_deref().unwrap_or(""), cfg.tls.insecure)
            .map_err(|m| ctx.invalid(node, &["endpoint"], m))?;
        if !target.tls && (cfg.tls.ca_file.is_some() || cfg.tls.insecure_skip_verify) {
            return Err(ctx.invalid(
                node,
                &["tls"],
                "ca_file and insecure_skip_verify need a TLS endpoint (https:// or tls.insecure: false)",
            ));
        }
        if cfg.tls.ca_file.is_some() && cfg.tls.insecure_skip_verify {
            return Err(ctx.invalid(
                node,
                &["tls", "insecure_skip_verify"],
                "cannot be combined with ca_file",
            ));
        }
        let metadata =
            metadata(&cfg.headers).map_err(|(k, m)| ctx.invalid(node, &["headers", &k], m))?;
        let auth = super::client_auth::resolve(cfg.auth.as_ref(), ctx, node)?;
        Ok(OtlpGrpcExporter {
            id: ctx.id.to_string(),
            target,
            tls: cfg.tls.clone(),
            compression: cfg.compression.encoding(),
            metadata,
            auth,
            timeout: cfg.timeout.0,
            channel: StartOnce::default(),
            partial: PartialSuccessLog::default(),
        })
    }

    /// The configured metadata plus the authenticator's credential (marked sensitive), for one request.
    fn request_metadata(&self) -> Result<std::borrow::Cow<'_, MetadataMap>, ExportError> {
        let Some(auth) = &self.auth else {
            return Ok(std::borrow::Cow::Borrowed(&self.metadata));
        };
        let (name, value) = http_header(&**auth)?;
        let key = AsciiMetadataKey::from_bytes(name.as_str().as_bytes()).map_err(|_| {
            ExportError::permanent(format!("client auth: {name} is not a gRPC metadata key"))
        })?;
        let mut value = AsciiMetadataValue::try_from(value.as_bytes()).map_err(|_| {
            ExportError::retryable("client auth: the credential is not valid gRPC metadata")
        })?;
        value.set_sensitive(true);
        let mut map = self.metadata.clone();
        map.insert(key, value);
        Ok(std::borrow::Cow::Owned(map))
    }

    /// The channel, connecting lazily: a backend that is down at startup only makes the first exports retry.
    fn make_channel(&self) -> Result<Channel, String> {
        self.tls.grpc_channel(&self.target)
    }
}

#[async_trait]
impl Exporter for OtlpGrpcExporter {
    async fn start(&self) -> Result<(), ComponentError> {
        self.channel.start(&self.id, || self.make_channel())
    }

    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let channel = self.channel.get()?;
        let metadata = self.request_metadata()?;
        if self.compression.is_none() {
            let timeout = (!self.timeout.is_zero()).then_some(self.timeout);
            let response = super::grpc_unary::unary_raw(
                channel,
                export_path(batch.signal),
                &batch.payload,
                &metadata,
                timeout,
            )
            .await
            .map_err(|s| map_status(&s))?;
            if let Some((n, msg)) = rejected_from_protobuf(batch.signal, &response) {
                self.partial.note(&self.id, batch.signal, n, &msg);
            }
            return Ok(());
        }
        let mut grpc = tonic::client::Grpc::new(channel.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        if let Some(enc) = self.compression {
            grpc = grpc.send_compressed(enc);
        }
        grpc.ready()
            .await
            .map_err(|e| ExportError::retryable(format!("grpc connection: {e}")))?;
        let mut request = tonic::Request::new(batch.payload.to_bytes());
        *request.metadata_mut() = metadata.into_owned();
        if !self.timeout.is_zero() {
            request.set_timeout(self.timeout);
        }
        let response: tonic::Response<Bytes> = grpc
            .unary(request, export_path(batch.signal), RawCodec)
            .await
            .map_err(|s| map_status(&s))?;
        if let Some((n, msg)) = rejected_from_protobuf(batch.signal, response.get_ref()) {
            self.partial.note(&self.id, batch.signal, n, &msg);
        }
        Ok(())
    }
}

/// Maps a gRPC status with the shared classification ([`classify_grpc`]: transient codes retry with the server's
/// `RetryInfo` delay, `RESOURCE_EXHAUSTED` only when the server said when to come back, everything else is
/// permanent). One addition of the transport: tonic reports a failed connection or a reset stream as UNKNOWN with
/// the transport error as source, which is a connection error and retries like the HTTP exporter's.
pub fn map_status(status: &Status) -> ExportError {
    let reason = format!("grpc status {:?}: {}", status.code(), status.message());
    if status.code() == Code::Unknown && std::error::Error::source(status).is_some() {
        return ExportError::retryable(reason);
    }
    let retry_info = status.get_details_retry_info().map(|r| r.retry_delay);
    classify_grpc(status.code() as i32, reason, retry_info)
}

#[cfg(test)]
mod tests;
