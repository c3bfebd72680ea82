//! An editable attribute list over encoded `KeyValue`s: untouched entries stay borrowed bytes and are written
//! back verbatim; only entries an action sets are owned values, encoded once when the list is written.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::AnyValue;
use prost::Message;
use spanpipe_core::wire::{Reader, WireError, key_value, put_bytes_field, put_varint, utf8};

use crate::value::{ValueRef, value_of};

/// One attribute.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    pub key: Cow<'a, str>,
    value: Val<'a>,
}

#[derive(Clone, Debug)]
enum Val<'a> {
    /// Unchanged: the whole encoded `KeyValue` and its encoded value, if any.
    Raw {
        kv: &'a [u8],
        value: Option<&'a [u8]>,
    },
    /// The value is encoded from the key and this, if present.
    Owned(AnyValue),
}

impl<'a> Entry<'a> {
    /// A view of the value.
    pub fn value(&self) -> ValueRef<'_> {
        match &self.value {
            Val::Raw { value: None, .. } => ValueRef::Empty,
            // Malformed value bytes read as empty; they are copied back unchanged unless an action sets them.
            Val::Raw { value: Some(v), .. } => ValueRef::parse(v).unwrap_or(ValueRef::Empty),
            Val::Owned(v) => value_of(v),
        }
    }

    /// An owned copy of the value (for `from_attribute`, which copies a value under another key).
    pub fn owned_value(&self) -> AnyValue {
        match &self.value {
            Val::Raw { value: None, .. } => AnyValue { value: None },
            Val::Raw { value: Some(v), .. } => {
                AnyValue::decode(*v).unwrap_or(AnyValue { value: None })
            }
            Val::Owned(v) => v.clone(),
        }
    }
}

/// The attributes of one span or resource, in wire order, plus whether anything changed.
#[derive(Clone, Debug, Default)]
pub struct AttrList<'a> {
    pub entries: Vec<Entry<'a>>,
    changed: bool,
}

impl<'a> AttrList<'a> {
    /// Reads the `KeyValue`s in field `number` of an encoded message (keys checked, values read on demand).
    pub fn parse(msg: &'a [u8], number: u32) -> Result<Self, WireError> {
        let mut entries = Vec::with_capacity(16);
        let mut r = Reader::new(msg);
        while let Some((n, f)) = r.next_field()? {
            if n != number {
                continue;
            }
            let kv = f.bytes("attributes")?;
            // Values are read lazily (most are only copied back); a malformed one reads as empty.
            let (key, value) = key_value(kv)?;
            let value = (!value.bytes().is_empty()).then_some(value.bytes());
            entries.push(Entry {
                key: Cow::Borrowed(utf8(key)?),
                value: Val::Raw { kv, value },
            });
        }
        Ok(AttrList {
            entries,
            changed: false,
        })
    }

    /// Whether any edit happened since `parse`.
    pub fn changed(&self) -> bool {
        self.changed
    }

