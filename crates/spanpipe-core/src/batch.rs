//! The unit of data that flows through pipelines.

use std::sync::Arc;

use crate::Signal;
use crate::budget::Held;
pub use crate::payload::Payload;

/// Request metadata a receiver kept (with `include_metadata`): lower-cased header names and their values.
/// Shared, because every exporter of a pipeline sees the same batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Metadata(pub Option<Arc<[(String, String)]>>);

impl Metadata {
    /// The first value of a header, if the receiver kept it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .as_deref()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A batch of telemetry kept as an encoded OTLP `Export*ServiceRequest`.
///
/// Protobuf concatenation means appending two payloads gives a valid request holding both, so batching joins the
/// requests' buffers as [`Payload`] parts without copying, and fan-out shares them with every exporter. Components that need fields scan the bytes
/// ([`crate::wire`]); only those that change spans or must emit JSON decode.
#[derive(Clone, Debug)]
pub struct Batch {
    pub signal: Signal,
    pub payload: Payload,
    /// Spans, metric data points or log records in `payload`.
    pub items: usize,
    pub metadata: Metadata,
    /// The payload's share of the process memory budget ([`crate::budget`]), released when the last copy of
    /// this batch is dropped.
    pub held: Held,
}

impl Batch {
    pub fn new(signal: Signal, payload: impl Into<Payload>, items: usize) -> Self {
        Batch {
            signal,
            payload: payload.into(),
            items,
            metadata: Metadata::default(),
            held: Held::none(),
        }
    }

    /// Joins batches of one signal into one (their metadata must be equal; the first one's is kept). The
    /// payloads' buffers are shared, not copied ([`Payload::join`]).
    pub fn concat(parts: Vec<Batch>) -> Option<Batch> {
        let mut iter = parts.into_iter();
        let first = iter.next()?;
        let rest: Vec<Batch> = iter.collect();
        if rest.is_empty() {
            return Some(first);
        }
        let items = first.items + rest.iter().map(|b| b.items).sum::<usize>();
        let payload = Payload::join(
            std::iter::once(first.payload).chain(rest.iter().map(|b| b.payload.clone())),
        );
        let held = Held::merge(std::iter::once(first.held).chain(rest.into_iter().map(|b| b.held)));
        Some(Batch {
            signal: first.signal,
            payload,
            items,
            metadata: first.metadata,
            held,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_appends_payloads_and_counts() {
        let a = Batch::new(Signal::Traces, &b"ab"[..], 2);
        let b = Batch::new(Signal::Traces, &b"cde"[..], 3);
        let c = Batch::concat(vec![a, b]).unwrap();
        assert_eq!(c.payload.to_vec(), b"abcde");
        assert_eq!(c.payload.parts().len(), 2);
        assert_eq!(c.items, 5);
        assert!(Batch::concat(vec![]).is_none());
    }

    #[test]
    fn metadata_lookup_is_case_insensitive() {
        let m = Metadata(Some(Arc::from(vec![(
            "x-mlflow-experiment-id".to_string(),
            "7".to_string(),
        )])));
        assert_eq!(m.get("X-MLflow-Experiment-Id"), Some("7"));
        assert_eq!(Metadata::default().get("a"), None);
    }
}
