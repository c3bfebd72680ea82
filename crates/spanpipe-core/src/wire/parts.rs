//! Cutting a batch back into its requests' pieces, and telling which of them a full decode accepts.
//!
//! A batch is its requests' bytes appended, so every top-level `resource_*` field is one request's resource (or a
//! whole small request). When an exporter cannot decode a batch — a bug, since the receiver's door checked every
//! request — the delivery layer cuts the batch here, keeps the pieces that decode and loses only the others.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::{Reader, WireError};
use crate::Signal;

/// Every top-level field of an encoded `Export*ServiceRequest`, tag and length included, as a slice of `buf` (no
/// copy). Each piece is itself a valid request of one resource; appending them all gives `buf` back.
pub fn resource_parts(buf: &Bytes) -> Result<Vec<Bytes>, WireError> {
    let mut parts = Vec::new();
    let mut r = Reader::new(buf);
    let mut start = r.position();
    while r.next_field()?.is_some() {
        let end = r.position();
        parts.push(buf.slice(start..end));
        start = end;
    }
    Ok(parts)
}

/// A full prost decode of `buf` as a request of `signal` (what the JSON and Prometheus exporters do with it):
/// `Err` says why it fails. The receiver's door for metrics and logs, and the salvage of an undecodable batch.
pub fn full_decode(signal: Signal, buf: &[u8]) -> Result<(), WireError> {
    let res = match signal {
        Signal::Traces => ExportTraceServiceRequest::decode(buf).map(drop),
        Signal::Metrics => ExportMetricsServiceRequest::decode(buf).map(drop),
        Signal::Logs => ExportLogsServiceRequest::decode(buf).map(drop),
    };
    res.map_err(|e| WireError::new(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::bytes_field;

    fn span_with_name(name: &[u8]) -> Vec<u8> {
        // ResourceSpans { scope_spans { spans { trace_id, span_id, name } } } as one request field.
        let mut span = bytes_field(1, &[1; 16]);
        span.extend(bytes_field(2, &[2; 8]));
        span.extend(bytes_field(5, name));
        let scope_spans = bytes_field(2, &span);
        let resource_spans = bytes_field(2, &scope_spans);
        bytes_field(1, &resource_spans)
    }

    #[test]
    fn parts_append_back_to_the_batch_and_only_the_bad_one_fails_to_decode() {
        let good = span_with_name(b"ok");
        let bad = span_with_name(b"\xffbad");
        let mut all = good.clone();
        all.extend(&bad);
        all.extend(&good);
        let batch = Bytes::from(all.clone());
        let parts = resource_parts(&batch).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), all);
        let ok: Vec<bool> = parts
            .iter()
            .map(|p| full_decode(Signal::Traces, p).is_ok())
            .collect();
        assert_eq!(ok, [true, false, true]);
        assert!(full_decode(Signal::Traces, &batch).is_err());
    }

    #[test]
    fn broken_framing_is_an_error_not_a_panic() {
        let batch = Bytes::from_static(b"\x0a\xff\xff");
        assert!(resource_parts(&batch).is_err());
        assert!(resource_parts(&Bytes::new()).unwrap().is_empty());
    }
}
