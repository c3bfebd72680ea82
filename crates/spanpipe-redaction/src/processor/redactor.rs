//! The attribute rules, applied to an encoded `ExportTraceServiceRequest`.
//!
//! Order per attribute, as in the OTel processor: ignored keys pass untouched; keys not allowed are deleted;
//! keys matching `blocked_key_patterns` have their whole value masked (unless it matches `allowed_values`);
//! other values are masked where blocked regexes match. Then spanpipe truncates named attributes. Resource,
//! scope, span and span-event attributes are covered (resource and scope with `apply_to_resource`).

use std::borrow::Cow;
use std::collections::HashSet;

use regex::RegexSet;
use spanpipe_core::wire::fields::{any_value as av, key_value as kvf};
use spanpipe_core::wire::{
    AnyValueRef, Edit, Field, MAX_DEPTH, WireError, bytes_field, key_value, put_bytes_field,
    rewrite_fields,
};

use super::summary::{self, AttrSummary};
use crate::config::{PRESETS, RedactionConfig, Summary};
use crate::mask::{BadPattern, Masker, compile};
use crate::truncate::Truncator;

/// What one request's redaction did (counts only: values are never recorded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Attribute values changed by masking.
    pub masked: u64,
    /// Attribute values cut to `truncate.max_bytes`.
    pub truncated: u64,
    /// Attributes deleted because their key is not allowed.
    pub deleted: u64,
}

/// Compiled rules of one `redaction` processor.
pub struct Redactor {
    allow_all: bool,
    allowed: HashSet<String>,
    ignored: HashSet<String>,
    ignored_patterns: Option<RegexSet>,
    blocked_keys: Option<RegexSet>,
    masker: Masker,
    redact_all_types: bool,
    summary: Summary,
    apply_to_resource: bool,
    truncator: Option<Truncator>,
}

fn regex_set(list: &'static str, patterns: &[String]) -> Result<Option<RegexSet>, BadPattern> {
    compile(list, patterns)?;
    if patterns.is_empty() {
        return Ok(None);
    }
    RegexSet::new(patterns).map(Some).map_err(|e| BadPattern {
        list,
        index: 0,
        pattern: String::new(),
        message: e.to_string(),
    })
}

/// The value as OTel's `AsString` would give it for masking (`""` for types left alone).
fn text<'a>(v: &AnyValueRef<'a>, all_types: bool) -> Cow<'a, str> {
    match v {
        AnyValueRef::Str(s) => Cow::Borrowed(s),
        AnyValueRef::Bool(v) if all_types => Cow::Owned(v.to_string()),
        AnyValueRef::Int(v) if all_types => Cow::Owned(v.to_string()),
        AnyValueRef::Double(v) if all_types => Cow::Owned(v.to_string()),
        _ => Cow::Borrowed(""),
    }
}

/// A length-delimited payload (other wire types are never ours to edit).
fn payload(f: Field<'_>) -> Option<&[u8]> {
    match f {
        Field::Bytes(b) => Some(b),
        _ => None,
    }
}

/// An encoded `AnyValue` holding one string.
fn string_any(s: &str) -> Vec<u8> {
    bytes_field(av::STRING, s.as_bytes())
}

/// A changed attribute value.
enum NewValue {
    Str(String),
    /// An encoded `AnyValue`.
    Any(Vec<u8>),
}

fn encode_kv(number: u32, key: &[u8], value: &NewValue) -> Edit {
    let any = match value {
        NewValue::Str(s) => string_any(s),
        NewValue::Any(a) => a.clone(),
    };
    let mut kv = Vec::with_capacity(key.len() + any.len() + 8);
    put_bytes_field(&mut kv, 1, key);
    put_bytes_field(&mut kv, 2, &any);
    Edit::field(number, &kv)
}

impl Redactor {
    /// Compiles a validated configuration; a regex that does not compile is reported with its list and entry.
    pub fn new(cfg: &RedactionConfig) -> Result<Self, BadPattern> {
        let presets: Vec<_> = PRESETS
            .iter()
            .filter(|p| cfg.blocked_value_presets.iter().any(|n| n == p.name))
            .collect();
        Ok(Redactor {
            allow_all: cfg.allow_all_keys,
            allowed: cfg.allowed_keys.iter().cloned().collect(),
            ignored: cfg.ignored_keys.iter().cloned().collect(),
            ignored_patterns: regex_set("ignored_key_patterns", &cfg.ignored_key_patterns)?,
            blocked_keys: regex_set("blocked_key_patterns", &cfg.blocked_key_patterns)?,
            masker: Masker::new(
                &cfg.blocked_values,
                &presets,
                &cfg.allowed_values,
                cfg.hash_function,
                cfg.hmac_key.expose(),
                cfg.json_aware,
            )?,
            redact_all_types: cfg.redact_all_types,
            summary: cfg.summary,
            apply_to_resource: cfg.apply_to_resource,
            truncator: Truncator::new(&cfg.truncate),
        })
    }

