//! Error and position types shared by every part of the configuration layer.

use std::fmt;
use std::sync::Arc;

/// Where a value came from, so every configuration error can point at the text the user wrote.
///
/// Displays as `file:line:column`. Values from `--set` use the file name `--set` (line 1), built-in defaults
/// use `<default>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// Source name: a file path, `--set` or `<default>`.
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

impl Location {
    /// A location in `file` at 1-based `line`/`column`.
    pub fn new(file: impl Into<Arc<str>>, line: usize, column: usize) -> Self {
        Location {
            file: file.into(),
            line,
            column,
        }
    }

    /// The location given to values that are built-in defaults rather than written by the user.
    pub fn default_value() -> Self {
        Location::new("<default>", 1, 1)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A configuration problem, naming the file/line/column and the dotted key path it concerns.
///
/// Displays as `file:line:column: key: message` (or `file:line:column: message` when `key` is empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {}{message}", key_prefix(.key))]
pub struct ConfigError {
    /// Where the offending value (or key) was written.
    pub location: Location,
    /// Dotted key path, e.g. `exporters.otlp/b.timeout`; empty when the error is not about one key.
    pub key: String,
    /// Human-readable description of the problem.
    pub message: String,
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

impl ConfigError {
    /// Builds an error at `location` about `key`.
    pub fn new(location: Location, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            location,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Joins a dotted key path prefix and a key: `join_path("a.b", "c") == "a.b.c"`, `join_path("", "c") == "c"`.
pub(crate) fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_key() {
        let loc = Location::new("c.yaml", 3, 5);
        assert_eq!(
            ConfigError::new(loc.clone(), "a.b", "bad").to_string(),
            "c.yaml:3:5: a.b: bad"
        );
        assert_eq!(
            ConfigError::new(loc, "", "bad").to_string(),
            "c.yaml:3:5: bad"
        );
        assert_eq!(Location::default_value().to_string(), "<default>:1:1");
    }

    #[test]
    fn join() {
        assert_eq!(join_path("", "x"), "x");
        assert_eq!(join_path("a", "x"), "x".replace('x', "a.x"));
    }
}
