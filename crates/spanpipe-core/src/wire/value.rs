//! Attribute values borrowed from encoded OTLP: the one `AnyValue` / `KeyValue` decoder of spanpipe.
//!
//! Keys and values stay slices of the request; a value is decoded only when asked ([`RawValue::parse`]), and
//! nested arrays and maps stay encoded until a caller walks them with [`for_each_item`] / [`for_each_entry`].
//! Nothing here recurses: walking a nested value is the caller's loop, bounded by its own depth budget (at most
//! [`MAX_DEPTH`], the deepest value the receiver lets through).

use super::fields::{any_value as av, key_value as kvf};
use super::{Field, Reader, WireError};

/// The deepest `AnyValue` nesting any receiver accepts (`max_attribute_depth` is capped here). A scalar attribute
/// has depth 1, an array of scalars depth 2. Chosen so a full prost decode of anything the receiver let through
/// never hits prost's recursion limit (100 nested messages below the request): an array level is two message
/// levels (`AnyValue` → `ArrayValue`), a key-value-list level three (`AnyValue` → `KeyValueList` → `KeyValue`),
/// and the deepest attributes (span events and links) start six levels into a request. A kvlist-only value
/// `MAX_DEPTH` deep in an event attribute ends at message level 6 + 3 × 31 = 99 (its innermost list, if empty, at
/// 100); at 33 it would be 102 and the whole batch would fail to decode in every exporter that decodes.
pub const MAX_DEPTH: usize = 32;

/// A borrowed view of one `AnyValue`; arrays and maps stay encoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AnyValueRef<'a> {
    /// No value set (OTLP "empty").
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    /// Encoded `ArrayValue`.
    Array(&'a [u8]),
    /// Encoded `KeyValueList`.
    Kvlist(&'a [u8]),
}

impl<'a> AnyValueRef<'a> {
    /// Reads an encoded `AnyValue` (the last oneof field wins, as in protobuf). A string that is not UTF-8 is an
    /// error: after the receiver's check it cannot occur, and no caller may guess.
    #[inline]
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        match short_string(buf) {
            Some(string) => Ok(AnyValueRef::Str(utf8(string)?)),
            None => Self::parse_fields(buf),
        }
    }

    /// [`AnyValueRef::parse`] field by field: any shape.
    fn parse_fields(buf: &'a [u8]) -> Result<Self, WireError> {
        let mut v = AnyValueRef::Empty;
        let mut r = Reader::new(buf);
        while let Some((n, f)) = r.next_field()? {
            v = match (n, f) {
                (av::STRING, Field::Bytes(b)) => AnyValueRef::Str(utf8(b)?),
                (av::BOOL, Field::Varint(x)) => AnyValueRef::Bool(x != 0),
                (av::INT, Field::Varint(x)) => AnyValueRef::Int(x as i64),
                (av::DOUBLE, Field::Fixed64(x)) => AnyValueRef::Double(f64::from_bits(x)),
                (av::ARRAY, Field::Bytes(b)) => AnyValueRef::Array(b),
                (av::KVLIST, Field::Bytes(b)) => AnyValueRef::Kvlist(b),
                (av::BYTES, Field::Bytes(b)) => AnyValueRef::Bytes(b),
                // A dictionary index (profiles): no value spanpipe can read.
                (av::STRING_INDEX, Field::Varint(_)) => AnyValueRef::Empty,
                (av::STRING..=av::STRING_INDEX, _) => {
                    return Err(WireError::new("AnyValue: wrong wire type"));
                }
                _ => v,
            };
        }
        Ok(v)
    }

    /// The string, when the value is one.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            AnyValueRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the value is an array or a map.
    pub fn is_nested(&self) -> bool {
        matches!(self, AnyValueRef::Array(_) | AnyValueRef::Kvlist(_))
    }
}

/// An attribute's encoded `AnyValue`, decoded only when asked: most attributes are not looked at beyond their key.
/// Empty bytes are an attribute without a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawValue<'a>(&'a [u8]);

impl<'a> RawValue<'a> {
    /// Wraps encoded `AnyValue` bytes.
    pub fn new(encoded: &'a [u8]) -> Self {
        RawValue(encoded)
    }

