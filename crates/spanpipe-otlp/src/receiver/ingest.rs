//! The part of the data path both transports share: the door (validate and count the encoded request in one
//! scan, [`Door::admit`]), then hand it to the signal's pipeline without decoding or copying it.
//!
//! The door is where hostile input stops: after it every string is UTF-8, every attribute value at most
//! `max_attribute_depth` deep and every id the right length, so nothing downstream can be crashed, poisoned or
//! fooled by a request that passed (see docs/architecture.md).

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use spanpipe_core::budget::MemoryBudget;
use spanpipe_core::telemetry::SignalCounter;
use spanpipe_core::wire::{check_traces, count_items, drop_invalid_spans, full_decode};
use spanpipe_core::{Batch, Metadata, Signal, SignalConsumers};

use super::config::{OnInvalidSpan, OtlpReceiverConfig};
use super::status::ReceiveError;

/// The receiver's checks and what an invalid span does (`max_attribute_depth`, `on_invalid_span`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Door {
    pub max_attribute_depth: usize,
    pub on_invalid_span: OnInvalidSpan,
}

impl Default for Door {
    fn default() -> Self {
        Door::new(&OtlpReceiverConfig::default())
    }
}

/// A request the door let in: what goes down the pipeline, and what was refused of it (`drop` policy).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    pub payload: Bytes,
    /// Spans, metric data points or log records in `payload`.
    pub items: usize,
    /// Spans removed as invalid; answered as an OTLP partial success.
    pub rejected: usize,
    /// Why, for the partial success's `error_message` (empty when nothing was rejected).
    pub message: String,
}

/// What an accepted request answers: OTLP's `partial_success` (all zero / empty when everything was kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Partial {
    pub rejected: usize,
    pub message: String,
}

impl Partial {
    /// The encoded `Export*ServiceResponse`: empty when nothing was rejected (an empty response encodes to zero
    /// bytes), else `partial_success { rejected_<items> = 1, error_message = 2 }` (field 1 of every response).
    pub fn encode(&self) -> Vec<u8> {
        if self.rejected == 0 {
            return Vec::new();
        }
        let mut ps = Vec::new();
        spanpipe_core::wire::put_varint(&mut ps, 1 << 3);
        spanpipe_core::wire::put_varint(&mut ps, self.rejected as u64);
        spanpipe_core::wire::put_bytes_field(&mut ps, 2, self.message.as_bytes());
        let mut out = Vec::with_capacity(ps.len() + 4);
        spanpipe_core::wire::put_bytes_field(&mut out, 1, &ps);
        out
    }

    /// The OTLP/JSON response body (`{}` when nothing was rejected).
    pub fn json(&self, signal: Signal) -> Vec<u8> {
        if self.rejected == 0 {
            return b"{}".to_vec();
        }
        let key = match signal {
            Signal::Traces => "rejectedSpans",
            Signal::Metrics => "rejectedDataPoints",
            Signal::Logs => "rejectedLogRecords",
        };
        serde_json::json!({ "partialSuccess": { key: self.rejected.to_string(), "errorMessage": self.message } })
            .to_string()
            .into_bytes()
    }
}

impl Door {
    pub fn new(cfg: &OtlpReceiverConfig) -> Self {
        Door {
            max_attribute_depth: cfg.max_attribute_depth,
            on_invalid_span: cfg.on_invalid_span,
        }
    }

