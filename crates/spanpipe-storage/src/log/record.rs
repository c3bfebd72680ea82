//! The on-disk record and acknowledgement formats, and the scan that finds the valid records of a segment.
//!
//! A record is a 16-byte header — data length, items, CRC-32 of the data, CRC-32 of the first 12 header bytes —
//! then the data. The header has its own checksum so a damaged length is never trusted: a record whose header
//! checks out but whose data does not is skipped and the scan goes on; after a header that fails its checksum the
//! scan resynchronises on the next valid header (the header checksum is the sync marker, so segments written
//! before resynchronisation existed read unchanged); only damage reaching the end of the file is a torn tail,
//! cut off.
//!
//! An acknowledgement is 12 bytes: the record's offset and its CRC-32, so a torn or zero-filled tail of an ack
//! file is ignored rather than misread.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Bytes of a record header.
pub const HEADER: u64 = 16;
/// Bytes of an acknowledgement entry.
pub const ACK: usize = 12;

/// A valid record found in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub len: u32,
    pub items: u32,
    pub crc: u32,
}

impl Entry {
    /// Its on-disk size.
    pub fn size(&self) -> u64 {
        HEADER + u64::from(self.len)
    }
}

/// The header of a record of `data` holding `items`.
pub fn header(data_len: u32, items: u32, data_crc: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&data_len.to_le_bytes());
    h[4..8].copy_from_slice(&items.to_le_bytes());
    h[8..12].copy_from_slice(&data_crc.to_le_bytes());
    let hc = crc32fast::hash(&h[0..12]);
    h[12..16].copy_from_slice(&hc.to_le_bytes());
    h
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Parses a header; `None` if its checksum fails.
fn parse_header(h: &[u8; 16]) -> Option<(u32, u32, u32)> {
    (crc32fast::hash(&h[0..12]) == le32(&h[12..16]))
        .then(|| (le32(&h[0..4]), le32(&h[4..8]), le32(&h[8..12])))
}

/// What a segment holds.
#[derive(Debug, Default)]
pub struct Scan {
    pub entries: Vec<Entry>,
    /// Where the valid part ends (the file is truncated there if it is longer).
    pub end: u64,
    /// Damaged stretches `(start, end)`: a record failing its data checksum, or bytes the scan resynchronised
    /// over after a damaged header (one entry each). The log remembers them (`<n>.bad`), so a later open counts
    /// only new damage.
    pub damaged: Vec<(u64, u64)>,
    /// The segment ends in a torn record (cut off at `end`).
    pub torn: bool,
}

/// Bytes read at a time while looking for the next valid header after a damaged one.
const RESYNC_CHUNK: usize = 64 << 10;

/// The first offset in `from..len` holding a valid header (its checksum holds) whose record fits in the file:
/// where the scan picks up again after a damaged header. The header checksum is the sync marker — a random
/// 16-byte window passes it with odds of 2^-32 — so the format needs no magic bytes.
fn resync(file: &File, from: u64, len: u64) -> std::io::Result<Option<u64>> {
    let hdr = HEADER as usize;
    let mut buf = vec![0u8; RESYNC_CHUNK + hdr];
    let mut base = from;
    // Bounded: every round advances `base` by RESYNC_CHUNK until the end of the file.
    while base + HEADER <= len {
        let want = usize::try_from((len - base).min((RESYNC_CHUNK + hdr) as u64)).unwrap_or(hdr);
        let got = &mut buf[..want];
        file.read_exact_at(got, base)?;
        for i in 0..=(want - hdr) {
            let mut h = [0u8; 16];
            h.copy_from_slice(&got[i..i + hdr]);
            if let Some((dlen, _, _)) = parse_header(&h) {
                let at = base + i as u64;
                if at + HEADER + u64::from(dlen) <= len {
                    return Ok(Some(at));
                }
            }
        }
        base += RESYNC_CHUNK as u64;
    }
    Ok(None)
}

/// Reads every record of `file` (of length `len`), checking both checksums.
///
/// - A record whose header holds but whose data fails its checksum is skipped (the header's length is trusted,
///   it is checksummed) and counted.
/// - A header failing its checksum starts a damaged stretch: the scan resynchronises on the next valid header
///   ([`resync`]) and counts the stretch as one damaged record (a flipped bit damages exactly one).
/// - A stretch with no valid header up to the end, an incomplete header, or a valid header whose data runs past
///   the end is a torn tail: counted once, and `end` stops before it so the caller truncates it.
pub fn scan(file: &File, len: u64) -> std::io::Result<Scan> {
    let mut out = Scan::default();
    let mut off = 0u64;
    let mut data = Vec::new();
    // Bounded: every round moves `off` forward (by a whole record or to a resync point past it) or ends.
    while off < len {
        let remaining = len - off;
        if remaining < HEADER {
            out.torn = true;
            break;
        }
        let mut h = [0u8; 16];
        file.read_exact_at(&mut h, off)?;
        let Some((dlen, items, crc)) = parse_header(&h) else {
            match resync(file, off + 1, len)? {
                Some(next) => {
                    out.damaged.push((off, next));
                    off = next;
                    continue;
                }
                None => {
                    out.torn = true;
                    break;
                }
            }
        };
        if u64::from(dlen) > remaining - HEADER {
            out.torn = true;
            break;
        }
        data.resize(dlen as usize, 0);
        file.read_exact_at(&mut data, off + HEADER)?;
        if crc32fast::hash(&data) == crc {
            out.entries.push(Entry {
                offset: off,
                len: dlen,
                items,
                crc,
            });
        } else {
            out.damaged.push((off, off + HEADER + u64::from(dlen)));
        }
        off += HEADER + u64::from(dlen);
    }
    out.end = off;
    Ok(out)
}

/// Bytes of a damage entry (`<n>.bad`): start, end, CRC-32.
pub const BAD: usize = 20;

/// The damage entry of the stretch `start..end`.
pub fn bad_entry(start: u64, end: u64) -> [u8; BAD] {
    let mut e = [0u8; BAD];
    e[0..8].copy_from_slice(&start.to_le_bytes());
    e[8..16].copy_from_slice(&end.to_le_bytes());
    let crc = crc32fast::hash(&e[0..16]);
    e[16..20].copy_from_slice(&crc.to_le_bytes());
    e
}

/// The damaged stretches a `.bad` file records (entries failing their checksum are ignored).
pub fn parse_bad(bytes: &[u8]) -> Vec<(u64, u64)> {
    let u64_at = |b: &[u8]| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    bytes
        .chunks_exact(BAD)
        .filter(|e| crc32fast::hash(&e[0..16]) == le32(&e[16..20]))
        .map(|e| (u64_at(&e[0..8]), u64_at(&e[8..16])))
        .collect()
}

/// The acknowledgement entry of the record at `offset`.
pub fn ack_entry(offset: u64) -> [u8; ACK] {
    let mut e = [0u8; ACK];
    e[0..8].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&e[0..8]);
    e[8..12].copy_from_slice(&crc.to_le_bytes());
    e
}

/// The offsets an ack file acknowledges (entries failing their checksum are ignored).
pub fn parse_acks(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(ACK)
        .filter(|e| crc32fast::hash(&e[0..8]) == le32(&e[8..12]))
        .map(|e| u64::from_le_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]))
        .collect()
}