    pub fn get(&self, key: &str) -> Option<&Entry<'a>> {
        self.entries.iter().find(|e| e.key == key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` (the first entry with it, else a new entry at the end).
    pub fn put(&mut self, key: &str, value: AnyValue) {
        self.changed = true;
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(e) => e.value = Val::Owned(value),
            None => self.entries.push(Entry {
                key: Cow::Owned(key.to_string()),
                value: Val::Owned(value),
            }),
        }
    }

    /// Removes every entry named `key`.
    pub fn remove(&mut self, key: &str) {
        let before = self.entries.len();
        self.entries.retain(|e| e.key != key);
        self.changed |= self.entries.len() != before;
    }

    /// Removes every entry whose key matches.
    pub fn remove_matching(&mut self, mut matches: impl FnMut(&str) -> bool) {
        let before = self.entries.len();
        self.entries.retain(|e| !matches(&e.key));
        self.changed |= self.entries.len() != before;
    }

    /// Appends the list as field `number` entries.
    pub fn encode(&self, number: u32, out: &mut Vec<u8>) {
        let mut scratch = Vec::new();
        for e in &self.entries {
            match &e.value {
                Val::Raw { kv, .. } => put_bytes_field(out, number, kv),
                Val::Owned(v) => {
                    scratch.clear();
                    put_bytes_field(&mut scratch, 1, e.key.as_bytes());
                    put_varint(&mut scratch, (2 << 3) | 2);
                    put_varint(&mut scratch, v.encoded_len() as u64);
                    // Writing into a Vec cannot run out of space.
                    let _ = v.encode(&mut scratch);
                    put_bytes_field(out, number, &scratch);
                }
            }
        }
    }
}

/// Re-emits `msg` with its field-`number` attributes replaced by `attrs`: every other field is copied verbatim
/// in its original order, the attributes go where the first of them was (or at the end).
pub fn replace_attributes(
    msg: &[u8],
    number: u32,
    attrs: &AttrList<'_>,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let mut r = Reader::new(msg);
    let mut written = false;
    loop {
        let start = r.position();
        let Some((n, _)) = r.next_field()? else {
            break;
        };
        if n == number {
            if !written {
                attrs.encode(number, out);
                written = true;
            }
        } else {
            out.extend_from_slice(&msg[start..r.position()]);
        }
    }
    if !written {
        attrs.encode(number, out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{attr, i, kv, s, span};
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::Span;

    #[test]
    fn untouched_list_reencodes_to_the_same_span() {
        let sp = span(1, 1, "n", 1, vec![kv("a", s("x")), kv("b", i(2))]);
        let bytes = sp.encode_to_vec();
        let list = AttrList::parse(&bytes, 9).unwrap();
        assert!(!list.changed());
        let mut out = Vec::new();
        replace_attributes(&bytes, 9, &list, &mut out).unwrap();
        assert_eq!(Span::decode(out.as_slice()).unwrap(), sp);
    }

    #[test]
    fn put_remove_and_encode() {
        let sp = span(1, 1, "n", 1, vec![kv("a", s("x")), kv("b", i(2))]);
        let bytes = sp.encode_to_vec();
        let mut list = AttrList::parse(&bytes, 9).unwrap();
        assert_eq!(list.get("b").unwrap().value(), ValueRef::Int(2));
        list.put("a", s("y"));
        list.put("c", i(3));
        list.remove("b");
        list.remove("missing");
        assert!(list.changed());
        let mut out = Vec::new();
        replace_attributes(&bytes, 9, &list, &mut out).unwrap();
        let got = Span::decode(out.as_slice()).unwrap();
        assert_eq!(got.name, "n");
        assert_eq!(got.attributes.len(), 2);
        assert_eq!(
            attr(&got.attributes, "a"),
            Some(&Value::StringValue("y".into()))
        );
        assert_eq!(attr(&got.attributes, "c"), Some(&Value::IntValue(3)));
        assert_eq!(list.get("a").unwrap().owned_value(), s("y"));
    }

    #[test]
    fn removing_the_only_attribute_and_adding_to_a_span_without_any() {
        let sp = span(1, 1, "n", 1, vec![kv("a", s("x"))]);
        let bytes = sp.encode_to_vec();
        let mut list = AttrList::parse(&bytes, 9).unwrap();
        list.remove_matching(|k| k.starts_with('a'));
        let mut out = Vec::new();
        replace_attributes(&bytes, 9, &list, &mut out).unwrap();
        assert!(Span::decode(out.as_slice()).unwrap().attributes.is_empty());

        let bare = span(1, 1, "n", 1, vec![]).encode_to_vec();
        let mut list = AttrList::parse(&bare, 9).unwrap();
        list.put("k", s("v"));
        let mut out = Vec::new();
        replace_attributes(&bare, 9, &list, &mut out).unwrap();
        let got = Span::decode(out.as_slice()).unwrap();
        assert_eq!(
            attr(&got.attributes, "k"),
            Some(&Value::StringValue("v".into()))
        );
    }

    #[test]
    fn malformed_attributes_are_an_error() {
        let mut bad = Vec::new();
        put_bytes_field(&mut bad, 9, b"\x0a\x05ab");
        assert!(AttrList::parse(&bad, 9).is_err(), "truncated key");
        let mut bad_value = Vec::new();
        put_bytes_field(&mut bad_value, 9, b"\x0a\x01k\x12\x02\x0a\xff");
        let list = AttrList::parse(&bad_value, 9).unwrap();
        assert_eq!(
            list.get("k").unwrap().value(),
            ValueRef::Empty,
            "bad value reads as empty"
        );
    }
}
