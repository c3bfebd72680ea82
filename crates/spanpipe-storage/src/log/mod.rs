//! The segment log: one directory per client holding append-only segments `<n>.log`, each with an
//! acknowledgement file `<n>.ack`, and a `LOCK` file held while the client is open.
//!
//! - Append writes header and data at the end of the active segment; a new segment starts when it would pass
//!   `segment_size`, and at every open (older segments are then only read).
//! - An append is two-phase for the queue's all-or-nothing admission: [`StorageClient::stage`] writes the record
//!   but keeps it from readers until [`StorageClient::publish`]; [`StorageClient::withdraw`] forgets it (as an
//!   acknowledgement would) when another exporter's write failed and the request is refused.
//! - Records are handed out oldest first; an acknowledgement appends the record's offset to its segment's ack
//!   file. If that write fails (a full disk) the acknowledgement is kept in memory, counted in
//!   [`StorageStats::ack_write_failures`] and written again at the next acknowledgement or append: it never
//!   holds a segment back — a segment with nothing live is deleted whole, and an emptied active segment is
//!   replaced after a failed write so its space is free at once. A segment whose records are all acknowledged is deleted (log first, then acks: a crash in between
//!   leaves only an orphan ack file, removed at the next open).
//! - Open scans every segment (both checksums), resynchronises after a damaged header, truncates a torn tail,
//!   skips damaged and acknowledged records, and deletes segments with nothing left. Damaged stretches are
//!   remembered in `<n>.bad` (start, end, CRC), so each is counted once, not at every open.
//!
//! Durability: every write is a `write(2)` before the call returns, so a record or acknowledgement survives the
//! process being killed (the page cache belongs to the kernel). With `fsync` the data is also synced before
//! `append` returns (and the directory when a segment is created), which survives power loss. Acknowledgements
//! are never synced: losing one only means sending its record again.

mod record;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use spanpipe_core::{Record, RecordId, StorageClient, StorageError, StorageStats};

use record::{Entry, HEADER, ack_entry, bad_entry, header, parse_acks, parse_bad, scan};

/// How a log behaves.
#[derive(Clone, Copy, Debug)]
pub struct LogOptions {
    pub fsync: bool,
    /// A segment is closed once the next record would take it past this (a single larger record gets its own).
    pub segment_size: u64,
    /// Cap on the bytes of unacknowledged records, enforced by the queue through [`StorageClient::max_bytes`].
    pub max_bytes: Option<u64>,
}

struct Segment {
    file: File,
    end: u64,
    unread: VecDeque<Entry>,
    /// Records not yet acknowledged (staged, unread or in flight).
    live: u64,
    ack: Option<File>,
    /// Acknowledgements whose write failed (a full disk): kept in memory — the records are not handed out
    /// again by this process — and written again at the next acknowledgement or append.
    owed: Vec<u64>,
}

impl Segment {
    fn new(file: File, end: u64, unread: VecDeque<Entry>) -> Segment {
        Segment {
            file,
            end,
            live: unread.len() as u64,
            unread,
            ack: None,
            owed: Vec::new(),
        }
    }

    /// Writes the owed acknowledgements to `path`; false (nothing lost: they stay owed) if that fails.
    fn write_acks(&mut self, path: &Path) -> bool {
        if self.owed.is_empty() {
            return true;
        }
        let mut buf = Vec::with_capacity(self.owed.len() * record::ACK);
        for off in &self.owed {
            buf.extend_from_slice(&ack_entry(*off));
        }
        if self.ack.is_none() {
            match OpenOptions::new().create(true).append(true).open(path) {
                Ok(f) => self.ack = Some(f),
                Err(_) => return false,
            }
        }
        let Some(f) = self.ack.as_mut() else {
            return false;
        };
        // A short write leaves a torn entry, which the reader ignores (each entry has its checksum); the whole
        // batch is written again, and an offset acknowledged twice is harmless.
        match f.write_all(&buf) {
            Ok(()) => {
                self.owed.clear();
                true
            }
            Err(_) => {
                // Opened afresh next time (the file may have been replaced, the device remounted).
                self.ack = None;
                false
            }
        }
    }
}

