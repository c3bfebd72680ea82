//! Truncation of named attributes beyond `max_bytes`, with a marker where the value was cut.
//!
//! MLflow parses `mlflow.spanInputs` / `mlflow.spanOutputs` as JSON, so a JSON value is cut structurally (see
//! [`json`]): the result is valid JSON of at most `max_bytes`, keys and order kept, with the marker at the end of
//! the last kept string (or as an extra element where the cut fell between elements). Other strings are cut at a
//! character boundary and the marker appended.

mod json;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use crate::config::TruncateConfig;

/// Compiled `truncate` settings.
pub struct Truncator {
    keys: HashSet<String>,
    max: usize,
    marker: String,
}

impl Truncator {
    /// `None` when truncation is off (`max_bytes: 0` or no keys).
    pub fn new(cfg: &TruncateConfig) -> Option<Self> {
        let max = usize::try_from(cfg.max_bytes.0).unwrap_or(usize::MAX);
        if max == 0 || cfg.keys.is_empty() {
            return None;
        }
        Some(Truncator {
            keys: cfg.keys.iter().cloned().collect(),
            max,
            marker: cfg.marker.clone(),
        })
    }

    /// Whether `key` is capped.
    pub fn applies(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// `s` cut to at most `max_bytes`, or `None` when it fits.
    pub fn truncate(&self, s: &str) -> Option<String> {
        if s.len() <= self.max {
            return None;
        }
        if crate::json::looks_like_json(s)
            && let Ok(node) = crate::json::parse(s)
        {
            return Some(json::truncate(&node, self.max, &self.marker));
        }
        Some(cut_plain(s, self.max, &self.marker))
    }
}

/// The longest prefix of `s` of at most `n` bytes that ends on a character boundary.
pub fn prefix(s: &str, n: usize) -> &str {
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` cut so that it plus `marker` fits in `max` bytes.
fn cut_plain(s: &str, max: usize, marker: &str) -> String {
    let keep = prefix(s, max.saturating_sub(marker.len()));
    let mut out = String::with_capacity(keep.len() + marker.len());
    out.push_str(keep);
    out.push_str(marker);
    out
}
