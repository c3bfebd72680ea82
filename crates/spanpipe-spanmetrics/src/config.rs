//! `connectors.mlflow_spanmetrics` configuration, and its validation into [`Settings`].

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;

/// MLflow's default experiment, where traces land when nothing says otherwise.
pub const DEFAULT_EXPERIMENT_ID: &str = "0";

/// The OTel SDK's default explicit bucket bounds, which MLflow's SDK uses for this histogram (milliseconds).
pub const DEFAULT_BUCKETS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// More bounds than this is a configuration mistake, and each one costs 8 bytes per series.
const MAX_BUCKETS: usize = 256;

/// The experiment sources a span is checked against (they are looked up in one pass over its attributes).
pub const MAX_EXPERIMENT_SOURCES: usize = 8;

/// Where a trace's experiment id is read from; the first source with a non-empty value wins.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentSource {
    /// An attribute of the span's resource (JSON-decoded if it is a JSON string).
    ResourceAttribute(String),
    /// An attribute of the span itself (MLflow's SDK writes `mlflow.experimentId` JSON-encoded).
    SpanAttribute(String),
    /// A request header kept by the receiver (`include_metadata: true`), e.g. `x-mlflow-experiment-id`.
    RequestHeader(String),
}

/// Configuration of the `mlflow_spanmetrics` connector.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SpanMetricsConfig {
    /// Explicit histogram bucket upper bounds in milliseconds, strictly increasing.
    pub buckets: Vec<f64>,
    /// Trace tags that become `tags.<key>` labels (from the root span's `mlflow.traceTag.<key>`, else from a
    /// resource attribute `<key>`).
    pub tags: Vec<String>,
    /// Trace metadata that becomes `metadata.<key>` labels; see [`MetaKey`] for the keys OTLP can carry.
    pub metadata: Vec<String>,
    pub experiment_id_from: Vec<ExperimentSource>,
    pub default_experiment_id: String,
    /// How long a trace's spans wait for its root (which carries the tags); 0 records at once without tags.
    pub tags_wait: ConfigDuration,
    /// Spans held while waiting, across all traces; beyond it spans are recorded at once without tags. A tenth
    /// of it bounds the finished traces remembered for spans that arrive after their root.
    pub max_pending_spans: usize,
    /// Distinct label sets; beyond it spans go to one series labelled `otel.metric.overflow="true"`.
    pub max_series: usize,
    /// A series not updated for this long is dropped (0: never).
    pub series_expiration: ConfigDuration,
    /// Longest label value in bytes; longer values (an experiment id, span type or tag a client chose) are cut
    /// on a UTF-8 boundary and counted. With `max_series` it bounds the series store and the `/metrics` page.
    pub max_label_value_length: usize,
    /// How often the cumulative histograms are sent downstream.
    pub flush_interval: ConfigDuration,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            buckets: DEFAULT_BUCKETS.to_vec(),
            tags: Vec::new(),
            metadata: Vec::new(),
            experiment_id_from: vec![
                ExperimentSource::SpanAttribute("mlflow.experimentId".into()),
                ExperimentSource::ResourceAttribute("mlflow.experimentId".into()),
                ExperimentSource::RequestHeader("x-mlflow-experiment-id".into()),
            ],
            default_experiment_id: DEFAULT_EXPERIMENT_ID.into(),
            tags_wait: ConfigDuration(Duration::from_secs(30)),
            max_pending_spans: 100_000,
            max_series: 10_000,
            series_expiration: ConfigDuration(Duration::from_secs(300)),
            max_label_value_length: 256,
            flush_interval: ConfigDuration(Duration::from_secs(15)),
        }
    }
}

/// The metadata keys that can be known from OTLP data (MLflow does not export arbitrary metadata over OTLP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKey {
    /// `mlflow.trace.user`: the root span's `user.id`.
    User,
    /// `mlflow.trace.session`: the root span's `session.id`, else `gen_ai.conversation.id`.
    Session,
    /// `mlflow.trace_schema.version`: always `3`, the schema MLflow's SDK writes.
    SchemaVersion,
}

