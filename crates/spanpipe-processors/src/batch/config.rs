//! `batch` processor settings: the OTel Collector's names and defaults.

use std::time::Duration;

use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;

/// How batches are formed.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Items (spans, points, records) that trigger a send; 0 sends on `timeout` only.
    pub send_batch_size: usize,
    /// Upper bound of one sent batch (traces are cut at span boundaries); 0 means no bound.
    pub send_batch_max_size: usize,
    /// How long the first item of a batch may wait for more.
    pub timeout: ConfigDuration,
    /// Accepted for Collector configs: requests whose metadata differ in anything are never merged, which
    /// already keeps every `metadata_keys` combination apart.
    pub metadata_keys: Vec<String>,
    /// Accepted; see `metadata_keys`.
    pub metadata_cardinality_limit: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            send_batch_size: 8192,
            send_batch_max_size: 0,
            timeout: ConfigDuration(Duration::from_millis(200)),
            metadata_keys: Vec::new(),
            metadata_cardinality_limit: 1000,
        }
    }
}

impl BatchConfig {
    /// Cross-field checks; returns the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.send_batch_max_size > 0 && self.send_batch_max_size < self.send_batch_size {
            return Err((
                "send_batch_max_size",
                format!(
                    "must be 0 or at least send_batch_size ({})",
                    self.send_batch_size
                ),
            ));
        }
        if self.timeout.0.is_zero() && self.send_batch_size == 0 {
            return Err((
                "timeout",
                "must be greater than 0 when send_batch_size is 0".into(),
            ));
        }
        Ok(())
    }
}
