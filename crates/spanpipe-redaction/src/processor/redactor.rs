//! The attribute rules, applied to an encoded `ExportTraceServiceRequest`.
//!
//! Order per attribute, as in the OTel processor: ignored keys pass untouched; keys not allowed are deleted;
//! keys matching `blocked_key_patterns` have their whole value masked (unless it matches `allowed_values`);
//! other values are masked where blocked regexes match. Then spanpipe truncates named attributes. Resource,
//! scope, span and span-event attributes are covered (resource and scope with `apply_to_resource`).

use std::borrow::Cow;
use std::collections::HashSet;

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;
use regex::RegexSet;
use spanpipe_core::wire::{Reader, WireError, put_bytes_field};

use super::rewrite::{Edit, field, payload, rewrite};
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

/// A decoded `AnyValue`, borrowed where it can be.
enum Value<'a> {
    Str(&'a [u8]),
    Bool(bool),
    Int(i64),
    Double(f64),
    /// Array or key-value list: the whole encoded `AnyValue`.
    Complex(&'a [u8]),
    Other,
}

impl Value<'_> {
    /// The value as OTel's `AsString` would give it for masking (`""` for types left alone).
    fn text(&self, all_types: bool) -> Cow<'_, str> {
        match self {
            Value::Str(b) => String::from_utf8_lossy(b),
            Value::Bool(v) if all_types => Cow::Owned(v.to_string()),
            Value::Int(v) if all_types => Cow::Owned(v.to_string()),
            Value::Double(v) if all_types => Cow::Owned(v.to_string()),
            _ => Cow::Borrowed(""),
        }
    }
}

fn parse_value(raw: Option<&[u8]>) -> Result<Value<'_>, WireError> {
    let Some(raw) = raw else {
        return Ok(Value::Other);
    };
    let mut v = Value::Other;
    let mut r = Reader::new(raw);
    while let Some((n, f)) = r.next_field()? {
        v = match n {
            1 => Value::Str(f.bytes("string_value")?),
            2 => Value::Bool(f.varint("bool_value")? != 0),
            3 => Value::Int(f.varint("int_value")? as i64),
            4 => Value::Double(f64::from_bits(f.fixed64("double_value")?)),
            5 | 6 => Value::Complex(raw),
            _ => Value::Other,
        };
    }
    Ok(v)
}

/// A changed attribute value.
enum NewValue {
    Str(String),
    /// An encoded `AnyValue`.
    Any(Vec<u8>),
}

fn encode_kv(number: u32, key: &[u8], value: &NewValue) -> Edit {
    let any = match value {
        NewValue::Str(s) => {
            let mut a = Vec::with_capacity(s.len() + 6);
            put_bytes_field(&mut a, 1, s.as_bytes());
            a
        }
        NewValue::Any(a) => a.clone(),
    };
    let mut kv = Vec::with_capacity(key.len() + any.len() + 8);
    put_bytes_field(&mut kv, 1, key);
    put_bytes_field(&mut kv, 2, &any);
    field(number, &kv)
}

