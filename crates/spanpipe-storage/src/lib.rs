//! Storage extensions: `file_storage` keeps each exporter's persistent sending queue (`sending_queue.storage`) in
//! a local directory, so queued requests survive a restart, a SIGKILL or an outage of hours.
//!
//! # Why a segment log and not an embedded database
//!
//! A sending queue needs exactly three operations — append at the tail, read the oldest, forget what was
//! delivered — and nothing else a database offers (keys, updates, range queries, transactions). An append-only
//! segment log does these in O(1) with sequential writes and no compaction: a delivered segment is deleted as a
//! whole file. The embedded stores that fit (redb, sled, fjall, bbolt as OTel uses) add a B-tree or LSM with
//! write amplification, background compaction (OTel's file_storage needs an explicit `compaction` section
//! because bbolt never shrinks), and their own durability knobs to reconcile with ours; sled is unmaintained.
//! The log is ~400 lines whose every crash case is tested here: a torn write at any offset, a checksum mismatch,
//! a crash between delivery and acknowledgement.
//!
//! # Guarantees
//!
//! - A record is written (`write(2)`) before the queue lets the receiver answer OK, so it survives a crash or
//!   SIGKILL of spanpipe: the kernel's page cache outlives the process. With `fsync: true` it is also synced
//!   before the answer, which survives power loss.
//! - Each record carries CRC-32 checksums (crc32fast) of its header and its data; a torn or damaged record is
//!   detected at open or read, skipped and counted, never delivered half. A damaged header costs only its record
//!   (the scan resynchronises on the next valid header); only damage reaching the end is a torn tail, cut off.
//! - A write that fails (a full disk) keeps nothing: the queue refuses the request. An acknowledgement that cannot
//!   be written is kept in memory and written again later, never holding a segment back.
//! - Delivery is at-least-once: a record is acknowledged right after its export succeeded; a crash in that
//!   window (microseconds: one `write(2)` of 12 bytes) sends it again after the restart.

pub mod file_storage;
pub mod log;

use spanpipe_core::Registry;

/// Registers every component of this crate.
pub fn register(registry: &mut Registry) {
    registry.extension(file_storage::FileStorageFactory);
}
