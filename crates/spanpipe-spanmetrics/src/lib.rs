//! The `mlflow_spanmetrics` connector: the `mlflow.trace.span.duration` histogram that MLflow's tracing SDK
//! records, computed in the collector from the spans passing through, so every instrumented app (MLflow's SDK,
//! plain OpenTelemetry, OpenInference, Traceloop...) gets it without turning on the SDK's own metrics.
//!
//! ```yaml
//! connectors:
//!   mlflow_spanmetrics:
//!     tags: [team, env]            # tags.<key> labels
//!     metadata: [mlflow.trace.user, mlflow.trace.session, mlflow.trace_schema.version]
//!     tags_wait: 30s               # hold a trace's points until its root (which carries the tags) arrives
//!     flush_interval: 15s
//! service:
//!   pipelines:
//!     traces:  { receivers: [otlp], exporters: [mlflow_spanmetrics] }
//!     metrics: { receivers: [mlflow_spanmetrics], exporters: [prometheus] }
//! ```
//!
//! What is computed, per span, without decoding the request (see `shared/mlflow-facts.md`):
//! - value: `(end − start) / 1e6` milliseconds, 0 if the span ends before it starts;
//! - `root` (a boolean attribute, `"true"`/`"false"` in Prometheus): the span has no parent;
//! - `span_type`: the JSON-decoded `mlflow.spanType`; when missing or `UNKNOWN`, the type MLflow's server infers
//!   ([`span_type`]), else `UNKNOWN`;
//! - `span_status`: `OK`, `ERROR` or `UNSET`;
//! - `experiment_id`: the first non-empty of `experiment_id_from` (default: span attribute
//!   `mlflow.experimentId`, resource attribute `mlflow.experimentId`, request header `x-mlflow-experiment-id`),
//!   else `default_experiment_id` (`"0"`);
//! - `tags.<key>` for the keys listed in `tags`: the root span's `mlflow.traceTag.<key>`, else the root's
//!   resource attribute `<key>` (never `telemetry.sdk.*` or `mlflow.*`), as MLflow's server derives trace tags;
//! - `metadata.<key>` for the keys listed in `metadata`: `mlflow.trace.user` (root span `user.id`),
//!   `mlflow.trace.session` (root span `session.id` or `gen_ai.conversation.id`), `mlflow.trace_schema.version`
//!   (`"3"`).
//!
//! Differences from the SDK's own metric, by necessity: the SDK labels a span with the tags its trace had when
//! the span ended, while over OTLP tags are only on the root span, so here every span of a trace gets the trace's
//! final tags (if its root arrives within `tags_wait`). The SDK does not infer span types.
//!
//! Emission: one `ExportMetricsServiceRequest` per `flush_interval` and on shutdown, cumulative temporality,
//! start time fixed per series. Bounded memory: `max_series` series (then one series labelled
//! `otel.metric.overflow=true`), `max_pending_spans` waiting points (then recorded untagged),
//! `series_expiration` drops idle series.

pub mod config;
pub mod connector;
pub mod emit;
pub mod extract;
pub mod labels;
pub mod otel;
pub mod pending;
pub mod series;
pub mod span_type;
pub mod state;
#[cfg(test)]
mod test_util;
pub mod text;

pub use config::{Settings, SpanMetricsConfig};
pub use connector::{SpanMetricsConnector, SpanMetricsConnectorFactory};

use spanpipe_core::Registry;

/// Registers the `mlflow_spanmetrics` connector and the OTel Collector's `spanmetrics`.
pub fn register(registry: &mut Registry) {
    registry.connector(SpanMetricsConnectorFactory);
    registry.connector(otel::OtelSpanMetricsFactory);
}
