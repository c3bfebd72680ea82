//! The serde [`Deserializer`](serde::Deserializer) over [`Node`]: typed configuration structs are read straight
//! from the positioned tree, and every error is tagged with the innermost location and dotted key path.

use std::fmt;

use serde::de::{self, Expected, Visitor};

use crate::error::{ConfigError, Location, join_path};
use crate::node::{Node, Value};
use crate::scalar::{IntError, Resolved, parse_bool, parse_float, parse_int, resolve};

#[path = "de_access.rs"]
mod access;
use access::{EnumAccessor, MapAccessor, SeqAccessor};

/// serde error carrying the location and key path of the innermost node that failed.
#[derive(Debug)]
pub(crate) struct DeError {
    location: Option<Location>,
    path: String,
    message: String,
}

impl DeError {
    fn msg(message: impl Into<String>) -> Self {
        DeError {
            location: None,
            path: String::new(),
            message: message.into(),
        }
    }

    /// Tags the error with `location`/`path` unless an inner node already did (innermost wins).
    pub(crate) fn at(mut self, location: &Location, path: &str) -> Self {
        if self.location.is_none() {
            self.location = Some(location.clone());
            self.path = path.to_owned();
        }
        self
    }

    /// Converts to the public error, using the fallback position if no node claimed the error.
    pub(crate) fn into_config_error(self, fallback: &Location, fallback_path: &str) -> ConfigError {
        match self.location {
            Some(location) => ConfigError::new(location, self.path, self.message),
            None => ConfigError::new(fallback.clone(), fallback_path, self.message),
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::msg(msg.to_string())
    }
}

/// How a node is described in "expected X, found Y" messages.
fn describe(node: &Node) -> String {
    match &node.value {
        Value::Null => "nothing (null)".to_owned(),
        Value::Scalar { text, .. } => format!("{text:?}"),
        Value::Seq(_) => "a sequence".to_owned(),
        Value::Map(_) => "a mapping".to_owned(),
    }
}

fn expected(what: &str, node: &Node) -> DeError {
    DeError::msg(format!("expected {what}, found {}", describe(node)))
}

fn type_error(exp: &dyn Expected, node: &Node) -> DeError {
    expected(&exp.to_string(), node)
}

/// Deserializes one node; `path` is its dotted key path for error messages.
pub(crate) struct NodeDeserializer<'de> {
    node: &'de Node,
    path: String,
    /// Mapping keys always read as strings in `deserialize_any` (so `123:` stays the key "123").
    is_key: bool,
}

impl<'de> NodeDeserializer<'de> {
    pub(crate) fn new(node: &'de Node, path: String) -> Self {
        NodeDeserializer {
            node,
            path,
            is_key: false,
        }
    }