    /// Validates and counts an encoded `Export*ServiceRequest` in one scan. Traces get the full check; a request
    /// with invalid spans is refused whole (`reject`) or loses exactly those spans (`drop`). A request whose
    /// structure is broken is always refused.
    pub fn admit(&self, signal: Signal, payload: Bytes) -> Result<Admitted, ReceiveError> {
        let invalid = |e: &dyn std::fmt::Display| {
            ReceiveError::Invalid(format!("invalid OTLP protobuf: {e}"))
        };
        if signal != Signal::Traces {
            // Metrics and logs are rare next to spans: a full decode is their door (UTF-8, nesting, structure),
            // so the exporters that decode them can rely on it.
            let items = count_items(signal, &payload).map_err(|e| invalid(&e))?;
            full_decode(signal, &payload).map_err(|e| invalid(&e))?;
            return Ok(Admitted {
                payload,
                items,
                ..Admitted::default()
            });
        }
        let report = check_traces(&payload, self.max_attribute_depth).map_err(|e| invalid(&e))?;
        let Some(first) = report.first_error else {
            return Ok(Admitted {
                payload,
                items: report.spans,
                ..Admitted::default()
            });
        };
        let message = format!(
            "{} of {} spans invalid; first: {first}",
            report.invalid_spans, report.spans
        );
        if self.on_invalid_span == OnInvalidSpan::Reject {
            return Err(ReceiveError::InvalidSpans {
                message: format!("invalid OTLP request: {message}"),
                spans: report.spans,
            });
        }
        let outcome =
            drop_invalid_spans(&payload, self.max_attribute_depth).map_err(|e| invalid(&e))?;
        let kept = outcome.payload.map_or(payload, Bytes::from);
        Ok(Admitted {
            payload: kept,
            items: report.spans - outcome.dropped,
            rejected: outcome.dropped,
            message,
        })
    }
}

