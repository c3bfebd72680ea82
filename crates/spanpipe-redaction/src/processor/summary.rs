//! The OTel redaction processor's diagnostic attributes (`summary: info | debug`), added to an attribute set that
//! the processor changed, merged with values an earlier redaction processor left: counts add up, key lists join.
//! spanpipe adds `redaction.truncated.keys` / `redaction.truncated.count` for its truncation.

use spanpipe_core::wire::{
    AnyValueRef, Edit, Field, WireError, key_value, put_bytes_field, put_varint, rewrite_fields,
};

use crate::config::Summary;

/// Every attribute the summary may write; they are never deleted or masked, so a chain of processors keeps them.
pub const KEYS: [&str; 11] = [
    "redaction.redacted.keys",
    "redaction.redacted.count",
    "redaction.masked.keys",
    "redaction.masked.count",
    "redaction.allowed.keys",
    "redaction.allowed.count",
    "redaction.ignored.count",
    "redaction.truncated.keys",
    "redaction.truncated.count",
    "redaction.body.redacted.keys",
    "redaction.body.redacted.count",
];

pub fn is_summary_key(key: &str) -> bool {
    key.starts_with("redaction.") && KEYS.contains(&key)
}

/// What happened to one attribute set (borrowed key names).
#[derive(Default, Debug)]
pub struct AttrSummary<'a> {
    pub redacted: Vec<&'a str>,
    pub masked: Vec<&'a str>,
    pub allowed: Vec<&'a str>,
    pub truncated: Vec<&'a str>,
    pub ignored: usize,
}

impl AttrSummary<'_> {
    pub fn is_empty(&self) -> bool {
        self.redacted.is_empty()
            && self.masked.is_empty()
            && self.allowed.is_empty()
            && self.truncated.is_empty()
            && self.ignored == 0
    }
}

enum Existing {
    Text(String),
    Int(i64),
}

fn read_kv(kv: &[u8]) -> Result<(&[u8], Option<Existing>), WireError> {
    let (key, value) = key_value(kv)?;
    let existing = match value.parse()? {
        AnyValueRef::Str(t) => Some(Existing::Text(t.to_string())),
        AnyValueRef::Int(i) => Some(Existing::Int(i)),
        _ => None,
    };
    Ok((key, existing))
}

fn put_kv(out: &mut Vec<u8>, number: u32, key: &str, any: &[u8]) {
    let mut kv = Vec::with_capacity(key.len() + any.len() + 4);
    put_bytes_field(&mut kv, 1, key.as_bytes());
    put_bytes_field(&mut kv, 2, any);
    put_bytes_field(out, number, &kv);
}

/// `msg` (whose attributes are field `number`) with the summary of `sum` written in.
pub fn append(
    msg: Vec<u8>,
    number: u32,
    sum: &AttrSummary<'_>,
    level: Summary,
) -> Result<Vec<u8>, WireError> {
    let ignored: Vec<&str> = Vec::new();
    let groups: [(&str, &str, &Vec<&str>, usize); 5] = [
        (
            "redaction.redacted.keys",
            "redaction.redacted.count",
            &sum.redacted,
            sum.redacted.len(),
        ),
        (
            "redaction.masked.keys",
            "redaction.masked.count",
            &sum.masked,
            sum.masked.len(),
        ),
        (
            "redaction.allowed.keys",
            "redaction.allowed.count",
            &sum.allowed,
            sum.allowed.len(),
        ),
        ("", "redaction.ignored.count", &ignored, sum.ignored),
        (
            "redaction.truncated.keys",
            "redaction.truncated.count",
            &sum.truncated,
            sum.truncated.len(),
        ),
    ];
    let writes = |key: &[u8]| {
        groups.iter().any(|(k, c, _, n)| {
            *n > 0
                && (key == c.as_bytes()
                    || (level == Summary::Debug && !k.is_empty() && key == k.as_bytes()))
        })
    };
    let mut old: Vec<(Vec<u8>, Existing)> = Vec::new();
    let kept = rewrite_fields(&msg, |n, f| match f {
        Field::Bytes(kv) if n == number => {
            let (key, value) = read_kv(kv)?;
            if !writes(key) {
                return Ok(Edit::Keep);
            }
            if let Some(v) = value {
                old.push((key.to_vec(), v));
            }
            Ok(Edit::Drop)
        }
        _ => Ok(Edit::Keep),
    })?;
    let mut out = kept.unwrap_or(msg);
    for (keys_attr, count_attr, names, count) in groups {
        if count == 0 {
            continue;
        }
        if level == Summary::Debug && !keys_attr.is_empty() {
            let mut all: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            for (k, v) in &old {
                if let (true, Existing::Text(t)) = (k == keys_attr.as_bytes(), v) {
                    all.extend(t.split(',').filter(|s| !s.is_empty()).map(String::from));
                }
            }
            all.sort();
            let mut any = Vec::new();
            put_bytes_field(&mut any, 1, all.join(",").as_bytes());
            put_kv(&mut out, number, keys_attr, &any);
        }
        let mut total = count as i64;
        for (k, v) in &old {
            if let (true, Existing::Int(i)) = (k == count_attr.as_bytes(), v) {
                total = total.saturating_add(*i);
            }
        }
        let mut any = vec![3 << 3];
        put_varint(&mut any, total as u64);
        put_kv(&mut out, number, count_attr, &any);
    }
    Ok(out)
}