    fn text(&self) -> Option<&'de str> {
        self.node.as_str()
    }

    fn finish<T>(&self, result: Result<T, DeError>) -> Result<T, DeError> {
        result.map_err(|e| e.at(&self.node.location, &self.path))
    }

    fn integer(&self, what: &str) -> Result<i128, DeError> {
        let text = self.text().ok_or_else(|| expected(what, self.node))?;
        parse_int(text).map_err(|e| match e {
            IntError::NotInt => expected(what, self.node),
            IntError::Overflow => DeError::msg(format!("integer {text} is out of range")),
        })
    }

    fn unsigned<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = self
            .integer("an unsigned integer")
            .and_then(|i| match u64::try_from(i) {
                Ok(u) => visitor.visit_u64(u),
                Err(_) => match i64::try_from(i) {
                    Ok(negative) => visitor.visit_i64(negative),
                    Err(_) => Err(DeError::msg(format!("integer {i} is out of range"))),
                },
            });
        self.finish(result)
    }

    fn signed<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = self
            .integer("an integer")
            .and_then(|i| match i64::try_from(i) {
                Ok(s) => visitor.visit_i64(s),
                Err(_) => match u64::try_from(i) {
                    Ok(u) => visitor.visit_u64(u),
                    Err(_) => Err(DeError::msg(format!("integer {i} is out of range"))),
                },
            });
        self.finish(result)
    }

    fn float<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let parsed = self
            .text()
            .and_then(|t| parse_float(t).or_else(|| parse_int(t).ok().map(|i| i as f64)));
        let result = match parsed {
            Some(f) => visitor.visit_f64(f),
            None => Err(expected("a number", self.node)),
        };
        self.finish(result)
    }

    fn child(&self, node: &'de Node, path: String) -> NodeDeserializer<'de> {
        NodeDeserializer::new(node, path)
    }
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Scalar { text, quoted } if *quoted || self.is_key => {
                visitor.visit_borrowed_str(text)
            }
            Value::Scalar { text, .. } => match resolve(text) {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => match (u64::try_from(i), i64::try_from(i)) {
                    (Ok(u), _) => visitor.visit_u64(u),
                    (_, Ok(s)) => visitor.visit_i64(s),
                    _ => visitor.visit_i128(i),
                },
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str => visitor.visit_borrowed_str(text),
            },
            Value::Seq(items) => visitor.visit_seq(SeqAccessor {
                iter: items.iter().enumerate(),
                prefix: &self.path,
            }),
            Value::Map(entries) => visitor.visit_map(MapAccessor::new(entries, &self.path)),
        };
        self.finish(result)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.text().and_then(parse_bool) {
            Some(b) => visitor.visit_bool(b),
            None => Err(expected("a boolean (true or false)", self.node)),
        };
        self.finish(result)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.unsigned(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.unsigned(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.unsigned(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.unsigned(visitor)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = self
            .integer("an unsigned integer")
            .and_then(|i| match u128::try_from(i) {
                Ok(u) => visitor.visit_u128(u),
                Err(_) => visitor.visit_i128(i),
            });
        self.finish(result)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.signed(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.signed(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.signed(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.signed(visitor)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = self
            .integer("an integer")
            .and_then(|i| visitor.visit_i128(i));
        self.finish(result)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.float(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.float(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let mut chars = self.text().unwrap_or_default().chars();
        let result = match (self.text(), chars.next(), chars.next()) {
            (Some(_), Some(c), None) => visitor.visit_char(c),
            _ => Err(expected("a single character", self.node)),
        };
        self.finish(result)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.text() {
            Some(text) => visitor.visit_borrowed_str(text),
            None => Err(expected("a string", self.node)),
        };
        self.finish(result)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DeError> {
        self.finish(Err(DeError::msg(
            "raw byte strings are not supported in the configuration",
        )))
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self.child(self.node, self.path.clone()))
        };
        self.finish(result)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = if self.node.is_null() {
            visitor.visit_unit()
        } else {
            Err(type_error(&visitor, self.node))
        };
        self.finish(result)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == crate::secret::SECRET_NEWTYPE {
            crate::secret::note_secret(&self.node.location);
        }
        let result = visitor.visit_newtype_struct(self.child(self.node, self.path.clone()));
        self.finish(result)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Seq(items) => visitor.visit_seq(SeqAccessor {
                iter: items.iter().enumerate(),
                prefix: &self.path,
            }),
            _ if self.node.is_null() => {
                let empty: &'de [Node] = &[];
                visitor.visit_seq(SeqAccessor {
                    iter: empty.iter().enumerate(),
                    prefix: &self.path,
                })
            }
            _ => Err(type_error(&visitor, self.node)),
        };
        self.finish(result)
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Map(entries) => visitor.visit_map(MapAccessor::new(entries, &self.path)),
            _ if self.node.is_null() => visitor.visit_map(MapAccessor::new(&[], &self.path)),
            _ => Err(type_error(&visitor, self.node)),
        };
        self.finish(result)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let access = match &self.node.value {
            Value::Scalar { .. } => Some(EnumAccessor {
                variant: self.node,
                content: None,
                path: self.path.clone(),
            }),
            Value::Map(entries) if entries.len() == 1 => {
                entries.first().map(|(k, v)| EnumAccessor {
                    variant: k,
                    content: Some(v),
                    path: join_path(&self.path, k.as_str().unwrap_or_default()),
                })
            }
            _ => None,
        };
        let result = match access {
            Some(access) => visitor.visit_enum(access),
            None => Err(expected(
                "a variant name or a mapping with exactly one key",
                self.node,
            )),
        };
        self.finish(result)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

#[cfg(test)]
#[path = "de_tests.rs"]
mod tests;
