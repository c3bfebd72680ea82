//! A batch its exporter cannot decode: lose only the requests that are bad, never their batch-mates.
//!
//! The receiver's door checks every request, so an exporter's decode failure is a bug (in a processor that rewrote
//! spans, or in the door). It must still cost nothing to the other clients whose requests share the batch: the
//! batch is cut back into its requests' resources ([`crate::wire::resource_parts`]), each is decoded on its own,
//! those that decode are exported together (with the normal retries) and only the others are counted as failed.

use bytes::Bytes;

use super::{Outcome, SendingQueue};
use crate::telemetry::item_noun;
use crate::wire::{count_items, full_decode, resource_parts};
use crate::{Batch, Payload};

impl SendingQueue {
    /// Exports the decodable part of `batch` once more; counts the rest as failed. Logged as the bug it is.
    pub(super) async fn salvage(&self, batch: &Batch, reason: &str) -> Outcome {
        let parts: Result<Vec<Vec<Bytes>>, _> =
            batch.payload.parts().iter().map(resource_parts).collect();
        let (good, good_items) = match parts {
            Ok(parts) => keep_decodable(batch, parts.into_iter().flatten()),
            Err(_) => (Payload::default(), 0),
        };
        let lost = batch.items.saturating_sub(good_items);
        tracing::error!(exporter = %self.id, error = %reason, lost, kept = good_items,
            noun = item_noun(batch.signal),
            "BUG: a batch that passed the receiver's checks cannot be decoded; exporting its decodable requests \
             and dropping the rest");
        if lost > 0 {
            self.counters.send_failed.add(batch.signal, lost);
        }
        if good.is_empty() {
            return Outcome::Failed;
        }
        let kept = Batch {
            signal: batch.signal,
            payload: good,
            items: good_items,
            metadata: batch.metadata.clone(),
            held: batch.held.clone(),
        };
        // Boxed: this is the retry loop calling itself once (it never salvages twice).
        Box::pin(self.deliver_attempts(&kept, false)).await
    }
}

/// The parts a full decode accepts, joined, and their item count.
fn keep_decodable(batch: &Batch, parts: impl Iterator<Item = Bytes>) -> (Payload, usize) {
    let mut good = Vec::new();
    let mut items = 0;
    for part in parts {
        if full_decode(batch.signal, &part).is_ok() {
            items += count_items(batch.signal, &part).unwrap_or(0);
            good.push(part);
        }
    }
    (Payload::from_parts(good), items)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::component::{Exporter, ExporterSettings};
    use crate::queue::QueueSettings;
    use crate::wire::bytes_field;
    use crate::{ExportError, RetrySettings, Signal};

    /// Decodes like the JSON exporters do; records the span count of what it accepted.
    #[derive(Default)]
    struct DecodingExporter {
        got: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl Exporter for DecodingExporter {
        async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
            let payload = batch.payload.to_bytes();
            if full_decode(batch.signal, &payload).is_err() {
                return Err(ExportError::undecodable("invalid protobuf traces request"));
            }
            let n = count_items(batch.signal, &payload).unwrap_or(0);
            self.got.lock().unwrap_or_else(|e| e.into_inner()).push(n);
            Ok(())
        }
    }

    /// One request of `spans` spans named `name`.
    fn request(spans: usize, name: &[u8]) -> Vec<u8> {
        let mut scope_spans = Vec::new();
        for i in 0..spans {
            let mut span = bytes_field(1, &[1; 16]);
            span.extend(bytes_field(2, &[i as u8 + 1; 8]));
            span.extend(bytes_field(5, name));
            scope_spans.extend(bytes_field(2, &span));
        }
        bytes_field(1, &bytes_field(2, &scope_spans))
    }

    #[tokio::test]
    async fn only_the_bad_request_of_a_batch_is_lost() {
        let exp = Arc::new(DecodingExporter::default());
        let settings = ExporterSettings {
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
            timeout: Duration::from_secs(5),
            storage: None,
        };
        let q = SendingQueue::new("salvage".into(), exp.clone(), settings);
        // Client A's 200 spans around client B's one span with a name that is not UTF-8.
        let mut payload = request(100, b"a");
        payload.extend(request(1, b"\xffb"));
        payload.extend(request(100, b"a"));
        let batch = Batch::new(Signal::Traces, Bytes::from(payload), 201);
        assert!(q.deliver(&batch).await, "the decodable part is sent");
        assert_eq!(*exp.got.lock().unwrap(), vec![200]);
        assert_eq!(q.counters.sent.get(Signal::Traces), 200);
        assert_eq!(q.counters.send_failed.get(Signal::Traces), 1);
    }

    #[tokio::test]
    async fn a_batch_with_nothing_decodable_fails_whole_without_a_second_attempt() {
        let exp = Arc::new(DecodingExporter::default());
        let settings = ExporterSettings {
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
            timeout: Duration::from_secs(5),
            storage: None,
        };
        let q = SendingQueue::new("salvage".into(), exp.clone(), settings);
        let batch = Batch::new(Signal::Traces, Bytes::from(request(3, b"\xff")), 3);
        assert!(!q.deliver(&batch).await);
        assert!(exp.got.lock().unwrap().is_empty());
        assert_eq!(q.counters.send_failed.get(Signal::Traces), 3);
    }
}
