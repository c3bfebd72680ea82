//! Masking inside string values: blocked regexes (user `blocked_values` and named presets) replaced by `****`
//! or a hash, except where a match is itself an `allowed_values` match.
//!
//! With `json_aware`, a value that parses as JSON is masked leaf by leaf: each string token is decoded (so
//! `\u0040` cannot hide an `@`), masked, and re-encoded, while everything else is copied byte for byte. Masking
//! the raw text instead could cut an escape sequence in half and leave invalid JSON; this way it cannot.

mod hash;
mod json;
#[cfg(test)]
mod tests;

use regex::{Regex, RegexSet};

pub use hash::Hasher;

use crate::config::{HashFunction, Preset};

/// How deep JSON nested inside JSON strings is followed.
const MAX_JSON_NESTING: u8 = 4;

/// One blocked pattern.
struct Rule {
    re: Regex,
    accept: Option<fn(&str) -> bool>,
}

/// A regex that failed to compile: which list, which entry, why.
#[derive(Debug, thiserror::Error)]
#[error("entry {index} ({pattern:?}): {message}")]
pub struct BadPattern {
    pub list: &'static str,
    pub index: usize,
    pub pattern: String,
    pub message: String,
}

/// Compiles `patterns` of config list `list`.
pub fn compile(list: &'static str, patterns: &[String]) -> Result<Vec<Regex>, BadPattern> {
    patterns
        .iter()
        .enumerate()
        .map(|(index, p)| {
            Regex::new(p).map_err(|e| BadPattern {
                list,
                index,
                pattern: p.clone(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Compiled masking rules.
pub struct Masker {
    rules: Vec<Rule>,
    /// All rules at once: one pass says whether any may match.
    any: RegexSet,
    /// A rule is anchored (`^`/`$`): it could match a decoded JSON leaf without matching the raw text.
    anchored: bool,
    allowed: Vec<Regex>,
    hasher: Hasher,
    json_aware: bool,
}

impl Masker {
    /// `blocked` (user regexes) then `presets`, in that order; `allowed` exempts matches.
    pub fn new(
        blocked: &[String],
        presets: &[&Preset],
        allowed: &[String],
        hash: HashFunction,
        hmac_key: &str,
        json_aware: bool,
    ) -> Result<Self, BadPattern> {
        let mut rules: Vec<Rule> = compile("blocked_values", blocked)?
            .into_iter()
            .map(|re| Rule { re, accept: None })
            .collect();
        for p in presets {
            let re = Regex::new(p.pattern).map_err(|e| BadPattern {
                list: "blocked_value_presets",
                index: 0,
                pattern: p.name.into(),
                message: e.to_string(),
            })?;
            rules.push(Rule {
                re,
                accept: p.accept,
            });
        }
        let any = RegexSet::new(rules.iter().map(|r| r.re.as_str())).map_err(|e| BadPattern {
            list: "blocked_values",
            index: 0,
            pattern: String::new(),
            message: e.to_string(),
        })?;
        let anchored = rules
            .iter()
            .any(|r| r.re.as_str().contains('^') || r.re.as_str().contains('$'));
        Ok(Masker {
            rules,
            any,
            anchored,
            allowed: compile("allowed_values", allowed)?,
            hasher: Hasher::new(hash, hmac_key),
            json_aware,
        })
    }

    /// No blocked patterns: masking never changes anything.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when `s` matches an `allowed_values` regex.
    pub fn allowed(&self, s: &str) -> bool {
        self.allowed.iter().any(|re| re.is_match(s))
    }

    /// The replacement of a whole value (keys matching `blocked_key_patterns`).
    pub fn mask_whole(&self, s: &str) -> String {
        self.hasher.replace(s)
    }

    /// `s` with every blocked match masked, or `None` when nothing changed.
    pub fn mask_text(&self, s: &str) -> Option<String> {
        self.mask_at(s, 0)
    }

    fn mask_at(&self, s: &str, depth: u8) -> Option<String> {
        if self.rules.is_empty() {
            return None;
        }
        // Without escapes every decoded JSON leaf is a substring of `s`, so no unanchored match in `s` means none
        // in any leaf either.
        if !self.anchored && !s.contains('\\') && !self.any.is_match(s) {
            return None;
        }
        if self.json_aware && crate::json::looks_like_json(s) {
            if depth < MAX_JSON_NESTING
                && let Ok(result) = json::mask_json(self, s, depth)
            {
                return result;
            }
            // JSON we do not follow (nested deeper than we parse, or text that only looks like JSON): its escapes
            // could hide what the raw text does not show (`\u0040` for `@`). Fail closed: if the text with its
            // escapes decoded could match, or a rule is anchored, the whole string is masked.
            if s.contains('\\')
                && (self.anchored || unescape(s).is_none_or(|u| self.any.is_match(&u)))
            {
                return Some(self.hasher.replace(s));
            }
        }
        self.mask_plain(s)
    }

    /// Masks the raw text (not JSON, or JSON handling off).
    #[inline]
    fn mask_plain(&self, s: &str) -> Option<String> {
        let hits = self.any.matches(s);
        if !hits.matched_any() {
            return None;
        }
        let mut current = std::borrow::Cow::Borrowed(s);
        let mut changed = false;
        for (i, rule) in self.rules.iter().enumerate() {
            if !hits.matched(i) && !changed {
                continue;
            }
            let next = rule.re.replace_all(&current, |caps: &regex::Captures<'_>| {
                let m = caps.get(0).map_or("", |m| m.as_str());
                if rule.accept.is_some_and(|ok| !ok(m)) || self.allowed(m) {
                    m.to_string()
                } else {
                    changed = true;
                    self.hasher.replace(m)
                }
            });
            if let std::borrow::Cow::Owned(o) = next {
                current = std::borrow::Cow::Owned(o);
            }
        }
        changed.then(|| current.into_owned())
    }
}

/// Every JSON escape of `s` decoded where it stands (`\u0040` → `@`, `\n` → newline; a lone surrogate becomes
/// U+FFFD), without parsing the structure: what a reader of any JSON string inside `s`, at any depth, could see.
/// Applied repeatedly, so escapes of escapes (`\\u0040` inside a JSON string in a JSON string) are decoded too.
/// `None` when the text still changes after [`MAX_UNESCAPE_ROUNDS`] rounds: escapes chained that deep (each
/// round costs a pass over the text) are treated as hiding a match, so the caller fails closed in linear time.
fn unescape(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    let mut cur = std::borrow::Cow::Borrowed(s);
    for _ in 0..MAX_UNESCAPE_ROUNDS {
        if !cur.contains('\\') {
            return Some(cur);
        }
        let next = unescape_once(&cur);
        if next == *cur {
            return Some(cur);
        }
        cur = std::borrow::Cow::Owned(next);
    }
    None
}

/// Levels of JSON-in-JSON string escaping decoded before giving up (real payloads nest two or three).
const MAX_UNESCAPE_ROUNDS: usize = 8;

fn unescape_once(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok() {
                    Some(n) => out.push(char::from_u32(n).unwrap_or('\u{fffd}')),
                    None => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
