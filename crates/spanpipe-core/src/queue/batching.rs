//! `sending_queue.batch`: batching inside the exporter's queue (the OTel Collector's exporterhelper batcher), so a
//! request is admitted — written to the persistent queue, or holding its room in the memory queue — *before* the
//! client is answered, and only merged with others when the workers read it out for export. Unlike a `batch`
//! processor in front of the queue, nothing acknowledged ever sits in a buffer that a SIGKILL would lose.
//!
//! One worker at a time collects (see `worker.rs`): it takes queued requests until `min_size` (in the batch `sizer`'s unit) is reached or `flush_timeout` passed
//! since the first, never past `max_size`; then it exports the merged batch while the next worker collects. Only
//! requests of one signal with equal client metadata are merged: a request that does not fit (another signal or
//! metadata, or past `max_size`) is carried over to start the next batch. A persistent queue acknowledges the
//! records of a batch together once its export succeeded or was given up; a stop before that leaves all of them
//! on disk, to be sent again after the restart.

use std::time::Duration;

use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;

use crate::Batch;

/// What `sending_queue.batch` sizes count.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BatchSizer {
    /// Spans, metric data points, log records.
    #[default]
    Items,
    /// Bytes of the encoded OTLP payload.
    Bytes,
    /// Requests as received.
    Requests,
}

/// `sending_queue.batch` settings (the OTel Collector's names and defaults). `batch:` with no value (null) or
/// `batch: {}` enables batching with these defaults.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSettings {
    /// A batch is exported this long after its first request at the latest, whatever its size.
    pub flush_timeout: ConfigDuration,
    /// A batch is exported as soon as it reaches this size (in `sizer` units).
    pub min_size: usize,
    /// No batch grows past this (0: no limit). A single request larger than it is sent whole, not split.
    pub max_size: usize,
    pub sizer: BatchSizer,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            flush_timeout: ConfigDuration(Duration::from_millis(200)),
            min_size: 8192,
            max_size: 0,
            sizer: BatchSizer::Items,
        }
    }
}

impl BatchSettings {
    /// Checks ranges; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.flush_timeout.0.is_zero() {
            return Err("flush_timeout must be greater than 0".into());
        }
        if self.max_size != 0 && self.max_size < self.min_size {
            return Err(format!(
                "max_size ({}) must be 0 or at least min_size ({})",
                self.max_size, self.min_size
            ));
        }
        Ok(())
    }

    /// The size of `batch` in the sizer's unit.
    pub fn size_of(&self, batch: &Batch) -> usize {
        match self.sizer {
            BatchSizer::Items => batch.items,
            BatchSizer::Bytes => batch.payload.len(),
            BatchSizer::Requests => 1,
        }
    }

    /// Whether `b` (of size `b_size`) may join a batch started by `first` that has `size` so far: one signal, equal
    /// client metadata, and not past `max_size`.
    pub(super) fn fits(&self, first: &Batch, b: &Batch, size: usize, b_size: usize) -> bool {
        first.signal == b.signal
            && first.metadata == b.metadata
            && (self.max_size == 0 || size + b_size <= self.max_size)
    }
}

/// `batch:` with a null value enables batching with the defaults (as `batch: {}`); an absent key leaves it off.
pub(crate) fn null_is_default<'de, D>(d: D) -> Result<Option<BatchSettings>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Some(
        Option::<BatchSettings>::deserialize(d)?.unwrap_or_default(),
    ))
}