/// One client's log. Not shared: the queue serialises calls behind a mutex.
pub struct SegmentLog {
    dir: PathBuf,
    opts: LogOptions,
    segments: BTreeMap<u64, Segment>,
    active: u64,
    in_flight: HashMap<RecordId, Entry>,
    /// Written but not yet visible to [`StorageClient::next`]: a two-phase append waiting for its
    /// [`StorageClient::publish`] or [`StorageClient::withdraw`].
    staged: HashMap<RecordId, Entry>,
    stats: StorageStats,
    /// Some segment owes acknowledgements (a write of them failed).
    acks_owed: bool,
    /// A write failed since the active segment started (the disk is full): once the active segment holds no
    /// live record it is replaced, so its space is given back at once.
    pressure: bool,
    /// Kept open: its lock is released when the log is dropped (or the process dies).
    _lock: File,
}

fn seg_path(dir: &Path, id: u64, ext: &str) -> PathBuf {
    dir.join(format!("{id:020}.{ext}"))
}

fn err(what: &str, path: &Path, e: std::io::Error) -> StorageError {
    StorageError(format!("{what} {}: {e}", path.display()))
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err("cannot sync directory", dir, e))
}

impl SegmentLog {
    /// Opens (creating) the log in `dir`, recovering what an earlier process left.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<SegmentLog, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| err("cannot create", dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| err("cannot open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StorageError(format!(
                    "{} is in use by another queue or process",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(err("cannot lock", &lock_path, e)),
        }
        let mut log = SegmentLog {
            dir: dir.to_path_buf(),
            opts,
            segments: BTreeMap::new(),
            active: 0,
            in_flight: HashMap::new(),
            staged: HashMap::new(),
            stats: StorageStats::default(),
            acks_owed: false,
            pressure: false,
            _lock: lock,
        };
        let (logs, acks) = log.list()?;
        for id in &logs {
            log.recover(*id)?;
        }
        for id in acks.iter().filter(|a| !logs.contains(a)) {
            for ext in ["ack", "bad"] {
                let p = seg_path(dir, *id, ext);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(err("cannot remove", &p, e)),
                }
            }
        }
        let next = logs.last().map_or(1, |l| l + 1);
        log.start_segment(next)?;
        Ok(log)
    }

    /// Segment ids with a log file and with an ack file, ascending.
    fn list(&self) -> Result<(Vec<u64>, Vec<u64>), StorageError> {
        let (mut logs, mut acks) = (Vec::new(), Vec::new());
        let rd = std::fs::read_dir(&self.dir).map_err(|e| err("cannot list", &self.dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| err("cannot list", &self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((stem, ext)) = name.split_once('.') else {
                continue;
            };
            let Ok(id) = stem.parse::<u64>() else {
                continue;
            };
            match ext {
                "log" => logs.push(id),
                // A damage record without its log is an orphan too: removed with the orphan acks.
                "ack" | "bad" => acks.push(id),
                _ => {}
            }
        }
        logs.sort_unstable();
        acks.sort_unstable();
        Ok((logs, acks))
    }

    /// Loads segment `id`: valid records minus acknowledged ones; a torn tail is cut off, an empty segment
    /// deleted.
    fn recover(&mut self, id: u64) -> Result<(), StorageError> {
        let path = seg_path(&self.dir, id, "log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| err("cannot open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| err("cannot stat", &path, e))?
            .len();
        let found = scan(&file, len).map_err(|e| err("cannot read", &path, e))?;
        self.stats.corrupt += u64::from(found.torn);
        if found.end < len {
            file.set_len(found.end)
                .map_err(|e| err("cannot truncate", &path, e))?;
        }
        let ack_path = seg_path(&self.dir, id, "ack");
        let acked: std::collections::HashSet<u64> = match std::fs::read(&ack_path) {
            Ok(b) => parse_acks(&b).into_iter().collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
            Err(e) => return Err(err("cannot read", &ack_path, e)),
        };
        let unread: VecDeque<Entry> = found
            .entries
            .into_iter()
            .filter(|e| !acked.contains(&e.offset))
            .collect();
        // Damage is counted once: a stretch already recorded in `<n>.bad` by an earlier open is not counted
        // again (one that grew — new damage next to old — is); a record found damaged when read was acknowledged.
        let bad_path = seg_path(&self.dir, id, "bad");
        let known: std::collections::HashSet<(u64, u64)> = match std::fs::read(&bad_path) {
            Ok(b) => parse_bad(&b).into_iter().collect(),
            Err(_) => Default::default(),
        };
        let new_damage: Vec<(u64, u64)> = found
            .damaged
            .into_iter()
            .filter(|d| !known.contains(d) && !acked.contains(&d.0))
            .collect();
        self.stats.corrupt += new_damage.len() as u64;
        if unread.is_empty() {
            return self.delete(id, &path, &ack_path);
        }
        if !new_damage.is_empty() {
            let mut buf = Vec::with_capacity(new_damage.len() * record::BAD);
            for (start, end) in &new_damage {
                buf.extend_from_slice(&bad_entry(*start, *end));
            }
            // Best effort: if it fails the damage is only counted again at the next open.
            let _ = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&bad_path)
                .and_then(|mut f| f.write_all(&buf));
        }
        for e in &unread {
            self.count(e, true);
        }
        self.segments
            .insert(id, Segment::new(file, found.end, unread));
        Ok(())
    }

    fn delete(&mut self, id: u64, log: &Path, ack: &Path) -> Result<(), StorageError> {
        self.segments.remove(&id);
        std::fs::remove_file(log).map_err(|e| err("cannot remove", log, e))?;
        let bad = seg_path(&self.dir, id, "bad");
        match std::fs::remove_file(&bad) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("cannot remove", &bad, e)),
        }
        match std::fs::remove_file(ack) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err("cannot remove", ack, e)),
        }
    }

    fn count(&mut self, e: &Entry, add: bool) {
        let s = &mut self.stats;
        if add {
            s.records += 1;
            s.items += u64::from(e.items);
            s.bytes += e.size();
        } else {
            s.records = s.records.saturating_sub(1);
            s.items = s.items.saturating_sub(u64::from(e.items));
            s.bytes = s.bytes.saturating_sub(e.size());
        }
    }

    fn start_segment(&mut self, id: u64) -> Result<(), StorageError> {
        let path = seg_path(&self.dir, id, "log");
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| err("cannot create", &path, e))?;
        if self.opts.fsync {
            sync_dir(&self.dir)?;
        }
        let old = self.active;
        self.segments
            .insert(id, Segment::new(file, 0, VecDeque::new()));
        self.active = id;
        self.pressure = false;
        self.delete_if_done(old)
    }

    /// Replaces the active segment when it holds no live record and either a write failed (the disk is full:
    /// give its space back now) or it is at least a quarter full (so a queue that keeps emptying does not grow
    /// a segment to `segment_size` before its space is reclaimed).
    fn rotate_if_empty(&mut self) {
        let Some(seg) = self.segments.get(&self.active) else {
            return;
        };
        if seg.live == 0
            && seg.end > 0
            && (self.pressure || !seg.owed.is_empty() || seg.end >= self.opts.segment_size / 4)
        {
            // On failure (no inode left) the active segment stays; a later acknowledgement tries again.
            let _ = self.start_segment(self.active + 1);
        }
    }

    /// Writes every owed acknowledgement it can.
    fn pay_acks(&mut self) {
        if !self.acks_owed {
            return;
        }
        let mut all = true;
        for (&sid, seg) in self.segments.iter_mut() {
            all &= seg.write_acks(&seg_path(&self.dir, sid, "ack"));
        }
        self.acks_owed = !all;
    }

    /// Deletes segment `id` if it is not the active one and nothing in it is left.
    fn delete_if_done(&mut self, id: u64) -> Result<(), StorageError> {
        let done = id != self.active && self.segments.get(&id).is_some_and(|s| s.live == 0);
        if done {
            let (log, ack) = (
                seg_path(&self.dir, id, "log"),
                seg_path(&self.dir, id, "ack"),
            );
            self.delete(id, &log, &ack)?;
        }
        Ok(())
    }

    /// Segment files currently on disk (for tests and diagnostics).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

