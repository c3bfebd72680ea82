//! OTLP `partial_success` answers: the backend accepted the request but rejected some items. Not an error (a
//! retry would be rejected again), but worth a warning, logged once per signal so a steady trickle of rejects
//! does not flood the log.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use spanpipe_core::Signal;

use super::item_noun;

/// Rejected items and the backend's message from an encoded `Export*ServiceResponse`; `None` when nothing was
/// rejected or the body is not a response (a backend may answer with an empty body).
pub fn rejected_from_protobuf(signal: Signal, body: &[u8]) -> Option<(i64, String)> {
    if body.is_empty() {
        return None;
    }
    let (n, msg) = match signal {
        Signal::Traces => {
            let p = ExportTraceServiceResponse::decode(body)
                .ok()?
                .partial_success?;
            (p.rejected_spans, p.error_message)
        }
        Signal::Metrics => {
            let p = ExportMetricsServiceResponse::decode(body)
                .ok()?
                .partial_success?;
            (p.rejected_data_points, p.error_message)
        }
        Signal::Logs => {
            let p = ExportLogsServiceResponse::decode(body)
                .ok()?
                .partial_success?;
            (p.rejected_log_records, p.error_message)
        }
    };
    (n > 0).then_some((n, msg))
}

/// The same from an OTLP/JSON response body.
pub fn rejected_from_json(signal: Signal, body: &[u8]) -> Option<(i64, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let p = v.get("partialSuccess")?;
    let key = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
        Signal::Logs => "rejectedLogRecords",
    };
    // int64 is a string in OTLP/JSON, but accept a number too.
    let n = match p.get(key)? {
        serde_json::Value::String(s) => s.parse().ok()?,
        other => other.as_i64()?,
    };
    let msg = p
        .get("errorMessage")
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_string();
    (n > 0).then_some((n, msg))
}

/// Logs partial successes: a warning the first time per signal, debug afterwards.
#[derive(Debug, Default)]
pub struct PartialSuccessLog {
    warned: [AtomicBool; 3],
}

impl PartialSuccessLog {
    /// Records a partial success; returns whether it was logged as a warning.
    pub fn note(&self, exporter: &str, signal: Signal, rejected: i64, message: &str) -> bool {
        let slot = match signal {
            Signal::Traces => 0,
            Signal::Metrics => 1,
            Signal::Logs => 2,
        };
        let first = !self.warned[slot].swap(true, Ordering::Relaxed);
        let noun = item_noun(signal);
        if first {
            tracing::warn!(
                exporter, %signal, rejected, message,
                "backend rejected {rejected} {noun} (partial success; further ones are logged at debug level)"
            );
        } else {
            tracing::debug!(exporter, %signal, rejected, message, "backend rejected {rejected} {noun}");
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;

    #[test]
    fn reads_rejections_from_protobuf_and_json() {
        let resp = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        };
        let body = resp.encode_to_vec();
        assert_eq!(
            rejected_from_protobuf(Signal::Traces, &body),
            Some((3, "too old".into()))
        );
        assert_eq!(rejected_from_protobuf(Signal::Traces, &[]), None);
        let ok = ExportTraceServiceResponse::default().encode_to_vec();
        assert_eq!(rejected_from_protobuf(Signal::Traces, &ok), None);
        let json = br#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"x"}}"#;
        assert_eq!(
            rejected_from_json(Signal::Logs, json),
            Some((2, "x".into()))
        );
        assert_eq!(rejected_from_json(Signal::Traces, json), None);
        assert_eq!(rejected_from_json(Signal::Traces, b"{}"), None);
    }

    #[test]
    fn warns_once_per_signal() {
        let log = PartialSuccessLog::default();
        assert!(log.note("otlp", Signal::Traces, 1, ""));
        assert!(!log.note("otlp", Signal::Traces, 1, ""));
        assert!(log.note("otlp", Signal::Logs, 1, ""));
    }
}
