//! Protobuf to OTLP/JSON, for the `otlp_http` exporter with `encoding: json`, the `file` exporter and `debug`.
//!
//! This is the slow path (a full prost decode, then serde), so only exporters that must emit JSON come here. The
//! JSON shape is opentelemetry-proto's `with-serde` one: camelCase keys, lowercase hex trace and span ids, 64-bit
//! integers as strings and enums as integers, as the OTLP/JSON specification asks.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde::Serialize;
use spanpipe_core::{ExportError, Signal};

/// Why a payload could not be turned into JSON. Payloads were validated by the receiver, so this means a bug
/// upstream or a corrupted batch: exporters treat it as permanent.
#[derive(Debug, thiserror::Error)]
pub enum JsonEncodeError {
    #[error("invalid protobuf {signal} request: {source}")]
    Decode {
        signal: &'static str,
        source: prost::DecodeError,
    },
    #[error("cannot serialize {signal} request as JSON: {source}")]
    Serialize {
        signal: &'static str,
        source: serde_json::Error,
    },
}

impl JsonEncodeError {
    /// As an export failure: a decode failure is [`ExportError::Undecodable`], so the delivery layer loses only
    /// the bad request of the batch; a serializer failure is permanent.
    pub fn into_export_error(self) -> ExportError {
        match self {
            JsonEncodeError::Decode { .. } => {
                ExportError::undecodable(format!("json encoding: {self}"))
            }
            JsonEncodeError::Serialize { .. } => {
                ExportError::permanent(format!("json encoding: {self}"))
            }
        }
    }
}

/// Decodes an encoded `Export*ServiceRequest` of `signal` and serializes it as compact OTLP/JSON.
pub fn protobuf_to_json(signal: Signal, payload: &[u8]) -> Result<Vec<u8>, JsonEncodeError> {
    encode(signal, payload, false)
}

/// Like [`protobuf_to_json`] but indented, for humans (`debug` with `verbosity: detailed`).
pub fn protobuf_to_json_pretty(signal: Signal, payload: &[u8]) -> Result<Vec<u8>, JsonEncodeError> {
    encode(signal, payload, true)
}

fn encode(signal: Signal, payload: &[u8], pretty: bool) -> Result<Vec<u8>, JsonEncodeError> {
    match signal {
        Signal::Traces => to_json::<ExportTraceServiceRequest>(signal, payload, pretty),
        Signal::Metrics => to_json::<ExportMetricsServiceRequest>(signal, payload, pretty),
        Signal::Logs => to_json::<ExportLogsServiceRequest>(signal, payload, pretty),
    }
}

fn to_json<M: Message + Default + Serialize>(
    signal: Signal,
    payload: &[u8],
    pretty: bool,
) -> Result<Vec<u8>, JsonEncodeError> {
    let name = signal.as_str();
    let msg = M::decode(payload).map_err(|source| JsonEncodeError::Decode {
        signal: name,
        source,
    })?;
    // JSON is usually 2-3x the protobuf size; reserving avoids most regrowth.
    let mut out = Vec::with_capacity(payload.len().saturating_mul(2));
    let res = if pretty {
        serde_json::to_writer_pretty(&mut out, &msg)
    } else {
        serde_json::to_writer(&mut out, &msg)
    };
    res.map_err(|source| JsonEncodeError::Serialize {
        signal: name,
        source,
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::test_util::{log_request, metric_request, trace_request};

    fn traces_json() -> serde_json::Value {
        let req = trace_request(1, 2);
        let json = protobuf_to_json(Signal::Traces, &req.encode_to_vec()).unwrap();
        serde_json::from_slice(&json).unwrap()
    }

    #[test]
    fn ids_are_lowercase_hex_times_strings_and_kind_an_int() {
        let v = traces_json();
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][1];
        assert_eq!(span["traceId"], "0102030405060708090a0b0c0d0e0fa0");
        assert_eq!(span["spanId"], "00000000000000ab");
        assert_eq!(span["parentSpanId"], "00000000000000aa");
        assert_eq!(span["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(span["endTimeUnixNano"], "1700000000250000000");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["name"], "span-1");
        assert_eq!(span["status"]["code"], 2);
        let attr = &span["attributes"][0];
        assert_eq!(attr["key"], "gen_ai.system");
        assert_eq!(attr["value"]["stringValue"], "openai");
        assert_eq!(span["attributes"][1]["value"]["intValue"], "42");
    }

    #[test]
    fn metrics_and_logs_encode() {
        let m = protobuf_to_json(Signal::Metrics, &metric_request().encode_to_vec()).unwrap();
        let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(
            m["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["name"],
            "requests"
        );
        let l = protobuf_to_json(Signal::Logs, &log_request().encode_to_vec()).unwrap();
        let l: serde_json::Value = serde_json::from_slice(&l).unwrap();
        let rec = &l["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(rec["body"]["stringValue"], "hello");
        assert_eq!(rec["traceId"], "0102030405060708090a0b0c0d0e0fa0");
    }

    #[test]
    fn garbage_is_a_decode_error_and_pretty_is_indented() {
        let err = protobuf_to_json(Signal::Traces, b"\x0a\xff\xff").unwrap_err();
        assert!(
            matches!(
                err,
                JsonEncodeError::Decode {
                    signal: "traces",
                    ..
                }
            ),
            "{err}"
        );
        let pretty =
            protobuf_to_json_pretty(Signal::Traces, &trace_request(1, 1).encode_to_vec()).unwrap();
        assert!(
            std::str::from_utf8(&pretty)
                .unwrap()
                .contains("\n  \"resourceSpans\"")
        );
    }

    #[test]
    fn round_trips_through_the_receiver_decoder() {
        let req = trace_request(2, 3);
        let json = protobuf_to_json(Signal::Traces, &req.encode_to_vec()).unwrap();
        let (back, items) = crate::json::json_to_protobuf(Signal::Traces, &json).unwrap();
        assert_eq!(items, 6);
        assert_eq!(ExportTraceServiceRequest::decode(&back[..]).unwrap(), req);
    }
}