impl StorageClient for SegmentLog {
    fn stage(&mut self, data: &[u8], items: u32) -> Result<RecordId, StorageError> {
        self.pay_acks();
        self.rotate_if_empty();
        let len = u32::try_from(data.len())
            .map_err(|_| StorageError(format!("record of {} bytes is too large", data.len())))?;
        let size = HEADER + u64::from(len);
        let active_end = self.segments.get(&self.active).map_or(0, |s| s.end);
        if active_end > 0 && active_end + size > self.opts.segment_size {
            self.start_segment(self.active + 1)?;
        }
        let crc = crc32fast::hash(data);
        let path = seg_path(&self.dir, self.active, "log");
        let fsync = self.opts.fsync;
        let Some(seg) = self.segments.get_mut(&self.active) else {
            return Err(StorageError("no active segment".into()));
        };
        let written = seg
            .file
            .write_all(&header(len, items, crc))
            .and_then(|()| seg.file.write_all(data))
            .and_then(|()| if fsync { seg.file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // Cut a partial record off so later appends stay readable (and its space is free again); if even
            // that fails, start afresh.
            self.pressure = true;
            if seg.file.set_len(seg.end).is_err() {
                let next = self.active + 1;
                let _ = self.start_segment(next);
            }
            return Err(err("cannot write", &path, e));
        }
        let entry = Entry {
            offset: seg.end,
            len,
            items,
            crc,
        };
        seg.end += size;
        seg.live += 1;
        self.count(&entry, true);
        let id = RecordId {
            segment: self.active,
            offset: entry.offset,
        };
        self.staged.insert(id, entry);
        Ok(id)
    }

    fn publish(&mut self, id: RecordId) {
        let Some(entry) = self.staged.remove(&id) else {
            return;
        };
        let Some(seg) = self.segments.get_mut(&id.segment) else {
            return;
        };
        // Usually the newest record: its place is at the back.
        let at = seg.unread.partition_point(|e| e.offset < entry.offset);
        seg.unread.insert(at, entry);
    }

    fn withdraw(&mut self, id: RecordId) -> Result<(), StorageError> {
        let Some(entry) = self.staged.remove(&id) else {
            return Ok(());
        };
        self.in_flight.insert(id, entry);
        self.ack(id)
    }

    fn next(&mut self) -> Result<Option<Record>, StorageError> {
        loop {
            let Some((&sid, seg)) = self.segments.iter_mut().find(|(_, s)| !s.unread.is_empty())
            else {
                return Ok(None);
            };
            let Some(entry) = seg.unread.pop_front() else {
                continue;
            };
            let mut data = vec![0u8; entry.len as usize];
            let id = RecordId {
                segment: sid,
                offset: entry.offset,
            };
            if let Err(e) = seg.file.read_exact_at(&mut data, entry.offset + HEADER) {
                seg.unread.push_front(entry);
                return Err(err("cannot read", &seg_path(&self.dir, sid, "log"), e));
            }
            self.in_flight.insert(id, entry);
            if crc32fast::hash(&data) != entry.crc {
                // Damaged since it was written or scanned: skip it for good.
                self.stats.corrupt += 1;
                self.ack(id)?;
                continue;
            }
            return Ok(Some(Record {
                id,
                data,
                items: entry.items,
            }));
        }
    }

    fn ack(&mut self, id: RecordId) -> Result<(), StorageError> {
        let Some(entry) = self.in_flight.remove(&id) else {
            return Ok(());
        };
        self.count(&entry, false);
        let path = seg_path(&self.dir, id.segment, "ack");
        let Some(seg) = self.segments.get_mut(&id.segment) else {
            return Ok(());
        };
        seg.live = seg.live.saturating_sub(1);
        seg.owed.push(id.offset);
        // Not needed when the segment is about to be deleted as a whole.
        let whole = id.segment != self.active && seg.live == 0;
        if !whole && !seg.write_acks(&path) {
            // Kept in memory (this process never hands the record out again) and written again later; only a
            // restart before that sends it once more. Counted once per acknowledgement.
            self.stats.ack_write_failures += 1;
            self.acks_owed = true;
            self.pressure = true;
        }
        self.delete_if_done(id.segment)?;
        self.pay_acks();
        self.rotate_if_empty();
        Ok(())
    }

    fn stats(&self) -> StorageStats {
        self.stats
    }

    fn record_overhead(&self) -> u64 {
        HEADER
    }

    fn max_bytes(&self) -> Option<u64> {
        self.opts.max_bytes
    }
}