    /// The encoded bytes.
    pub fn bytes(self) -> &'a [u8] {
        self.0
    }

    /// The decoded view.
    #[inline]
    pub fn parse(self) -> Result<AnyValueRef<'a>, WireError> {
        AnyValueRef::parse(self.0)
    }

    /// The decoded view, with a malformed value read as [`AnyValueRef::Empty`]: for readers that only look (metrics
    /// labels, routing), never for components that decide what to keep or mask.
    #[inline]
    pub fn get(self) -> AnyValueRef<'a> {
        self.parse().unwrap_or(AnyValueRef::Empty)
    }
}

/// The usual shape of an attribute, `KeyValue { key, value }` with one-byte key and value lengths and no other
/// field: its key and its encoded `AnyValue` (content unread). Read without the general field loop, because every
/// span carries about ten of these (strings, token counts) and every reader of attributes meets them; `None` for
/// any other shape, which the general path reads to the same result.
#[inline(always)]
pub(crate) fn short_kv(kv: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&[0x0a, klen @ 0..0x80], rest) = kv.split_first_chunk::<2>()? else {
        return None;
    };
    let (key, rest) = rest.split_at_checked(usize::from(klen))?;
    let (&[0x12, vlen @ 0..0x80], value) = rest.split_first_chunk::<2>()? else {
        return None;
    };
    (value.len() == usize::from(vlen)).then_some((key, value))
}

/// The string of an encoded `AnyValue` that is exactly one `string_value` field with a one-byte length.
#[inline(always)]
fn short_string(value: &[u8]) -> Option<&[u8]> {
    let (&[0x0a, slen @ 0..0x80], string) = value.split_first_chunk::<2>()? else {
        return None;
    };
    (string.len() == usize::from(slen)).then_some(string)
}

/// The key bytes and value of an encoded `KeyValue` (the last occurrence of each field wins).
#[inline]
pub fn key_value(kv: &[u8]) -> Result<(&[u8], RawValue<'_>), WireError> {
    match short_kv(kv) {
        Some((key, value)) => Ok((key, RawValue(value))),
        None => key_value_fields(kv),
    }
}

/// [`key_value`] field by field: any shape.
fn key_value_fields(kv: &[u8]) -> Result<(&[u8], RawValue<'_>), WireError> {
    let (mut key, mut value) = (&[][..], &[][..]);
    let mut r = Reader::new(kv);
    while let Some((n, f)) = r.next_field()? {
        match (n, f) {
            (kvf::KEY, Field::Bytes(k)) => key = k,
            (kvf::VALUE, Field::Bytes(v)) => value = v,
            (kvf::KEY | kvf::VALUE, _) => return Err(WireError::new("KeyValue: wrong wire type")),
            _ => {}
        }
    }
    Ok((key, RawValue(value)))
}

/// Calls `visit(key, value)` for every attribute in the `KeyValue` fields numbered `number` of `msg` (a span:
/// `fields::span::ATTRIBUTES`, a resource: `fields::resource::ATTRIBUTES`, ...), in wire order.
#[inline]
pub fn for_each_attr<'a>(
    msg: &'a [u8],
    number: u32,
    mut visit: impl FnMut(&'a [u8], RawValue<'a>),
) -> Result<(), WireError> {
    let mut r = Reader::new(msg);
    while let Some((n, f)) = r.next_field()? {
        if n == number {
            let (k, v) = key_value(f.bytes("attributes")?)?;
            visit(k, v);
        }
    }
    Ok(())
}

/// The value of the first attribute named `key` in field `number` of `msg`; keys are compared as bytes, so
/// attributes that do not match cost no value parse. The first occurrence wins, as in the OTel SDKs.
pub fn find_attr<'a>(
    msg: &'a [u8],
    number: u32,
    key: &str,
) -> Result<Option<RawValue<'a>>, WireError> {
    let mut r = Reader::new(msg);
    while let Some((n, f)) = r.next_field()? {
        if n == number {
            let (k, v) = key_value(f.bytes("attributes")?)?;
            if k == key.as_bytes() {
                return Ok(Some(v));
            }
        }
    }
    Ok(None)
}

