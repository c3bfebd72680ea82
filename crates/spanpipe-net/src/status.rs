//! Which failed answers are worth another attempt: the OTLP specification's and the OTel Collector's rules for
//! HTTP statuses (`Retry-After` included) and gRPC codes, shared by every exporter.
//!
//! The rules answer with a neutral [`Verdict`]; `spanpipe_core::retry::{classify_http, classify_grpc}` turn it into
//! the core's `ExportError` (the core depends on this crate with only this module: see `docs/architecture.md`,
//! "Crates and their direction").

use std::time::{Duration, SystemTime};

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Try again; `delay` is what the server asked for (it replaces the exporter's own backoff).
    Retry { delay: Option<Duration> },
    /// The same request would fail the same way: give up.
    Permanent,
}

/// Whether an HTTP answer is worth another attempt: 429, 502, 503 and 504, as the OTLP/HTTP specification and the
/// OTel Collector's `otlphttp` exporter say. Every other status (400, 401, 404, 413, 500, ...) is permanent: the
/// same request would fail the same way.
pub fn http_status_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// An HTTP error status: retry (with the backend's `Retry-After`, if it sent one) or permanent, by
/// [`http_status_retryable`].
pub fn classify_http(status: u16, retry_after: Option<Duration>) -> Verdict {
    match http_status_retryable(status) {
        true => Verdict::Retry { delay: retry_after },
        false => Verdict::Permanent,
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

/// gRPC status codes the classification names (numbers from `google.rpc.Code`, so callers need no gRPC library).
pub mod grpc_code {
    pub const CANCELLED: i32 = 1;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const ABORTED: i32 = 10;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNAVAILABLE: i32 = 14;
    pub const DATA_LOSS: i32 = 15;
}

/// A gRPC error status, as the OTLP specification ("Failures" of OTLP/gRPC) and the OTel Collector's `otlp`
/// exporter classify it: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS retry;
/// RESOURCE_EXHAUSTED retries only when the server attached a `RetryInfo` (it then says when to come back;
/// without one it means "too large / over quota" and a retry would fail again); everything else is permanent.
/// `retry_info` is `None` without a `RetryInfo` detail, `Some(delay)` with one (whose delay may itself be
/// absent); the delay replaces the exporter's own backoff.
pub fn classify_grpc(code: i32, retry_info: Option<Option<Duration>>) -> Verdict {
    use grpc_code::*;
    match code {
        CANCELLED | DEADLINE_EXCEEDED | ABORTED | OUT_OF_RANGE | UNAVAILABLE | DATA_LOSS => {
            Verdict::Retry {
                delay: retry_info.flatten(),
            }
        }
        RESOURCE_EXHAUSTED => match retry_info {
            Some(delay) => Verdict::Retry { delay },
            None => Verdict::Permanent,
        },
        _ => Verdict::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delay(v: Verdict) -> Option<Option<Duration>> {
        match v {
            Verdict::Retry { delay } => Some(delay),
            Verdict::Permanent => None,
        }
    }

    #[test]
    fn http_statuses_classify_as_the_otlp_spec_says() {
        let two = Some(Duration::from_secs(2));
        for s in [429u16, 502, 503, 504] {
            assert_eq!(delay(classify_http(s, two)), Some(two), "{s}");
            assert_eq!(delay(classify_http(s, None)), Some(None));
        }
        for s in [
            400u16, 401, 403, 404, 405, 408, 413, 415, 422, 500, 501, 505, 599, 302,
        ] {
            assert_eq!(
                classify_http(s, two),
                Verdict::Permanent,
                "{s} must be permanent"
            );
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
            assert_eq!(delay(classify_grpc(code, None)), Some(None));
            assert_eq!(delay(classify_grpc(code, Some(d))), Some(d));
        }
        // RESOURCE_EXHAUSTED: only with RetryInfo, whose delay wins.
        assert_eq!(delay(classify_grpc(8, None)), None);
        assert_eq!(delay(classify_grpc(8, Some(d))), Some(d));
        assert_eq!(delay(classify_grpc(8, Some(None))), Some(None));
        // OK is never an error here; everything else is permanent.
        for code in [2, 3, 5, 6, 7, 9, 12, 13, 16, 17, -1] {
            assert_eq!(classify_grpc(code, Some(d)), Verdict::Permanent, "{code}");
        }
    }
}
