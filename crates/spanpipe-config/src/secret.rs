//! Credentials in the configuration, secret by type (the OTel Collector's `configopaque.String`).
//!
//! Deciding by key name what to hide misses whatever a vendor calls its key (`space_key`, `DD-API-KEY` as a header
//! value, `user:password@` in a URL). A field typed [`Secret`] is hidden wherever it goes: `Debug` and `Display`
//! print `[REDACTED]`, and `print-config` redacts every node that some component deserialized as a `Secret`
//! (recorded by [`collect_secret_locations`]), whatever its key.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::Location;

/// The text shown in place of a secret.
pub const REDACTED: &str = "[REDACTED]";

/// The newtype name [`Secret`] deserializes through, so the config deserializer can record where secrets are.
pub(crate) const SECRET_NEWTYPE: &str = "spanpipe_config::Secret";

/// A credential from the configuration: a token, a password, a key, a header value. Its text is reachable only
/// through [`Secret::expose`], so it cannot reach a log line or an error message by accident.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The credential itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the credential is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Serialized as `[REDACTED]`: whatever serializes a config never writes the credential.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Secret, D::Error> {
                String::deserialize(d).map(Secret)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
        }
        d.deserialize_newtype_struct(SECRET_NEWTYPE, SecretVisitor)
    }
}

thread_local! {
    static COLLECTOR: RefCell<Option<HashSet<Location>>> = const { RefCell::new(None) };
}

/// Called by the config deserializer for every node read as a [`Secret`].
pub(crate) fn note_secret(location: &Location) {
    COLLECTOR.with(|c| {
        if let Some(set) = c.borrow_mut().as_mut() {
            set.insert(location.clone());
        }
    });
}

/// Runs `f` (typically: build every component from the config) and returns where it deserialized a
/// [`Secret`], for `print-config` to redact exactly those values.
pub fn collect_secret_locations<T>(f: impl FnOnce() -> T) -> (T, HashSet<Location>) {
    let outer = COLLECTOR.with(|c| c.borrow_mut().replace(HashSet::new()));
    let out = f();
    let found = COLLECTOR.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    (out, found.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_display_and_serialize_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[REDACTED] [REDACTED]");
        assert_eq!(s.expose(), "hunter2");
        let wrapped = Some(vec![s.clone()]);
        assert!(!format!("{wrapped:?}").contains("hunter2"));
    }
}