/// Every element of an encoded `ArrayValue`, in order.
pub fn for_each_item<'a>(
    array: &'a [u8],
    mut visit: impl FnMut(RawValue<'a>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut r = Reader::new(array);
    while let Some((n, f)) = r.next_field()? {
        if n == super::fields::LIST_VALUES {
            visit(RawValue(f.bytes("array_value.values")?))?;
        }
    }
    Ok(())
}

/// Every entry of an encoded `KeyValueList`, in order.
pub fn for_each_entry<'a>(
    kvlist: &'a [u8],
    mut visit: impl FnMut(&'a [u8], RawValue<'a>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut r = Reader::new(kvlist);
    while let Some((n, f)) = r.next_field()? {
        if n == super::fields::LIST_VALUES {
            let (k, v) = key_value(f.bytes("kvlist_value.values")?)?;
            visit(k, v)?;
        }
    }
    Ok(())
}

/// UTF-8 or an error naming the field.
#[inline]
pub fn utf8(b: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(b).map_err(|_| WireError::new("string is not valid UTF-8"))
}

/// Checks UTF-8 without making a `&str`: the door's hot path. Almost every OTLP string is ASCII, which
/// `is_ascii` confirms several bytes at a time and inline; anything else gets the full validation.
#[inline(always)]
pub(crate) fn check_utf8(b: &[u8]) -> Result<(), WireError> {
    if b.is_ascii() || std::str::from_utf8(b).is_ok() {
        Ok(())
    } else {
        Err(not_utf8())
    }
}

#[cold]
fn not_utf8() -> WireError {
    WireError::new("string is not valid UTF-8")
}

/// Checks an encoded `AnyValue` all the way down, every field of every message as a prost decode would: well-formed,
/// wire types, every string and key UTF-8 (each occurrence, not only the last one a reader keeps), nested at most
/// `limit` levels (a scalar or empty value is 1). Walked with an explicit stack of readers (at most three per level:
/// value, list, map entry), so neither the call stack nor the heap grows with the input beyond that; a scalar value
/// allocates nothing.
pub fn check_value(value: RawValue<'_>, limit: usize) -> Result<(), WireError> {
    if limit == 0 {
        return Err(too_deep(limit));
    }
    check_value_at(value.0, 1, limit)
}

/// [`check_value`] for a whole encoded `KeyValue` (an attribute): every key occurrence UTF-8, every value occurrence
/// passes [`check_value`], `key_strindex` a varint.
///
/// The usual attribute (a short string) is checked inline; every other shape goes out of line, so the common case
/// does not pay for saving the registers the general walk needs (measured: ~17% of this function's samples were
/// its prologue and epilogue).
#[inline(always)]
pub(crate) fn check_key_value(kv: &[u8], limit: usize) -> Result<(), WireError> {
    if limit > 0
        && let Some((key, value)) = short_kv(kv)
        && let Some(string) = short_string(value)
    {
        check_utf8(key)?;
        return check_utf8(string);
    }
    check_key_value_other(kv, limit)
}

/// [`check_key_value`] for every shape but the usual one.
#[inline(never)]
fn check_key_value_other(kv: &[u8], limit: usize) -> Result<(), WireError> {
    if limit == 0 {
        return Err(too_deep(limit));
    }
    if let Some((key, value)) = short_kv(kv) {
        check_utf8(key)?;
        return check_value_at(value, 1, limit);
    }
    check_key_value_fields(kv, limit)
}

/// [`check_key_value`] field by field: any shape.
fn check_key_value_fields(kv: &[u8], limit: usize) -> Result<(), WireError> {
    let mut r = Reader::new(kv);
    while let Some((n, f)) = r.next_field()? {
        match (n, f) {
            (kvf::KEY, Field::Bytes(k)) => {
                check_utf8(k)?;
            }
            (kvf::VALUE, Field::Bytes(v)) => check_value_at(v, 1, limit)?,
            (kvf::KEY_INDEX, Field::Varint(_)) => {}
            (kvf::KEY | kvf::VALUE | kvf::KEY_INDEX, _) => return Err(wrong_type("KeyValue")),
            _ => {}
        }
    }
    Ok(())
}

