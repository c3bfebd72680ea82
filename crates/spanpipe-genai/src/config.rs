//! `connectors.genai_metrics` and `processors.genai_cost` configuration, and validation into [`Settings`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;
use spanpipe_spanmetrics::config::{
    DEFAULT_EXPERIMENT_ID, ExperimentSource, Settings as LabelSettings, SpanMetricsConfig,
};

/// `cost`: where the prices come from.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// Path of the price table (YAML or JSON); see `configs/genai-prices.example.yaml`.
    pub price_table: String,
    /// How often the file is checked for changes (it is also re-read on SIGHUP).
    #[serde(default = "default_reload_interval")]
    pub reload_interval: ConfigDuration,
}

fn default_reload_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}

/// Configuration of the `genai_metrics` connector.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GenaiMetricsConfig {
    /// Also record cache-read, cache-creation and reasoning tokens as `gen_ai.token.type` values
    /// `cache_read`, `cache_creation`, `reasoning` (parts of `input` / `output`, not additional to them).
    pub extra_token_types: bool,
    /// Label every point with `experiment_id` (read as `mlflow_spanmetrics` reads it).
    pub experiment_id: bool,
    pub experiment_id_from: Vec<ExperimentSource>,
    pub default_experiment_id: String,
    /// Label every point with `gen_ai.agent.name` when the span has one.
    pub agent_name: bool,
    /// Trace tags that become `tags.<key>` labels (the root span's `mlflow.traceTag.<key>`, else its resource
    /// attribute `<key>`).
    pub tags: Vec<String>,
    /// How long a trace's points wait for its root span: for the tags, and to apply MLflow's rule that a
    /// span's usage is not counted when an ancestor carries usage. 0 records at once: no tags, every span
    /// with usage counted.
    pub trace_wait: ConfigDuration,
    /// Spans held while waiting, across all traces; beyond it spans are recorded at once (counted).
    pub max_pending_spans: usize,
    /// Distinct label sets across all metrics; beyond it points go to each metric's series labelled
    /// `otel.metric.overflow="true"` (counted).
    pub max_series: usize,
    /// A series not updated for this long is dropped (0: never).
    pub series_expiration: ConfigDuration,
    /// Longest label value in bytes (longer ones are cut on a UTF-8 boundary).
    pub max_label_value_length: usize,
    /// How often the cumulative metrics are sent downstream (and once on shutdown).
    pub flush_interval: ConfigDuration,
    /// The price table for `gen_ai.client.cost`; without it only costs the spans carry are counted.
    pub cost: Option<CostConfig>,
}

impl Default for GenaiMetricsConfig {
    fn default() -> Self {
        let sm = SpanMetricsConfig::default();
        GenaiMetricsConfig {
            extra_token_types: false,
            experiment_id: true,
            experiment_id_from: sm.experiment_id_from,
            default_experiment_id: DEFAULT_EXPERIMENT_ID.into(),
            agent_name: false,
            tags: Vec::new(),
            trace_wait: ConfigDuration(Duration::from_secs(30)),
            max_pending_spans: 100_000,
            max_series: 10_000,
            series_expiration: ConfigDuration(Duration::from_secs(300)),
            max_label_value_length: 256,
            flush_interval: ConfigDuration(Duration::from_secs(15)),
            cost: None,
        }
    }
}

/// Validated settings of the connector.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Experiment and tag reading, shared with `mlflow_spanmetrics` (its `label_names` are the `tags.*`).
    pub labels: LabelSettings,
    pub extra_token_types: bool,
    pub experiment_id: bool,
    pub agent_name: bool,
    pub trace_wait: Duration,
    pub max_pending_spans: usize,
    pub max_series: usize,
    pub series_expiration: Option<Duration>,
    pub max_label_len: usize,
    pub flush_interval: Duration,
    pub cost: Option<(PathBuf, Duration)>,
}

impl Settings {
    /// True when points wait for their trace's root.
    pub fn waits(&self) -> bool {
        !self.trace_wait.is_zero()
    }
}

impl GenaiMetricsConfig {
    /// Checks every rule; errors name the key and why.
    pub fn validate(self) -> Result<Settings, (Vec<&'static str>, String)> {
        let labels = SpanMetricsConfig {
            tags: self.tags,
            experiment_id_from: self.experiment_id_from,
            default_experiment_id: self.default_experiment_id,
            max_label_value_length: self.max_label_value_length,
            max_series: self.max_series,
            flush_interval: self.flush_interval,
            ..SpanMetricsConfig::default()
        }
        .validate()?;
        let cost = match self.cost {
            Some(c) => {
                if c.price_table.is_empty() {
                    return Err((vec!["cost", "price_table"], "must not be empty".into()));
                }
                if c.reload_interval.0.is_zero() {
                    return Err((
                        vec!["cost", "reload_interval"],
                        "must be more than 0".into(),
                    ));
                }
                Some((PathBuf::from(c.price_table), c.reload_interval.0))
            }
            None => None,
        };
        Ok(Settings {
            labels,
            extra_token_types: self.extra_token_types,
            experiment_id: self.experiment_id,
            agent_name: self.agent_name,
            trace_wait: self.trace_wait.0,
            max_pending_spans: self.max_pending_spans,
            max_series: self.max_series,
            series_expiration: Some(self.series_expiration.0).filter(|d| !d.is_zero()),
            max_label_len: self.max_label_value_length,
            flush_interval: self.flush_interval.0,
            cost,
        })
    }
}

/// Configuration of the `genai_cost` processor.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GenaiCostConfig {
    /// Path of the price table (the same format as the connector's `cost.price_table`).
    pub price_table: String,
    #[serde(default = "default_reload_interval")]
    pub reload_interval: ConfigDuration,
    /// Also write MLflow's `mlflow.llm.cost` JSON (`input_cost`, `output_cost`, `total_cost`), so MLflow's UI
    /// shows the cost.
    #[serde(default = "yes")]
    pub mlflow_cost: bool,
}

fn yes() -> bool {
    true
}

impl GenaiCostConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.price_table.is_empty() {
            return Err(("price_table", "must not be empty".into()));
        }
        if self.reload_interval.0.is_zero() {
            return Err(("reload_interval", "must be more than 0".into()));
        }
        Ok(())
    }
}