    /// The request with the rules applied, or `None` when nothing changed (the caller keeps the original bytes).
    pub fn redact_request(
        &self,
        buf: &[u8],
        stats: &mut Stats,
    ) -> Result<Option<Vec<u8>>, WireError> {
        if self.is_noop() {
            return Ok(None);
        }
        rewrite_fields(buf, |n, f| match (n, payload(f)) {
            (1, Some(rs)) => Ok(Edit::keep_or(self.resource_spans(rs, stats)?, 1)),
            _ => Ok(Edit::Keep),
        })
    }

    fn resource_spans(&self, rs: &[u8], stats: &mut Stats) -> Result<Option<Vec<u8>>, WireError> {
        rewrite_fields(rs, |n, f| match (n, payload(f)) {
            (1, Some(res)) if self.apply_to_resource => {
                Ok(Edit::keep_or(self.attributes(res, 1, false, stats)?, 1))
            }
            (2, Some(ss)) => Ok(Edit::keep_or(self.scope_spans(ss, stats)?, 2)),
            _ => Ok(Edit::Keep),
        })
    }

    fn scope_spans(&self, ss: &[u8], stats: &mut Stats) -> Result<Option<Vec<u8>>, WireError> {
        rewrite_fields(ss, |n, f| match (n, payload(f)) {
            (1, Some(scope)) if self.apply_to_resource => {
                Ok(Edit::keep_or(self.attributes(scope, 3, false, stats)?, 1))
            }
            (2, Some(span)) => Ok(Edit::keep_or(self.attributes(span, 9, true, stats)?, 2)),
            _ => Ok(Edit::Keep),
        })
    }

    /// Applies the rules to the attributes (field `number`) of one message, and to its events' (field 11,
    /// attributes 3) when `events`.
    fn attributes(
        &self,
        msg: &[u8],
        number: u32,
        events: bool,
        stats: &mut Stats,
    ) -> Result<Option<Vec<u8>>, WireError> {
        let mut sum = AttrSummary::default();
        let out = rewrite_fields(msg, |n, f| match payload(f) {
            Some(kv) if n == number => self.attribute(kv, number, &mut sum, stats),
            Some(ev) if events && n == 11 => {
                Ok(Edit::keep_or(self.attributes(ev, 3, false, stats)?, 11))
            }
            _ => Ok(Edit::Keep),
        })?;
        if self.summary == Summary::Silent || sum.is_empty() {
            return Ok(out);
        }
        let base = out.unwrap_or_else(|| msg.to_vec());
        summary::append(base, number, &sum, self.summary).map(Some)
    }

    /// No rule can change anything (`allow_all_keys` and nothing else): batches pass without a scan.
    fn is_noop(&self) -> bool {
        self.allow_all
            && self.blocked_keys.is_none()
            && self.masker.is_empty()
            && self.truncator.is_none()
            && (self.summary == Summary::Silent
                || (self.ignored.is_empty() && self.ignored_patterns.is_none()))
    }

    fn is_ignored(&self, key: &str) -> bool {
        self.ignored.contains(key)
            || self
                .ignored_patterns
                .as_ref()
                .is_some_and(|s| s.is_match(key))
    }