/// One `AnyValue` at `depth`: scalars (almost every attribute) are checked in one pass over their fields without
/// allocating; a value holding a non-empty list is handed to [`walk`].
#[inline]
fn check_value_at(v: &[u8], depth: usize, limit: usize) -> Result<(), WireError> {
    let mut r = Reader::new(v);
    while let Some((n, f)) = r.next_field()? {
        match (n, f) {
            (av::STRING, Field::Bytes(b)) => {
                check_utf8(b)?;
            }
            (av::ARRAY | av::KVLIST, Field::Bytes(b)) if !b.is_empty() => {
                return walk(Frame::new(v, Msg::Value, depth), limit);
            }
            // An empty list is as deep as a scalar.
            (av::ARRAY | av::KVLIST | av::BYTES, Field::Bytes(_))
            | (av::BOOL | av::INT | av::STRING_INDEX, Field::Varint(_))
            | (av::DOUBLE, Field::Fixed64(_)) => {}
            (av::STRING..=av::STRING_INDEX, _) => return Err(wrong_type("AnyValue")),
            _ => {}
        }
    }
    Ok(())
}

/// Which message a [`Frame`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Msg {
    Value,
    Array,
    Map,
    Entry,
}

/// One open message of [`walk`] and the depth of the `AnyValue`s it holds.
struct Frame<'a> {
    r: Reader<'a>,
    msg: Msg,
    depth: usize,
}

impl<'a> Frame<'a> {
    fn new(buf: &'a [u8], msg: Msg, depth: usize) -> Self {
        Frame {
            r: Reader::new(buf),
            msg,
            depth,
        }
    }
}

#[cold]
fn too_deep(limit: usize) -> WireError {
    WireError::new(format!("attribute value nested deeper than {limit} levels"))
}

#[cold]
fn wrong_type(what: &str) -> WireError {
    WireError::new(format!("{what}: wrong wire type"))
}

/// The iterative walk behind [`check_value`] / [`check_key_value`]: the frame being read is kept out of the stack,
/// which holds only its open ancestors.
fn walk<'a>(mut cur: Frame<'a>, limit: usize) -> Result<(), WireError> {
    let mut stack: Vec<Frame<'a>> = Vec::new();
    loop {
        let Some((n, f)) = cur.r.next_field()? else {
            match stack.pop() {
                Some(parent) => {
                    cur = parent;
                    continue;
                }
                None => return Ok(()),
            }
        };
        let child = match cur.msg {
            Msg::Value => match (n, f) {
                (av::STRING, Field::Bytes(b)) => {
                    check_utf8(b)?;
                    None
                }
                (av::ARRAY | av::KVLIST, Field::Bytes(b)) => {
                    if b.is_empty() {
                        // An empty list is as deep as a scalar.
                        None
                    } else if cur.depth >= limit {
                        return Err(too_deep(limit));
                    } else {
                        let msg = if n == av::ARRAY { Msg::Array } else { Msg::Map };
                        Some(Frame::new(b, msg, cur.depth + 1))
                    }
                }
                (av::BOOL | av::INT | av::STRING_INDEX, Field::Varint(_))
                | (av::DOUBLE, Field::Fixed64(_))
                | (av::BYTES, Field::Bytes(_)) => None,
                (av::STRING..=av::STRING_INDEX, _) => return Err(wrong_type("AnyValue")),
                _ => None,
            },
            Msg::Array | Msg::Map => match (n, f) {
                (super::fields::LIST_VALUES, Field::Bytes(b)) => {
                    let msg = if cur.msg == Msg::Array {
                        Msg::Value
                    } else {
                        Msg::Entry
                    };
                    Some(Frame::new(b, msg, cur.depth))
                }
                (super::fields::LIST_VALUES, _) => return Err(wrong_type("list values")),
                _ => None,
            },
            Msg::Entry => match (n, f) {
                (kvf::KEY, Field::Bytes(k)) => {
                    check_utf8(k)?;
                    None
                }
                (kvf::VALUE, Field::Bytes(v)) => Some(Frame::new(v, Msg::Value, cur.depth)),
                (kvf::KEY_INDEX, Field::Varint(_)) => None,
                (kvf::KEY | kvf::VALUE | kvf::KEY_INDEX, _) => return Err(wrong_type("KeyValue")),
                _ => None,
            },
        };
        if let Some(child) = child {
            stack.push(std::mem::replace(&mut cur, child));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
