//! Prometheus out: the `prometheus` exporter (a scrape endpoint, `GET /metrics`) and the
//! `prometheus_remote_write` exporter (remote write 1.0, snappy-compressed protobuf). Both name and label series
//! the same way, following the OpenTelemetry-to-Prometheus compatibility specification as the OTel Collector's Go
//! exporters do (`UnderscoreEscapingWithSuffixes`):
//!
//! | OTLP | Prometheus |
//! |---|---|
//! | metric name `mlflow.trace.span.duration`, unit `ms` | `mlflow_trace_span_duration_milliseconds`: every run of characters outside `[a-zA-Z0-9:]` becomes one `_`, the unit word is appended unless already there (`s` seconds, `ms` milliseconds, `By` bytes, `1` none, `{x}` none, `a/b` `a_per_b`), a leading digit gets `_` |
//! | monotonic sum | counter, name ends in `_total`; delta sums are added up (scrape) / dropped (remote write); non-monotonic delta sums are dropped |
//! | non-monotonic cumulative sum, gauge | gauge (unit `1` gauges end in `_ratio`) |
//! | histogram | `_bucket{le="..."}` cumulative counts ending with `le="+Inf"`, `_sum`, `_count` |
//! | summary | `{quantile="..."}`, `_sum`, `_count` |
//! | exponential histogram | dropped |
//! | point attribute `tags.team` | label `tags_team`: runs of characters outside `[a-zA-Z0-9]` become one `_`, `key_` before a leading digit; keys that collide have their values joined with `;` in key order; values: strings as they are, other scalars as text, arrays/maps as JSON |
//! | scope name / version | labels `otel_scope_name` / `otel_scope_version` (`without_scope_info: true` turns them off) |
//! | resource `service.name` (+ `service.namespace`), `service.instance.id` | labels `job` (`namespace/name`) and `instance`; other resource attributes only with `resource_to_telemetry_conversion.enabled` |
//! | description | `# HELP` |
//!
//! Numbers (sample values and `le`) are written as Go's `%g` writes them (`10000`, `1e+06`, `+Inf`), so the
//! text matches what the Go exporter serves. Options shared with the Go exporters: `namespace`,
//! `add_metric_suffixes` (default true), `const_labels` / `external_labels`, `resource_to_telemetry_conversion`,
//! `metric_expiration` (scrape, default 5m).

pub mod names;
pub mod prompb;
pub mod remote_write;
pub mod scrape;
pub mod store;
#[cfg(test)]
mod test_util;
pub mod text;
pub mod translate;

use spanpipe_core::Registry;

/// Registers every component of this crate.
pub fn register(registry: &mut Registry) {
    registry.exporter(scrape::PrometheusExporterFactory, &[]);
    registry.exporter(
        remote_write::RemoteWriteExporterFactory,
        &["prometheusremotewrite"],
    );
}
