//! `retry_on_failure`: exponential backoff with jitter, the OTel Collector's names and defaults.

use std::time::Duration;

use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;

/// How an exporter retries a retryable failure.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    pub enabled: bool,
    pub initial_interval: ConfigDuration,
    pub randomization_factor: f64,
    pub multiplier: f64,
    pub max_interval: ConfigDuration,
    /// Give up (count as failed) after this long; zero retries forever.
    pub max_elapsed_time: ConfigDuration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            enabled: true,
            initial_interval: ConfigDuration(Duration::from_secs(5)),
            randomization_factor: 0.5,
            multiplier: 1.5,
            max_interval: ConfigDuration(Duration::from_secs(30)),
            max_elapsed_time: ConfigDuration(Duration::from_secs(300)),
        }
    }
}

impl RetrySettings {
    /// Checks ranges; returns the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.randomization_factor) {
            return Err(("randomization_factor", "must be between 0 and 1".into()));
        }
        if self.multiplier < 1.0 || !self.multiplier.is_finite() {
            return Err(("multiplier", "must be at least 1".into()));
        }
        if self.enabled && self.initial_interval.0.is_zero() {
            return Err(("initial_interval", "must be greater than 0".into()));
        }
        Ok(())
    }

    /// The wait before retry number `attempt` (0-based), with jitter; `unit` in [0,1) supplies the randomness.
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let base =
            self.initial_interval.0.as_secs_f64() * self.multiplier.powi(attempt.min(64) as i32);
        let capped = base.min(
            self.max_interval
                .0
                .as_secs_f64()
                .max(self.initial_interval.0.as_secs_f64()),
        );
        let delta = capped * self.randomization_factor;
        let jittered = capped - delta + 2.0 * delta * unit.clamp(0.0, 1.0);
        Duration::from_secs_f64(jittered.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_bounds() {
        let r = RetrySettings::default();
        assert_eq!(r.backoff(0, 0.5), Duration::from_secs(5));
        assert_eq!(r.backoff(1, 0.5), Duration::from_secs_f64(7.5));
        assert_eq!(r.backoff(20, 0.5), Duration::from_secs(30));
        assert_eq!(r.backoff(0, 0.0), Duration::from_secs_f64(2.5));
        assert_eq!(r.backoff(0, 1.0), Duration::from_secs_f64(7.5));
    }

    #[test]
    fn validate_rejects_bad_values() {
        let bad = RetrySettings {
            multiplier: 0.5,
            ..RetrySettings::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "multiplier");
        assert!(RetrySettings::default().validate().is_ok());
    }
}
