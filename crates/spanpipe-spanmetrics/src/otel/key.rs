//! Series keys of the `spanmetrics` connector: the dimension values in configured order (the default dimensions
//! that are kept, then the configured ones), absent ones as `None`. A span's key is built borrowed from the
//! request ([`KeyRef`]) and hashed once; recording into a series it has seen allocates nothing, and only a new
//! series copies its values ([`SeriesKey`]). Both hash the same byte stream, so one map serves both.

use std::hash::{Hash, Hasher};

use hashbrown::Equivalent;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use spanpipe_core::wire::AnyValueRef;

/// A dimension value, owned (doubles by their bits, so it hashes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Val {
    Str(Box<str>),
    Int(i64),
    Bool(bool),
    Double(u64),
}

impl Val {
    /// Strings, ints, bools and doubles; other values make no dimension (as the Collector does).
    pub fn from_any(v: &AnyValue) -> Option<Val> {
        ValRef::from_any(v).map(ValRef::to_owned)
    }

    pub fn as_ref(&self) -> ValRef<'_> {
        match self {
            Val::Str(s) => ValRef::Str(s),
            Val::Int(i) => ValRef::Int(*i),
            Val::Bool(b) => ValRef::Bool(*b),
            Val::Double(d) => ValRef::Double(*d),
        }
    }

    pub fn to_any(&self) -> AnyValue {
        let v = match self {
            Val::Str(s) => any_value::Value::StringValue(s.to_string()),
            Val::Int(i) => any_value::Value::IntValue(*i),
            Val::Bool(b) => any_value::Value::BoolValue(*b),
            Val::Double(d) => any_value::Value::DoubleValue(f64::from_bits(*d)),
        };
        AnyValue { value: Some(v) }
    }
}

/// A dimension value borrowed from the request, the resource or the settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValRef<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Double(u64),
}

impl<'a> ValRef<'a> {
    pub fn from_wire(v: AnyValueRef<'a>) -> Option<ValRef<'a>> {
        Some(match v {
            AnyValueRef::Str(s) => ValRef::Str(s),
            AnyValueRef::Int(i) => ValRef::Int(i),
            AnyValueRef::Bool(b) => ValRef::Bool(b),
            AnyValueRef::Double(d) => ValRef::Double(d.to_bits()),
            _ => return None,
        })
    }

    pub fn from_any(v: &'a AnyValue) -> Option<ValRef<'a>> {
        Some(match v.value.as_ref()? {
            any_value::Value::StringValue(s) => ValRef::Str(s),
            any_value::Value::IntValue(i) => ValRef::Int(*i),
            any_value::Value::BoolValue(b) => ValRef::Bool(*b),
            any_value::Value::DoubleValue(d) => ValRef::Double(d.to_bits()),
            _ => return None,
        })
    }

    pub fn to_owned(self) -> Val {
        match self {
            ValRef::Str(s) => Val::Str(s.into()),
            ValRef::Int(i) => Val::Int(i),
            ValRef::Bool(b) => Val::Bool(b),
            ValRef::Double(d) => Val::Double(d),
        }
    }
}

/// The one hash stream of a key, owned or borrowed. A tag byte per value keeps `Str("1")` apart from `Int(1)`
/// and an absent value apart from an empty string; 0xff (never in UTF-8) ends a string.
fn hash_values<'a, H: Hasher>(h: &mut H, values: impl Iterator<Item = Option<ValRef<'a>>>) {
    for v in values {
        match v {
            None => h.write_u8(0),
            Some(ValRef::Str(s)) => {
                h.write_u8(1);
                h.write(s.as_bytes());
                h.write_u8(0xff);
            }
            Some(ValRef::Int(i)) => {
                h.write_u8(2);
                h.write_i64(i);
            }
            Some(ValRef::Bool(b)) => h.write_u8(3 + u8::from(b)),
            Some(ValRef::Double(d)) => {
                h.write_u8(5);
                h.write_u64(d);
            }
        }
    }
}

/// A series' key as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesKey(pub Box<[Option<Val>]>);

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_values(h, self.0.iter().map(|v| v.as_ref().map(Val::as_ref)));
    }
}

/// A span's key, borrowed, for lookups.
#[derive(Clone, Copy, Debug)]
pub struct KeyRef<'k, 'a>(pub &'k [Option<ValRef<'a>>]);

impl Hash for KeyRef<'_, '_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_values(h, self.0.iter().copied());
    }
}

impl Equivalent<SeriesKey> for KeyRef<'_, '_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        self.0.len() == key.0.len()
            && self
                .0
                .iter()
                .zip(key.0.iter())
                .all(|(a, b)| *a == b.as_ref().map(Val::as_ref))
    }
}

impl KeyRef<'_, '_> {
    pub fn to_owned(self) -> SeriesKey {
        SeriesKey(self.0.iter().map(|v| v.map(ValRef::to_owned)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn borrowed_and_owned_keys_hash_and_compare_alike() {
        let state = foldhash::fast::RandomState::default();
        let vals = [
            Some(ValRef::Str("svc")),
            None,
            Some(ValRef::Int(1)),
            Some(ValRef::Bool(true)),
            Some(ValRef::Double(2.5f64.to_bits())),
        ];
        let k = KeyRef(&vals);
        let owned = k.to_owned();
        assert_eq!(state.hash_one(k), state.hash_one(&owned));
        assert!(k.equivalent(&owned));
        let other = [Some(ValRef::Str("1"))];
        let int = SeriesKey(vec![Some(Val::Int(1))].into());
        assert!(!KeyRef(&other).equivalent(&int));
        assert_ne!(state.hash_one(KeyRef(&other)), state.hash_one(&int));
        let empty = [Some(ValRef::Str(""))];
        let absent = SeriesKey(vec![None].into());
        assert!(!KeyRef(&empty).equivalent(&absent));
    }
}
