//! Editing encoded protobuf messages field by field: unchanged fields are copied as bytes, and nothing is
//! copied at all until the first change, so a message nobody touches costs one scan and no allocation.

use spanpipe_core::wire::{Field, Reader, WireError, put_bytes_field};

/// What to do with one field.
pub enum Edit {
    Keep,
    Drop,
    /// The complete replacement field (tag, length, payload).
    Replace(Vec<u8>),
}

/// A replacement length-delimited field `number` holding `payload`.
pub fn field(number: u32, payload: &[u8]) -> Edit {
    let mut out = Vec::with_capacity(payload.len() + 6);
    put_bytes_field(&mut out, number, payload);
    Edit::Replace(out)
}

/// Applies `edit` to every field of `buf`; `None` when every field was kept.
pub fn rewrite<'a>(
    buf: &'a [u8],
    mut edit: impl FnMut(u32, Field<'a>) -> Result<Edit, WireError>,
) -> Result<Option<Vec<u8>>, WireError> {
    let mut r = Reader::new(buf);
    let mut out: Option<Vec<u8>> = None;
    loop {
        let start = r.position();
        let Some((number, f)) = r.next_field()? else {
            return Ok(out);
        };
        let end = r.position();
        let raw = buf.get(start..end).unwrap_or_default();
        match edit(number, f)? {
            Edit::Keep => {
                if let Some(o) = out.as_mut() {
                    o.extend_from_slice(raw);
                }
            }
            Edit::Drop => {
                out.get_or_insert_with(|| prefix(buf, start));
            }
            Edit::Replace(bytes) => {
                out.get_or_insert_with(|| prefix(buf, start))
                    .extend_from_slice(&bytes);
            }
        }
    }
}

fn prefix(buf: &[u8], upto: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(buf.len() + 64);
    v.extend_from_slice(buf.get(..upto).unwrap_or_default());
    v
}

/// A length-delimited payload, or `None` for a field of another wire type (skipped, never an error here: the
/// receiver validated the structure that matters).
pub fn payload(f: Field<'_>) -> Option<&[u8]> {
    match f {
        Field::Bytes(b) => Some(b),
        _ => None,
    }
}
