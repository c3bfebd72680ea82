//! The part of the data path both transports share: validate and count the encoded request, then hand it to the
//! signal's pipeline without decoding or copying it.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use spanpipe_core::telemetry::SignalCounter;
use spanpipe_core::wire::count_items;
use spanpipe_core::{Batch, Metadata, Signal, SignalConsumers};

use super::status::ReceiveError;

/// Where a running receiver delivers, plus its self-telemetry (`otelcol_receiver_accepted_spans_total`, ...,
/// labelled `receiver` and `transport` as in the OTel Collector). One per transport.
pub struct Ingest {
    consumers: SignalConsumers,
    accepted: SignalCounter,
    refused: SignalCounter,
}

impl Ingest {
    /// `receiver` (e.g. `otlp`) and `transport` (`grpc` or `http`) label the counters.
    pub fn new(consumers: SignalConsumers, receiver: &str, transport: &str) -> Arc<Self> {
        let labels = [("receiver", receiver), ("transport", transport)];
        Arc::new(Ingest {
            consumers,
            accepted: SignalCounter::with_labels("receiver", "accepted", &labels),
            refused: SignalCounter::with_labels("receiver", "refused", &labels),
        })
    }

    /// Fails with [`ReceiveError::NoPipeline`] when no pipeline takes `signal` from this receiver.
    pub fn check_signal(&self, signal: Signal) -> Result<(), ReceiveError> {
        match self.consumers.get(signal) {
            Some(_) => Ok(()),
            None => Err(ReceiveError::NoPipeline(signal.as_str())),
        }
    }

    /// Validates and counts an encoded `Export*ServiceRequest`, then delivers it.
    pub async fn protobuf(
        &self,
        signal: Signal,
        payload: Bytes,
        metadata: Metadata,
    ) -> Result<(), ReceiveError> {
        let items =
            count_items(signal, &payload).map_err(|e| ReceiveError::Invalid(e.to_string()))?;
        self.deliver(signal, payload, items, metadata).await
    }

    /// Delivers an already validated and counted request. An empty request is accepted without bothering the
    /// pipeline.
    pub async fn deliver(
        &self,
        signal: Signal,
        payload: Bytes,
        items: usize,
        metadata: Metadata,
    ) -> Result<(), ReceiveError> {
        let consumer = self
            .consumers
            .get(signal)
            .ok_or(ReceiveError::NoPipeline(signal.as_str()))?;
        if items == 0 {
            return Ok(());
        }
        let batch = Batch {
            signal,
            payload,
            items,
            metadata,
        };
        match consumer.consume(batch).await {
            Ok(()) => {
                self.accepted.add(signal, items);
                Ok(())
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
}
