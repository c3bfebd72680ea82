//! How a [`Batch`] is kept in a persistent queue: a versioned little-endian header (signal, items, the metadata a
//! receiver kept) followed by the OTLP payload unchanged, so encoding is one copy and decoding one slice.

use std::sync::Arc;

use bytes::Bytes;

use crate::{Batch, Metadata, Signal};

const VERSION: u8 = 1;

/// The encoded size of `batch`, equal to `encode(batch).len()` (for the byte cap before encoding).
pub fn encoded_len(batch: &Batch) -> usize {
    let meta: usize = batch
        .metadata
        .0
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum();
    1 + 1 + 4 + 1 + 4 + meta + batch.payload.len()
}

fn signal_code(s: Signal) -> u8 {
    match s {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Encodes a batch as one record.
pub fn encode(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(batch));
    out.push(VERSION);
    out.push(signal_code(batch.signal));
    out.extend_from_slice(&(batch.items.min(u32::MAX as usize) as u32).to_le_bytes());
    match batch.metadata.0.as_deref() {
        None => {
            out.push(0);
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        Some(pairs) => {
            out.push(1);
            out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
            for (k, v) in pairs {
                put_str(&mut out, k);
                put_str(&mut out, v);
            }
        }
    }
    for part in batch.payload.parts() {
        out.extend_from_slice(part);
    }
    out
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("record too short".into());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "metadata is not UTF-8".to_string())
    }
}

/// Decodes a record written by [`encode`]; an error means the record is unusable (counted as corrupt).
pub fn decode(record: Vec<u8>) -> Result<Batch, String> {
    let mut r = Reader { buf: &record };
    let version = r.u8()?;
    if version != VERSION {
        return Err(format!("unknown record version {version}"));
    }
    let signal = match r.u8()? {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        2 => Signal::Logs,
        other => return Err(format!("unknown signal {other}")),
    };
    let items = r.u32()? as usize;
    let has_meta = r.u8()?;
    let count = r.u32()? as usize;
    let metadata = if has_meta == 1 {
        // Each pair takes at least 8 bytes: a bad count cannot make us allocate more than the record holds.
        let mut pairs = Vec::with_capacity(count.min(r.buf.len() / 8));
        for _ in 0..count {
            let k = r.string()?;
            let v = r.string()?;
            pairs.push((k, v));
        }
        Metadata(Some(Arc::from(pairs)))
    } else {
        Metadata(None)
    };
    let start = record.len() - r.buf.len();
    let mut payload = Bytes::from(record);
    let payload = payload.split_off(start);
    // Read back from disk: not part of the memory budget until it is (the persistent queue bounds its reads).
    Ok(Batch {
        signal,
        payload: payload.into(),
        items,
        metadata,
        held: crate::budget::Held::none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_metadata() {
        let mut b = Batch::new(Signal::Logs, Bytes::from_static(b"\x0a\x03abc"), 7);
        let enc = encode(&b);
        assert_eq!(enc.len(), encoded_len(&b));
        let d = decode(enc).unwrap();
        assert_eq!(
            (d.signal, d.items, &d.payload.to_vec()[..]),
            (Signal::Logs, 7, &b"\x0a\x03abc"[..])
        );
        assert_eq!(d.metadata, Metadata(None));

        b.metadata = Metadata(Some(Arc::from(vec![("x-a".to_string(), "1".to_string())])));
        let enc = encode(&b);
        assert_eq!(enc.len(), encoded_len(&b));
        assert_eq!(decode(enc).unwrap().metadata, b.metadata);
    }

    #[test]
    fn rejects_damaged_records_without_panicking() {
        let b = Batch::new(Signal::Traces, Bytes::from_static(b"p"), 1);
        let enc = encode(&b);
        for cut in 0..11 {
            assert!(decode(enc[..cut].to_vec()).is_err(), "cut at {cut}");
        }
        let mut bad = enc.clone();
        bad[0] = 9;
        assert!(decode(bad).is_err());
        let mut huge = enc;
        huge[6] = 1;
        huge[7..11].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(huge).is_err());
    }
}