fn keep_or(changed: Option<Vec<u8>>, number: u32) -> Edit {
    changed.map_or(Edit::Keep, |b| field(number, &b))
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
                &cfg.hmac_key,
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
        rewrite(buf, |n, f| match (n, payload(f)) {
            (1, Some(rs)) => Ok(keep_or(self.resource_spans(rs, stats)?, 1)),
            _ => Ok(Edit::Keep),
        })
    }

    fn resource_spans(&self, rs: &[u8], stats: &mut Stats) -> Result<Option<Vec<u8>>, WireError> {
        rewrite(rs, |n, f| match (n, payload(f)) {
            (1, Some(res)) if self.apply_to_resource => {
                Ok(keep_or(self.attributes(res, 1, false, stats)?, 1))
            }
            (2, Some(ss)) => Ok(keep_or(self.scope_spans(ss, stats)?, 2)),
            _ => Ok(Edit::Keep),
        })
    }

    fn scope_spans(&self, ss: &[u8], stats: &mut Stats) -> Result<Option<Vec<u8>>, WireError> {
        rewrite(ss, |n, f| match (n, payload(f)) {
            (1, Some(scope)) if self.apply_to_resource => {
                Ok(keep_or(self.attributes(scope, 3, false, stats)?, 1))
            }
            (2, Some(span)) => Ok(keep_or(self.attributes(span, 9, true, stats)?, 2)),
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
        let out = rewrite(msg, |n, f| match payload(f) {
            Some(kv) if n == number => self.attribute(kv, number, &mut sum, stats),
            Some(ev) if events && n == 11 => Ok(keep_or(self.attributes(ev, 3, false, stats)?, 11)),
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
        let (mut key_raw, mut value_raw) = (&[][..], None);
        let mut r = Reader::new(kv);
        while let Some((n, f)) = r.next_field()? {
            match n {
                1 => key_raw = f.bytes("key")?,
                2 => value_raw = Some(f.bytes("value")?),
                _ => {}
            }
        }
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
        let value = parse_value(value_raw)?;
        let mut new = None;
        if self.blocked_keys.as_ref().is_some_and(|s| s.is_match(key)) {
            let text = value.text(self.redact_all_types);
            if self.masker.allowed(&text) {
                sum.allowed.push(key);
            } else {
                new = Some(NewValue::Str(self.masker.mask_whole(&text)));
            }
        } else {
            new = self.mask_value(&value);
        }
        if new.is_some() {
            sum.masked.push(key);
            stats.masked += 1;
        }
        if let Some(t) = self.truncator.as_ref().filter(|t| t.applies(key)) {
            let cut = match (&new, &value) {
                (Some(NewValue::Str(s)), _) => t.truncate(s),
                (None, Value::Str(b)) => t.truncate(&String::from_utf8_lossy(b)),
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

    /// The masked value, or `None` when masking changes nothing.
    fn mask_value(&self, value: &Value<'_>) -> Option<NewValue> {
        if self.masker.is_empty() {
            return None;
        }
        match value {
            Value::Str(b) => self
                .masker
                .mask_text(&String::from_utf8_lossy(b))
                .map(NewValue::Str),
            Value::Bool(_) | Value::Int(_) | Value::Double(_) if self.redact_all_types => {
                self.masker.mask_text(&value.text(true)).map(NewValue::Str)
            }
            Value::Complex(raw) => {
                let mut any = AnyValue::decode(*raw).ok()?;
                self.mask_any(&mut any)
                    .then(|| NewValue::Any(any.encode_to_vec()))
            }
            _ => None,
        }
    }

    /// Masks the string leaves of an array / key-value list value in place; true when something changed.
    fn mask_any(&self, v: &mut AnyValue) -> bool {
        use any_value::Value as V;
        let text = match &mut v.value {
            Some(V::StringValue(s)) => {
                return match self.masker.mask_text(s) {
                    Some(m) => {
                        *s = m;
                        true
                    }
                    None => false,
                };
            }
            Some(V::ArrayValue(a)) => {
                return a
                    .values
                    .iter_mut()
                    .fold(false, |changed, x| self.mask_any(x) | changed);
            }
            Some(V::KvlistValue(l)) => {
                return l
                    .values
                    .iter_mut()
                    .filter_map(|kv| kv.value.as_mut())
                    .fold(false, |changed, x| self.mask_any(x) | changed);
            }
            Some(V::BoolValue(b)) if self.redact_all_types => b.to_string(),
            Some(V::IntValue(i)) if self.redact_all_types => i.to_string(),
            Some(V::DoubleValue(d)) if self.redact_all_types => d.to_string(),
            _ => return false,
        };
        match self.masker.mask_text(&text) {
            Some(m) => {
                v.value = Some(V::StringValue(m));
                true
            }
            None => false,
        }
    }
}
