//! Attribute values borrowed from encoded OTLP: the one `AnyValue` / `KeyValue` decoder of spanpipe.
//!
//! Keys and values stay slices of the request; a value is decoded only when asked ([`RawValue::parse`]), and
//! nested arrays and maps stay encoded until a caller walks them with [`for_each_item`] / [`for_each_entry`].
//! Nothing here recurses: walking a nested value is the caller's loop, bounded by its own depth budget (at most
//! [`MAX_DEPTH`], the deepest value the receiver lets through).

use super::fields::{any_value as av, key_value as kvf};
use super::{Field, Reader, WireError};

/// The deepest `AnyValue` nesting any receiver accepts (`max_attribute_depth` is capped here). A scalar attribute
/// has depth 1, an array of scalars depth 2. Kept well below prost's recursion limit of 100 (one `AnyValue` level
/// is two message levels, and a span attribute sits five levels into a request), so a full decode of anything the
/// receiver let through never fails on depth.
pub const MAX_DEPTH: usize = 40;

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
                (av::STRING..=av::BYTES, _) => {
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

/// The key bytes and value of an encoded `KeyValue` (the last occurrence of each field wins).
#[inline]
pub fn key_value(kv: &[u8]) -> Result<(&[u8], RawValue<'_>), WireError> {
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

/// Checks an encoded `AnyValue` all the way down: well-formed, every string and key UTF-8, nested at most `limit`
/// levels (a scalar or empty value is 1). Walked with an explicit stack of one reader per level, so neither the
/// call stack nor the heap grows with the input beyond `limit` entries.
pub fn check_value<'a>(value: RawValue<'a>, limit: usize) -> Result<(), WireError> {
    let too_deep = || WireError::new(format!("attribute value nested deeper than {limit} levels"));
    if limit == 0 {
        return Err(too_deep());
    }
    // One reader per open list and whether it is a key-value list; elements of the top one are at depth len + 1.
    let mut stack: Vec<(Reader<'a>, bool)> = Vec::new();
    let open = |v: AnyValueRef<'a>, stack: &mut Vec<(Reader<'a>, bool)>| -> Result<(), WireError> {
        let (buf, is_map) = match v {
            AnyValueRef::Array(b) => (b, false),
            AnyValueRef::Kvlist(b) => (b, true),
            _ => return Ok(()),
        };
        if stack.len() + 1 >= limit {
            // The list's elements would be deeper than the limit; an empty list is as deep as a scalar.
            if !buf.is_empty() {
                return Err(too_deep());
            }
            return Ok(());
        }
        stack.push((Reader::new(buf), is_map));
        Ok(())
    };
    let root = value.parse()?;
    open(root, &mut stack)?;
    while let Some((r, is_map)) = stack.last_mut() {
        let is_map = *is_map;
        let Some((n, f)) = r.next_field()? else {
            stack.pop();
            continue;
        };
        if n != super::fields::LIST_VALUES {
            continue;
        }
        let b = f.bytes("list values")?;
        let v = if is_map {
            let (k, v) = key_value(b)?;
            utf8(k)?;
            v.parse()?
        } else {
            AnyValueRef::parse(b)?
        };
        open(v, &mut stack)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
