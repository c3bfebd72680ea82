//! Durable storage as a capability of an extension: an exporter's `sending_queue.storage: file_storage/<name>`
//! names a storage extension, and its queue keeps requests there instead of in memory, so they survive a
//! restart or a crash.
//!
//! The core knows only these traits (the OTel Collector's `storage.Extension` / `storage.Client`); the on-disk
//! format lives in the storage crate. Unlike OTel's key-value client, a client here is a FIFO log of opaque
//! records, because a queue is all the core stores: append, take the oldest, acknowledge.

use std::fmt;

/// Why a storage operation failed (the directory is missing or locked, the disk is full, ...).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String);

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        StorageError(e.to_string())
    }
}

/// Where a record lives, for acknowledging it: the segment (or file) and the offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId {
    pub segment: u64,
    pub offset: u64,
}

/// A stored record handed out by [`StorageClient::next`].
#[derive(Debug)]
pub struct Record {
    pub id: RecordId,
    pub data: Vec<u8>,
    /// The `items` given to [`StorageClient::append`] (spans, points, records), so queues sized in items can be
    /// counted without decoding.
    pub items: u32,
}

/// What a client holds: every record appended and not yet acknowledged (queued or being sent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    pub records: u64,
    pub items: u64,
    /// On-disk bytes of those records (headers included), what `max_size` caps.
    pub bytes: u64,
    /// Records found damaged (torn or failing their checksum) and skipped since the client was opened.
    pub corrupt: u64,
    /// Acknowledgements whose write failed since the client was opened (kept in memory and written again
    /// later; a restart before that hands their records out once more).
    pub ack_write_failures: u64,
}

/// A storage extension: hands out one client per component.
pub trait Storage: Send + Sync {
    /// Opens (creating if needed) the log of `owner`, e.g. `exporter/otlp/backend`. Records appended by an
    /// earlier process and never acknowledged are handed out again, oldest first. One client per owner at a
    /// time: a second open of the same owner (also from another process) fails.
    fn open(&self, owner: &str) -> Result<Box<dyn StorageClient>, StorageError>;
}

impl fmt::Debug for dyn Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Storage")
    }
}

/// One component's durable FIFO log. Calls block on file I/O: run them off the async threads.
pub trait StorageClient: Send {
    /// Appends a record: [`StorageClient::stage`] then [`StorageClient::publish`].
    fn append(&mut self, data: &[u8], items: u32) -> Result<RecordId, StorageError> {
        let id = self.stage(data, items)?;
        self.publish(id);
        Ok(id)
    }
    /// Writes a record that [`StorageClient::next`] does not hand out until it is published. When this returns
    /// the record survives a crash of the process (and, if the extension syncs, of the machine); a crash before
    /// `publish` or `withdraw` leaves it an ordinary record for the next run. An error means nothing was kept.
    fn stage(&mut self, data: &[u8], items: u32) -> Result<RecordId, StorageError>;
    /// Makes a staged record visible to readers (in memory only; cannot fail).
    fn publish(&mut self, id: RecordId);
    /// Forgets a staged record, as an acknowledgement does (an error is only about writing that down: the
    /// record is forgotten by this process either way).
    fn withdraw(&mut self, id: RecordId) -> Result<(), StorageError>;
    /// The oldest record not yet handed out (it is then in flight until acknowledged), skipping damaged ones.
    fn next(&mut self) -> Result<Option<Record>, StorageError>;
    /// The record is done with (delivered, or given up on): it is not handed out again, even after a restart.
    /// Failing to write that down is not an error: it is kept in memory, retried, and counted in
    /// [`StorageStats::ack_write_failures`]; an error means the bookkeeping itself failed.
    fn ack(&mut self, id: RecordId) -> Result<(), StorageError>;
    fn stats(&self) -> StorageStats;
    /// The bytes a record takes on disk beyond its data (its header), so a queue can check the cap before it
    /// appends.
    fn record_overhead(&self) -> u64;
    /// The cap on [`StorageStats::bytes`], if any.
    fn max_bytes(&self) -> Option<u64>;
}
