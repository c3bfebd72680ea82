//! The `spanmetrics` connector's configuration: the OTel Collector's `spanmetricsconnector` option names and
//! defaults (`namespace: traces.span.metrics`, `metrics_flush_interval: 60s`, the default explicit buckets).

use std::time::Duration;

use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;

/// `histogram.unit`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum Unit {
    #[default]
    #[serde(rename = "ms")]
    Ms,
    #[serde(rename = "s")]
    S,
}

/// `histogram.explicit`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Explicit {
    pub buckets: Option<Vec<ConfigDuration>>,
}

/// `histogram.exponential`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Exponential {
    /// Buckets at most (the resolution halves to stay within it).
    pub max_size: i32,
}

impl Default for Exponential {
    fn default() -> Self {
        Exponential { max_size: 160 }
    }
}

/// `histogram`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HistogramConfig {
    pub disable: bool,
    pub unit: Unit,
    pub explicit: Option<Explicit>,
    pub exponential: Option<Exponential>,
}

/// One extra dimension: a span attribute, else a resource attribute, else `default` (omitted without one).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    pub name: String,
    #[serde(default)]
    pub default: Option<String>,
}

/// `aggregation_temporality`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum Temporality {
    #[default]
    #[serde(rename = "AGGREGATION_TEMPORALITY_CUMULATIVE")]
    Cumulative,
    #[serde(rename = "AGGREGATION_TEMPORALITY_DELTA")]
    Delta,
}

/// `exemplars` (accepted; none are attached).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Exemplars {
    pub enabled: bool,
    pub max_per_data_point: u32,
}

/// `events` (refused when enabled).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Events {
    pub enabled: bool,
    pub dimensions: Vec<Dimension>,
}

/// `spanmetrics` as written.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtelSpanMetricsConfig {
    pub histogram: HistogramConfig,
    pub dimensions: Vec<Dimension>,
    pub exclude_dimensions: Vec<String>,
    pub dimensions_cache_size: u32,
    pub resource_metrics_cache_size: u32,
    pub resource_metrics_key_attributes: Vec<String>,
    pub aggregation_temporality: Temporality,
    pub namespace: String,
    pub metrics_flush_interval: ConfigDuration,
    pub metrics_expiration: ConfigDuration,
    pub aggregation_cardinality_limit: u64,
    pub exemplars: Exemplars,
    pub events: Events,
}

impl Default for OtelSpanMetricsConfig {
    fn default() -> Self {
        OtelSpanMetricsConfig {
            histogram: HistogramConfig::default(),
            dimensions: Vec::new(),
            exclude_dimensions: Vec::new(),
            dimensions_cache_size: 1000,
            resource_metrics_cache_size: 1000,
            resource_metrics_key_attributes: Vec::new(),
            aggregation_temporality: Temporality::Cumulative,
            namespace: "traces.span.metrics".into(),
            metrics_flush_interval: ConfigDuration(Duration::from_secs(60)),
            metrics_expiration: ConfigDuration::default(),
            aggregation_cardinality_limit: 0,
            exemplars: Exemplars::default(),
            events: Events::default(),
        }
    }
}

/// The Collector's default buckets.
const DEFAULT_BUCKETS_MS: [u64; 16] = [
    2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10_000, 15_000,
];

/// The four dimensions every series has unless excluded.
pub const DEFAULT_DIMENSIONS: [&str; 4] = ["service.name", "span.name", "span.kind", "status.code"];

/// Checked settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub histogram: bool,
    pub unit: Unit,
    /// Upper bounds in `unit`.
    pub bounds: Vec<f64>,
    /// `histogram.exponential.max_size`: an exponential histogram instead of explicit buckets.
    pub exponential: Option<usize>,
    /// Default dimensions kept, in order.
    pub defaults: Vec<&'static str>,
    pub dimensions: Vec<Dimension>,
    pub key_attributes: Vec<String>,
    pub temporality: Temporality,
    /// `namespace.` prefix, or empty.
    pub prefix: String,
    pub flush_interval: Duration,
    pub expiration: Option<Duration>,
    pub cardinality_limit: usize,
}

impl OtelSpanMetricsConfig {
    /// Checks what serde cannot; an error names its keys.
    pub fn validate(&self) -> Result<Settings, (Vec<&'static str>, String)> {
        let exponential = match &self.histogram.exponential {
            Some(_) if self.histogram.explicit.is_some() => {
                return Err((
                    vec!["histogram", "exponential"],
                    "use either histogram.explicit or histogram.exponential, not both".into(),
                ));
            }
            Some(e) if e.max_size < 2 => {
                return Err((
                    vec!["histogram", "exponential", "max_size"],
                    "must be at least 2".into(),
                ));
            }
            Some(e) => Some(e.max_size as usize),
            None => None,
        };
        if self.events.enabled {
            return Err((
                vec!["events", "enabled"],
                "the events metric is not supported by spanpipe".into(),
            ));
        }
        if self.metrics_flush_interval.0.is_zero() {
            return Err((
                vec!["metrics_flush_interval"],
                "must be greater than 0".into(),
            ));
        }
        let per_unit = match self.histogram.unit {
            Unit::Ms => 1e6,
            Unit::S => 1e9,
        };
        let mut bounds: Vec<f64> = match self
            .histogram
            .explicit
            .as_ref()
            .and_then(|e| e.buckets.as_ref())
        {
            Some(b) => b.iter().map(|d| d.0.as_nanos() as f64 / per_unit).collect(),
            None => DEFAULT_BUCKETS_MS
                .iter()
                .map(|ms| *ms as f64 * 1e6 / per_unit)
                .collect(),
        };
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err((
                vec!["histogram", "explicit", "buckets"],
                "must be strictly increasing".into(),
            ));
        }
        bounds.dedup();
        for d in &self.exclude_dimensions {
            if !DEFAULT_DIMENSIONS.contains(&d.as_str()) {
                return Err((
                    vec!["exclude_dimensions"],
                    format!(
                        "{d:?} is not a default dimension ({})",
                        DEFAULT_DIMENSIONS.join(", ")
                    ),
                ));
            }
        }
        Ok(Settings {
            histogram: !self.histogram.disable,
            unit: self.histogram.unit,
            bounds,
            exponential,
            defaults: DEFAULT_DIMENSIONS
                .iter()
                .copied()
                .filter(|d| !self.exclude_dimensions.iter().any(|x| x == d))
                .collect(),
            dimensions: self.dimensions.clone(),
            key_attributes: self.resource_metrics_key_attributes.clone(),
            temporality: self.aggregation_temporality,
            prefix: if self.namespace.is_empty() {
                String::new()
            } else {
                format!("{}.", self.namespace)
            },
            flush_interval: self.metrics_flush_interval.0,
            expiration: Some(self.metrics_expiration.0).filter(|d| !d.is_zero()),
            cardinality_limit: usize::try_from(self.aggregation_cardinality_limit)
                .unwrap_or(usize::MAX),
        })
    }
}
