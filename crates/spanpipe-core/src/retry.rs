//! `retry_on_failure`: exponential backoff with jitter, the OTel Collector's names and defaults, and the one
//! classification of backend answers (HTTP status, gRPC code) into retryable and permanent `ExportError`s that
//! every exporter uses, so no exporter invents its own idea of what is worth a retry (the rules themselves are in
//! `spanpipe_net::status`).

use std::time::Duration;

use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;
use spanpipe_net::status::Verdict;

use crate::component::ExportError;

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

// The rules (which statuses and codes retry, `Retry-After`) live in spanpipe-net's `status` module with the rest
// of the client layer; here they become the core's `ExportError`. The old paths stay.
pub use spanpipe_net::status::{grpc_code, http_status_retryable, parse_retry_after};

/// An HTTP error answer as an [`ExportError`]: retryable (with the backend's `Retry-After`, if it sent one) or
/// permanent, by [`http_status_retryable`].
pub fn classify_http(status: u16, reason: String, retry_after: Option<Duration>) -> ExportError {
    from_verdict(
        spanpipe_net::status::classify_http(status, retry_after),
        reason,
    )
}

/// A gRPC error status as an [`ExportError`], by `spanpipe_net::status::classify_grpc` (the OTLP
/// specification's and the Collector's rules). `retry_info` is `None` without a `RetryInfo` detail,
/// `Some(delay)` with one (whose delay may itself be absent); the delay replaces the exporter's own backoff.
pub fn classify_grpc(
    code: i32,
    reason: String,
    retry_info: Option<Option<Duration>>,
) -> ExportError {
    from_verdict(
        spanpipe_net::status::classify_grpc(code, retry_info),
        reason,
    )
}

fn from_verdict(v: Verdict, reason: String) -> ExportError {
    match v {
        Verdict::Retry { delay } => ExportError::Retryable { reason, delay },
        Verdict::Permanent => ExportError::Permanent { reason },
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn is_retryable(e: &ExportError) -> Option<Option<Duration>> {
        match e {
            ExportError::Retryable { delay, .. } => Some(*delay),
            ExportError::Permanent { .. } | ExportError::Undecodable { .. } => None,
        }
    }

    #[test]
    fn classification_becomes_export_errors() {
        // The rules themselves are tested in spanpipe-net (`status`); here only the mapping.
        let d = Some(Duration::from_secs(2));
        assert_eq!(is_retryable(&classify_http(503, "x".into(), d)), Some(d));
        assert_eq!(is_retryable(&classify_http(400, "x".into(), d)), None);
        assert_eq!(
            is_retryable(&classify_grpc(14, "x".into(), Some(d))),
            Some(d)
        );
        assert_eq!(is_retryable(&classify_grpc(8, "x".into(), None)), None);
        assert_eq!(
            classify_http(401, "denied".into(), None).to_string(),
            "denied"
        );
        assert!(http_status_retryable(429));
        assert_eq!(grpc_code::UNAVAILABLE, 14);
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
    }

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
