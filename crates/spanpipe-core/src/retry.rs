//! `retry_on_failure`: exponential backoff with jitter, the OTel Collector's names and defaults, and the one
//! classification of backend answers (HTTP status, gRPC code) into retryable and permanent that every exporter
//! uses, so no exporter invents its own idea of what is worth a retry.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;

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

/// Whether an HTTP answer is worth another attempt: 429, 502, 503 and 504, as the OTLP/HTTP specification and the
/// OTel Collector's `otlphttp` exporter say. Every other status (400, 401, 404, 413, 500, ...) is permanent: the
/// same request would fail the same way.
pub fn http_status_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// An HTTP error answer as an [`ExportError`]: retryable (with the backend's `Retry-After`, if it sent one) or
/// permanent, by [`http_status_retryable`].
pub fn classify_http(status: u16, reason: String, retry_after: Option<Duration>) -> ExportError {
    if http_status_retryable(status) {
        ExportError::Retryable {
            reason,
            delay: retry_after,
        }
    } else {
        ExportError::Permanent { reason }
    }
}

/// Parses a `Retry-After` value: delay-seconds (`"2"`) or an HTTP-date (`"Wed, 21 Oct 2015 07:28:00 GMT"`,
/// also the obsolete RFC 850 and asctime forms); a date in the past means "now". `None` when unparsable.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// gRPC status codes the classification names (numbers from `google.rpc.Code`, so the core needs no gRPC library).
pub mod grpc_code {
    pub const CANCELLED: i32 = 1;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const ABORTED: i32 = 10;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNAVAILABLE: i32 = 14;
    pub const DATA_LOSS: i32 = 15;
}

/// A gRPC error status as an [`ExportError`], as the OTLP specification ("Failures" of OTLP/gRPC) and the OTel
/// Collector's `otlp` exporter classify it: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and
/// DATA_LOSS retry; RESOURCE_EXHAUSTED retries only when the server attached a `RetryInfo` (it then says when
/// to come back; without one it means "too large / over quota" and a retry would fail again); everything else
/// is permanent. `retry_info` is `None` without a `RetryInfo` detail, `Some(delay)` with one (whose delay may
/// itself be absent); the delay replaces the exporter's own backoff.
pub fn classify_grpc(
    code: i32,
    reason: String,
    retry_info: Option<Option<Duration>>,
) -> ExportError {
    use grpc_code::*;
    match code {
        CANCELLED | DEADLINE_EXCEEDED | ABORTED | OUT_OF_RANGE | UNAVAILABLE | DATA_LOSS => {
            ExportError::Retryable {
                reason,
                delay: retry_info.flatten(),
            }
        }
        RESOURCE_EXHAUSTED => match retry_info {
            Some(delay) => ExportError::Retryable { reason, delay },
            None => ExportError::Permanent { reason },
        },
        _ => ExportError::Permanent { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_retryable(e: &ExportError) -> Option<Option<Duration>> {
        match e {
            ExportError::Retryable { delay, .. } => Some(*delay),
            ExportError::Permanent { .. } | ExportError::Undecodable { .. } => None,
        }
    }

    #[test]
    fn http_statuses_classify_as_the_otlp_spec_says() {
        for s in [429u16, 502, 503, 504] {
            let e = classify_http(s, format!("http {s}"), Some(Duration::from_secs(2)));
            assert_eq!(is_retryable(&e), Some(Some(Duration::from_secs(2))), "{s}");
            assert_eq!(
                is_retryable(&classify_http(s, String::new(), None)),
                Some(None)
            );
        }
        for s in [
            400u16, 401, 403, 404, 405, 408, 413, 415, 422, 500, 501, 505, 599, 302,
        ] {
            let e = classify_http(s, format!("http {s}"), Some(Duration::from_secs(2)));
            assert_eq!(is_retryable(&e), None, "{s} must be permanent");
        }
    }

    #[test]
    fn retry_after_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:03 GMT", now),
            Some(Duration::from_secs(3))
        );
        // RFC 850 and asctime, which HTTP/1.1 recipients must accept too.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:10 2015", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        for bad in ["", "-1", "1.5", "soon", "Wed, 32 Oct 2015 07:28:00 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn grpc_codes_classify_as_the_otlp_spec_says() {
        let d = Some(Duration::from_millis(1500));
        for code in [1, 4, 10, 11, 14, 15] {
            assert_eq!(
                is_retryable(&classify_grpc(code, String::new(), None)),
                Some(None)
            );
            assert_eq!(
                is_retryable(&classify_grpc(code, String::new(), Some(d))),
                Some(d)
            );
        }
        // RESOURCE_EXHAUSTED: only with RetryInfo, whose delay wins.
        assert_eq!(is_retryable(&classify_grpc(8, String::new(), None)), None);
        assert_eq!(
            is_retryable(&classify_grpc(8, String::new(), Some(d))),
            Some(d)
        );
        assert_eq!(
            is_retryable(&classify_grpc(8, String::new(), Some(None))),
            Some(None)
        );
        // OK is never an error here; everything else is permanent.
        for code in [2, 3, 5, 6, 7, 9, 12, 13, 16, 17, -1] {
            assert_eq!(
                is_retryable(&classify_grpc(code, String::new(), Some(d))),
                None,
                "{code}"
            );
        }
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