impl MetaKey {
    pub const ALL: [(&'static str, MetaKey); 3] = [
        ("mlflow.trace.user", MetaKey::User),
        ("mlflow.trace.session", MetaKey::Session),
        ("mlflow.trace_schema.version", MetaKey::SchemaVersion),
    ];

    fn parse(key: &str) -> Option<MetaKey> {
        Self::ALL.iter().find(|(k, _)| *k == key).map(|(_, m)| *m)
    }
}

/// Validated settings shared by the connector's parts.
#[derive(Clone, Debug)]
pub struct Settings {
    pub bounds: Arc<[f64]>,
    pub tag_keys: Vec<String>,
    pub meta_keys: Vec<MetaKey>,
    /// `tags.<key>` for each tag key, then `metadata.<key>` for each metadata key: the order of a trace's
    /// [`crate::labels::TraceLabels`].
    pub label_names: Vec<String>,
    pub experiment_from: Vec<ExperimentSource>,
    pub default_experiment: String,
    pub tags_wait: Duration,
    pub max_pending_spans: usize,
    pub max_series: usize,
    pub series_expiration: Option<Duration>,
    pub max_label_len: usize,
    pub flush_interval: Duration,
}

impl Settings {
    /// True when some label needs the root span, so non-root spans are worth holding until it comes.
    pub fn waits_for_root(&self) -> bool {
        !self.tags_wait.is_zero()
            && (!self.tag_keys.is_empty()
                || self.meta_keys.iter().any(|m| *m != MetaKey::SchemaVersion))
    }
}

impl SpanMetricsConfig {
    /// Checks every rule; errors name the key (as a path below the connector) and why.
    pub fn validate(self) -> Result<Settings, (Vec<&'static str>, String)> {
        let b = &self.buckets;
        if b.len() > MAX_BUCKETS {
            return Err((
                vec!["buckets"],
                format!("at most {MAX_BUCKETS} bounds, got {}", b.len()),
            ));
        }
        if b.iter().any(|x| !x.is_finite()) {
            return Err((vec!["buckets"], "bounds must be finite numbers".into()));
        }
        if b.windows(2).any(|w| w[0] >= w[1]) {
            return Err((vec!["buckets"], "bounds must be strictly increasing".into()));
        }
        if let Some(k) = first_bad_key(&self.tags) {
            return Err((vec!["tags"], k));
        }
        if let Some(k) = first_bad_key(&self.metadata) {
            return Err((vec!["metadata"], k));
        }
        let mut meta_keys = Vec::new();
        for k in &self.metadata {
            let m = MetaKey::parse(k).ok_or_else(|| {
                let known: Vec<&str> = MetaKey::ALL.iter().map(|(k, _)| *k).collect();
                (
                    vec!["metadata"],
                    format!(
                        "unknown metadata key {k:?}: OTLP only carries {}",
                        known.join(", ")
                    ),
                )
            })?;
            meta_keys.push(m);
        }
        if self.experiment_id_from.len() > MAX_EXPERIMENT_SOURCES {
            return Err((
                vec!["experiment_id_from"],
                format!("at most {MAX_EXPERIMENT_SOURCES} sources"),
            ));
        }
        for s in &self.experiment_id_from {
            let (ExperimentSource::ResourceAttribute(k)
            | ExperimentSource::SpanAttribute(k)
            | ExperimentSource::RequestHeader(k)) = s;
            if k.is_empty() {
                return Err((vec!["experiment_id_from"], "names must not be empty".into()));
            }
        }
        if self.default_experiment_id.is_empty() {
            return Err((vec!["default_experiment_id"], "must not be empty".into()));
        }
        if self.max_series == 0 {
            return Err((vec!["max_series"], "must be at least 1".into()));
        }
        if self.max_label_value_length == 0 {
            return Err((vec!["max_label_value_length"], "must be at least 1".into()));
        }
        if self.flush_interval.0.is_zero() {
            return Err((vec!["flush_interval"], "must be more than 0".into()));
        }
        let label_names = (self.tags.iter().map(|k| format!("tags.{k}")))
            .chain(self.metadata.iter().map(|k| format!("metadata.{k}")))
            .collect();
        Ok(Settings {
            bounds: self.buckets.into(),
            tag_keys: self.tags,
            meta_keys,
            label_names,
            experiment_from: self.experiment_id_from,
            default_experiment: self.default_experiment_id,
            tags_wait: self.tags_wait.0,
            max_pending_spans: self.max_pending_spans,
            max_series: self.max_series,
            series_expiration: Some(self.series_expiration.0).filter(|d| !d.is_zero()),
            max_label_len: self.max_label_value_length,
            flush_interval: self.flush_interval.0,
        })
    }
}

/// An empty or repeated key, described.
fn first_bad_key(keys: &[String]) -> Option<String> {
    for (i, k) in keys.iter().enumerate() {
        if k.is_empty() {
            return Some("keys must not be empty".into());
        }
        if keys[..i].contains(k) {
            return Some(format!("{k:?} is listed twice"));
        }
    }
    None
}
