//! Attribute actions (the OTel Collector's `attraction` package): insert, update, upsert, delete, hash, extract
//! and convert, applied in order to one attribute list. Shared by the `attributes` processor (span attributes)
//! and the `resource` processor (resource attributes).

mod config;
#[cfg(test)]
mod tests;

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use regex::Regex;
use spanpipe_core::Metadata;

pub use config::{ActionConfig, compile_actions};

use crate::attrs::AttrList;
use crate::value::{ValueExt, ValueRef, hex};

/// Where insert/update/upsert take their value from.
#[derive(Clone, Debug)]
pub enum Source {
    Value(AnyValue),
    /// Another attribute of the same list (no action when it is absent).
    Attribute(String),
    /// A request header kept by the receiver (`include_metadata`), lower-case; all values joined with `;`.
    Context(String),
}

/// `converted_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Int,
    Double,
    String,
}

/// A validated action.
#[derive(Clone, Debug)]
pub enum Action {
    Insert {
        key: String,
        source: Source,
    },
    Update {
        key: String,
        source: Source,
    },
    Upsert {
        key: String,
        source: Source,
    },
    Delete {
        key: Option<String>,
        pattern: Option<Regex>,
    },
    Hash {
        key: Option<String>,
        pattern: Option<Regex>,
    },
    Extract {
        key: String,
        regex: Regex,
        names: Vec<String>,
    },
    Convert {
        key: String,
        to: Target,
    },
}

fn source_value(source: &Source, list: &AttrList<'_>, metadata: &Metadata) -> Option<AnyValue> {
    match source {
        Source::Value(v) => Some(v.clone()),
        Source::Attribute(k) => list.get(k).map(|e| e.owned_value()),
        Source::Context(header) => {
            let values: Vec<&str> = metadata
                .0
                .as_deref()?
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(header))
                .map(|(_, v)| v.as_str())
                .collect();
            (!values.is_empty()).then(|| str_value(values.join(";")))
        }
    }
}

fn str_value(s: String) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s)),
    }
}

/// The hash action's result: SHA-256 hex of the value's bytes (strings as UTF-8, booleans as one byte, ints and
/// doubles as 8 little-endian bytes), "" for anything else, exactly as the OTel Collector's `sha2Hasher`.
pub fn hash_value(v: &ValueRef<'_>) -> String {
    let bytes: Vec<u8> = match v {
        ValueRef::Str(s) => s.as_bytes().to_vec(),
        ValueRef::Bool(b) => vec![u8::from(*b)],
        ValueRef::Int(i) => i.to_le_bytes().to_vec(),
        ValueRef::Double(d) => d.to_bits().to_le_bytes().to_vec(),
        _ => Vec::new(),
    };
    if bytes.is_empty() {
        return String::new();
    }
    hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref())
}

/// `convert`: `None` when the value stays as it is (already that type, or not convertible).
fn convert(v: &ValueRef<'_>, to: Target) -> Option<AnyValue> {
    use any_value::Value as V;
    let new = match (to, v) {
        (Target::String, ValueRef::Str(_)) => return None,
        (Target::String, other) => V::StringValue(other.as_string()),
        (Target::Int, ValueRef::Double(d)) => V::IntValue(*d as i64),
        (Target::Int, ValueRef::Bool(b)) => V::IntValue(i64::from(*b)),
        (Target::Int, ValueRef::Str(s)) => V::IntValue(s.parse().ok()?),
        (Target::Double, ValueRef::Int(i)) => V::DoubleValue(*i as f64),
        (Target::Double, ValueRef::Bool(b)) => V::DoubleValue(if *b { 1.0 } else { 0.0 }),
        (Target::Double, ValueRef::Str(s)) => V::DoubleValue(s.trim().parse().ok()?),
        _ => return None,
    };
    Some(AnyValue { value: Some(new) })
}

fn hash_key(list: &mut AttrList<'_>, key: &str) {
    if let Some(h) = list.get(key).map(|e| hash_value(&e.value())) {
        list.put(key, str_value(h));
    }
}

/// Keys of the list matching `pattern`.
fn matching_keys(list: &AttrList<'_>, pattern: &Regex) -> Vec<String> {
    list.entries
        .iter()
        .filter(|e| pattern.is_match(&e.key))
        .map(|e| e.key.to_string())
        .collect()
}

/// Applies `actions` in order to `list`; `metadata` serves `from_context`.
pub fn apply(actions: &[Action], list: &mut AttrList<'_>, metadata: &Metadata) {
    for action in actions {
        match action {
            Action::Insert { key, source } => {
                if list.contains(key) {
                    continue;
                }
                if let Some(v) = source_value(source, list, metadata) {
                    list.put(key, v);
                }
            }
            Action::Update { key, source } => {
                if !list.contains(key) {
                    continue;
                }
                if let Some(v) = source_value(source, list, metadata) {
                    list.put(key, v);
                }
            }
            Action::Upsert { key, source } => {
                if let Some(v) = source_value(source, list, metadata) {
                    list.put(key, v);
                }
            }
            Action::Delete { key, pattern } => {
                if let Some(k) = key {
                    list.remove(k);
                }
                if let Some(p) = pattern {
                    list.remove_matching(|k| p.is_match(k));
                }
            }
            Action::Hash { key, pattern } => {
                if let Some(k) = key {
                    hash_key(list, k);
                }
                if let Some(p) = pattern {
                    for k in matching_keys(list, p) {
                        hash_key(list, &k);
                    }
                }
            }
            Action::Extract { key, regex, names } => {
                let found: Option<Vec<(String, String)>> = list.get(key).and_then(|e| {
                    let ValueRef::Str(s) = e.value() else {
                        return None;
                    };
                    let caps = regex.captures(s)?;
                    Some(
                        names
                            .iter()
                            .map(|n| {
                                let v = caps.name(n).map_or("", |m| m.as_str());
                                (n.clone(), v.to_string())
                            })
                            .collect(),
                    )
                });
                for (k, v) in found.into_iter().flatten() {
                    list.put(&k, str_value(v));
                }
            }
            Action::Convert { key, to } => {
                if let Some(v) = list.get(key).and_then(|e| convert(&e.value(), *to)) {
                    list.put(key, v);
                }
            }
        }
    }
}