/// What a client refused for the memory budget is told to wait: queues drain in about that time.
const BUDGET_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a running receiver delivers, plus its self-telemetry (`otelcol_receiver_accepted_spans_total`, ...,
/// labelled `receiver` and `transport` as in the OTel Collector). One per transport.
pub struct Ingest {
    consumers: SignalConsumers,
    accepted: SignalCounter,
    refused: SignalCounter,
    /// `spanpipe_receiver_request_duration_seconds`: from the request's headers to its answer, body read, door
    /// and hand-over included (the collector's own share of a client's Export latency; the batch timeout is
    /// never in it, a request is answered once appended).
    duration: metrics::Histogram,
    /// The checks every request passes first.
    pub door: Door,
}

impl Ingest {
    /// `receiver` (e.g. `otlp`) and `transport` (`grpc` or `http`) label the counters.
    pub fn new(
        consumers: SignalConsumers,
        receiver: &str,
        transport: &str,
        door: Door,
    ) -> Arc<Self> {
        let labels = [("receiver", receiver), ("transport", transport)];
        Arc::new(Ingest {
            door,
            consumers,
            accepted: SignalCounter::with_labels("receiver", "accepted", &labels),
            refused: SignalCounter::with_labels("receiver", "refused", &labels),
            duration: metrics::histogram!(
                spanpipe_core::telemetry::RECEIVER_REQUEST_DURATION,
                "receiver" => receiver.to_string(),
                "transport" => transport.to_string()
            ),
        })
    }

    /// Records how long one request took to answer.
    pub fn observe(&self, since: std::time::Instant) {
        self.duration.record(since.elapsed().as_secs_f64());
    }

    /// Fails with [`ReceiveError::NoPipeline`] when no pipeline takes `signal` from this receiver.
    pub fn check_signal(&self, signal: Signal) -> Result<(), ReceiveError> {
        match self.consumers.get(signal) {
            Some(_) => Ok(()),
            None => Err(ReceiveError::NoPipeline(signal.as_str())),
        }
    }

    /// Passes an encoded `Export*ServiceRequest` through the door, then delivers what it let in. The answer
    /// carries what was rejected (partial success).
    pub async fn protobuf(
        &self,
        signal: Signal,
        payload: Bytes,
        metadata: Metadata,
    ) -> Result<Partial, ReceiveError> {
        let admitted = self
            .door
            .admit(signal, payload)
            .inspect_err(|e| self.count_refused(signal, e))?;
        self.deliver(signal, admitted, metadata).await
    }

    /// Counts the spans of a request the door refused whole.
    pub fn count_refused(&self, signal: Signal, e: &ReceiveError) {
        if let ReceiveError::InvalidSpans { spans, .. } = e {
            self.refused.add(signal, *spans);
        }
    }

    /// Delivers a request the door let in; its rejected spans count as refused. An empty request is accepted
    /// without bothering the pipeline.
    pub async fn deliver(
        &self,
        signal: Signal,
        admitted: Admitted,
        metadata: Metadata,
    ) -> Result<Partial, ReceiveError> {
        let consumer = self
            .consumers
            .get(signal)
            .ok_or(ReceiveError::NoPipeline(signal.as_str()))?;
        if admitted.rejected > 0 {
            self.refused.add(signal, admitted.rejected);
            tracing::debug!(signal = signal.as_str(), rejected = admitted.rejected, reason = %admitted.message,
                "invalid spans dropped at the door");
        }
        let Admitted {
            payload,
            items,
            rejected,
            message,
        } = admitted;
        let partial = Partial { rejected, message };
        if items == 0 {
            return Ok(partial);
        }
        // The process memory budget: refused whole before any exporter saw it, so a retry duplicates nothing.
        let budget = MemoryBudget::global();
        let Some(held) = budget.try_reserve(payload.len()) else {
            self.refused.add(signal, items);
            return Err(ReceiveError::Refused {
                reason: format!(
                    "memory limit reached: {} of service.memory_limit {} bytes held",
                    budget.used(),
                    budget.limit()
                ),
                retry_after: BUDGET_RETRY_AFTER,
            });
        };
        let batch = Batch {
            signal,
            payload: payload.into(),
            items,
            metadata,
            held,
        };
        match consumer.consume(batch).await {
            Ok(()) => {
                self.accepted.add(signal, items);
                Ok(partial)
            }
            Err(e) => {
                self.refused.add(signal, items);
                tracing::debug!(signal = signal.as_str(), items, error = %e, "pipeline did not take a request");
                Err(e.into())
            }
        }
    }
}

/// Request headers as batch metadata (names are already lower-case in `http`); values that are not visible
/// ASCII/UTF-8 are skipped. Exporters decide what to use; nothing here is logged.
pub fn metadata_from_headers(headers: &HeaderMap) -> Metadata {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    Metadata(Some(Arc::from(pairs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keeps_every_text_header() {
        let mut h = HeaderMap::new();
        h.insert("X-Tenant", "a".parse().unwrap());
        h.insert("authorization", "Bearer t".parse().unwrap());
        h.insert("x-bin", http::HeaderValue::from_bytes(b"\xff").unwrap());
        let m = metadata_from_headers(&h);
        assert_eq!(m.get("x-tenant"), Some("a"));
        assert_eq!(m.get("authorization"), Some("Bearer t"));
        assert_eq!(m.get("x-bin"), None);
    }

    /// A metrics request whose metric name is not UTF-8 is refused at the door, so the Prometheus exporters'
    /// decode never meets it; the same request with a valid name passes.
    #[test]
    fn metrics_with_invalid_utf8_are_refused_at_the_door() {
        use spanpipe_core::wire::bytes_field;
        let request = |name: &[u8]| {
            // ExportMetricsServiceRequest { resource_metrics { scope_metrics { metrics { name } } } }
            let metric = bytes_field(1, name);
            let scope_metrics = bytes_field(2, &metric);
            let resource_metrics = bytes_field(2, &scope_metrics);
            Bytes::from(bytes_field(1, &resource_metrics))
        };
        let door = Door::default();
        assert!(door.admit(Signal::Metrics, request(b"requests")).is_ok());
        let err = door
            .admit(Signal::Metrics, request(b"req\xffuests"))
            .unwrap_err();
        assert!(matches!(err, ReceiveError::Invalid(_)), "{err:?}");
    }
}