    fn attribute<'a>(
        &self,
        kv: &'a [u8],
        number: u32,
        sum: &mut AttrSummary<'a>,
        stats: &mut Stats,
    ) -> Result<Edit, WireError> {
        let (key_raw, value_raw) = key_value(kv)?;
        // A key that is not UTF-8 matches no list: deleted in allow-list mode, never ignored.
        let key = std::str::from_utf8(key_raw).unwrap_or("");
        if !key.is_empty() && self.is_ignored(key) {
            sum.ignored += 1;
            return Ok(Edit::Keep);
        }
        let ours = summary::is_summary_key(key);
        if !self.allow_all && !ours && !self.allowed.contains(key) {
            sum.redacted.push(key);
            stats.deleted += 1;
            return Ok(Edit::Drop);
        }
        let truncates = self.truncator.as_ref().is_some_and(|t| t.applies(key));
        if ours || (self.masker.is_empty() && self.blocked_keys.is_none() && !truncates) {
            return Ok(Edit::Keep);
        }
        let value = match value_raw.parse() {
            Ok(v) => v,
            Err(_) => {
                // Fail closed: a value we cannot read is masked whole, never passed on as it came.
                sum.masked.push(key);
                stats.masked += 1;
                let whole = self
                    .masker
                    .mask_whole(&String::from_utf8_lossy(value_raw.bytes()));
                return Ok(encode_kv(number, key_raw, &NewValue::Str(whole)));
            }
        };
        let mut new = None;
        if self.blocked_keys.as_ref().is_some_and(|s| s.is_match(key)) {
            let text = text(&value, self.redact_all_types);
            if self.masker.allowed(&text) {
                sum.allowed.push(key);
            } else {
                new = Some(NewValue::Str(self.masker.mask_whole(&text)));
            }
        } else {
            new = self.mask_value(&value, value_raw.bytes());
        }
        if new.is_some() {
            sum.masked.push(key);
            stats.masked += 1;
        }
        if let Some(t) = self.truncator.as_ref().filter(|t| t.applies(key)) {
            let cut = match (&new, &value) {
                (Some(NewValue::Str(s)), _) => t.truncate(s),
                (None, AnyValueRef::Str(s)) => t.truncate(s),
                _ => None,
            };
            if let Some(cut) = cut {
                new = Some(NewValue::Str(cut));
                sum.truncated.push(key);
                stats.truncated += 1;
            }
        }
        Ok(match new {
            None => Edit::Keep,
            Some(v) => encode_kv(number, key_raw, &v),
        })
    }

    /// The masked value, or `None` when masking changes nothing. `raw` is the encoded value.
    fn mask_value(&self, value: &AnyValueRef<'_>, raw: &[u8]) -> Option<NewValue> {
        if self.masker.is_empty() {
            return None;
        }
        match value {
            AnyValueRef::Str(s) => self.masker.mask_text(s).map(NewValue::Str),
            AnyValueRef::Bool(_) | AnyValueRef::Int(_) | AnyValueRef::Double(_)
                if self.redact_all_types =>
            {
                self.masker.mask_text(&text(value, true)).map(NewValue::Str)
            }
            AnyValueRef::Array(_) | AnyValueRef::Kvlist(_) => {
                match self.mask_nested(value, MAX_DEPTH) {
                    Ok(changed) => changed.map(NewValue::Any),
                    // Unreadable or deeper than anything the receiver lets in: masked whole (fail closed).
                    Err(_) => Some(NewValue::Str(
                        self.masker.mask_whole(&String::from_utf8_lossy(raw)),
                    )),
                }
            }
            _ => None,
        }
    }

    /// Masks the string leaves of an `AnyValue` in place on the wire: `Ok(None)` when nothing changed, `Err`
    /// when the value cannot be read (malformed, not UTF-8, or more than `budget` levels deep). Each level spends
    /// one of `budget`, so the recursion is bounded whatever the input.
    fn mask_nested(
        &self,
        v: &AnyValueRef<'_>,
        budget: usize,
    ) -> Result<Option<Vec<u8>>, WireError> {
        if budget == 0 {
            return Err(WireError::new("value nested too deep to inspect"));
        }
        let nested = |item: &[u8]| self.mask_nested(&AnyValueRef::parse(item)?, budget - 1);
        Ok(match *v {
            AnyValueRef::Str(s) => self.masker.mask_text(s).map(|m| string_any(&m)),
            AnyValueRef::Bool(_) | AnyValueRef::Int(_) | AnyValueRef::Double(_)
                if self.redact_all_types =>
            {
                self.masker
                    .mask_text(&text(v, true))
                    .map(|m| string_any(&m))
            }
            AnyValueRef::Array(list) => rewrite_fields(list, |n, f| match (n, f) {
                (1, Field::Bytes(item)) => Ok(Edit::keep_or(nested(item)?, 1)),
                _ => Ok(Edit::Keep),
            })?
            .map(|l| bytes_field(av::ARRAY, &l)),
            AnyValueRef::Kvlist(list) => rewrite_fields(list, |n, f| match (n, f) {
                (1, Field::Bytes(kv)) => {
                    let (k, _) = key_value(kv)?;
                    spanpipe_core::wire::utf8(k)?;
                    let new_kv = rewrite_fields(kv, |n, f| match (n, f) {
                        (kvf::VALUE, Field::Bytes(val)) => {
                            Ok(Edit::keep_or(nested(val)?, kvf::VALUE))
                        }
                        _ => Ok(Edit::Keep),
                    })?;
                    Ok(Edit::keep_or(new_kv, 1))
                }
                _ => Ok(Edit::Keep),
            })?
            .map(|l| bytes_field(av::KVLIST, &l)),
            _ => None,
        })
    }
}
