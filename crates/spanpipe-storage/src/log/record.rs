//! The on-disk record and acknowledgement formats, and the scan that finds the valid records of a segment.
//!
//! A record is a 16-byte header — data length, items, CRC-32 of the data, CRC-32 of the first 12 header bytes —
//! then the data. The header has its own checksum so a damaged length is never trusted: a record whose header
//! checks out but whose data does not is skipped and the scan goes on; a bad or incomplete header ends the
//! segment there (a torn tail, or garbage nothing after can be located in).
//!
//! An acknowledgement is 12 bytes: the record's offset and its CRC-32, so a torn or zero-filled tail of an ack
//! file is ignored rather than misread.

use std::fs::File;
use std::io::{BufReader, Read};

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
    /// Damaged records skipped, plus one for a torn or unreadable tail.
    pub corrupt: u64,
}

/// Reads every record of `file` (of length `len`), checking both checksums.
pub fn scan(file: &File, len: u64) -> std::io::Result<Scan> {
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut out = Scan::default();
    let mut off = 0u64;
    let mut data = Vec::new();
    loop {
        let remaining = len - off;
        if remaining == 0 {
            break;
        }
        let mut h = [0u8; 16];
        if remaining < HEADER {
            out.corrupt += 1;
            break;
        }
        r.read_exact(&mut h)?;
        let Some((dlen, items, crc)) = parse_header(&h) else {
            out.corrupt += 1;
            break;
        };
        if u64::from(dlen) > remaining - HEADER {
            out.corrupt += 1;
            break;
        }
        data.resize(dlen as usize, 0);
        r.read_exact(&mut data)?;
        if crc32fast::hash(&data) == crc {
            out.entries.push(Entry {
                offset: off,
                len: dlen,
                items,
                crc,
            });
        } else {
            out.corrupt += 1;
        }
        off += HEADER + u64::from(dlen);
    }
    out.end = off;
    Ok(out)
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
