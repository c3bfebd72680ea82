//! The Collector contrib's single-condition policies: latency, numeric / string / boolean attribute,
//! probabilistic, status code, trace state.

use regex::Regex;
use spanpipe_core::wire::{AnyValueRef, RawValue, WireError, utf8};

use super::Decision;
use crate::config::{
    BooleanAttributeConfig, LatencyConfig, NumericAttributeConfig, ProbabilisticConfig,
    StringAttributeConfig, TraceStateConfig, status_code,
};
use crate::trace::{TraceData, trace_state};

/// `latency`: earliest start to latest end over the trace's spans.
#[derive(Debug)]
pub struct Latency {
    threshold_ms: i64,
    upper_ms: i64,
}

impl Latency {
    pub fn new(c: &LatencyConfig) -> Self {
        Latency {
            threshold_ms: c.threshold_ms,
            upper_ms: c.upper_threshold_ms,
        }
    }

    pub fn matches(&self, t: &TraceData<'_>) -> Result<bool, WireError> {
        let f = t.facts()?;
        if f.start > f.end {
            return Ok(false);
        }
        let ms = f.duration_ms();
        Ok(if self.upper_ms == 0 {
            ms >= self.threshold_ms
        } else {
            self.threshold_ms < ms && ms <= self.upper_ms
        })
    }
}

/// What an attribute policy compares values with.
#[derive(Debug)]
enum Want {
    Strings(Vec<String>),
    Regexes(Vec<Regex>),
    Bool(bool),
}

/// `string_attribute` / `boolean_attribute`: a resource or span attribute `key` with a wanted value.
#[derive(Debug)]
pub struct AttrMatch {
    key: String,
    want: Want,
    invert: bool,
}

impl AttrMatch {
    pub fn string(c: &StringAttributeConfig) -> Self {
        let want = if c.enabled_regex_matching {
            // Validated; a pattern that fails here matches nothing.
            Want::Regexes(c.values.iter().filter_map(|v| Regex::new(v).ok()).collect())
        } else {
            Want::Strings(c.values.clone())
        };
        AttrMatch {
            key: c.key.clone(),
            want,
            invert: c.invert_match,
        }
    }

    pub fn boolean(c: &BooleanAttributeConfig) -> Self {
        AttrMatch {
            key: c.key.clone(),
            want: Want::Bool(c.value),
            invert: c.invert_match,
        }
    }

    fn value_matches(&self, v: RawValue<'_>) -> bool {
        // A value that cannot be read matches nothing.
        match (&self.want, v.get()) {
            (Want::Strings(vals), AnyValueRef::Str(s)) => vals.iter().any(|w| w == s),
            (Want::Regexes(res), AnyValueRef::Str(s)) => res.iter().any(|r| r.is_match(s)),
            (Want::Bool(b), AnyValueRef::Bool(x)) => *b == x,
            _ => false,
        }
    }

    /// Not inverted: sampled when some resource or span has the key with a wanted value. Inverted: "inverted not
    /// sampled" when one has, else "inverted sampled" (also when the key occurs nowhere).
    pub fn evaluate(&self, t: &TraceData<'_>) -> Result<Decision, WireError> {
        let (_, matched) = t.any_attr(&self.key, |v| self.value_matches(v))?;
        Ok(match (self.invert, matched) {
            (false, m) => Decision::sampled_if(m),
            (true, true) => Decision::InvertNotSampled,
            (true, false) => Decision::InvertSampled,
        })
    }
}

/// `numeric_attribute`: an int (or double) attribute within `[min, max]` (0 or unset: unbounded, as in the
/// Collector).
#[derive(Debug)]
pub struct NumericRange {
    key: String,
    min: f64,
    max: f64,
    invert: bool,
}

impl NumericRange {
    pub fn new(c: &NumericAttributeConfig) -> Self {
        let bound = |v: Option<i64>, unset: f64| v.filter(|x| *x != 0).map_or(unset, |x| x as f64);
        NumericRange {
            key: c.key.clone(),
            min: bound(c.min_value, f64::NEG_INFINITY),
            max: bound(c.max_value, f64::INFINITY),
            invert: c.invert_match,
        }
    }

    pub fn evaluate(&self, t: &TraceData<'_>) -> Result<Decision, WireError> {
        let (_, matched) = t.any_attr(&self.key, |v| {
            let n = match v.get() {
                AnyValueRef::Int(i) => i as f64,
                AnyValueRef::Double(d) => d,
                _ => return false,
            };
            self.min <= n && n <= self.max
        })?;
        Ok(match (self.invert, matched) {
            (false, m) => Decision::sampled_if(m),
            (true, true) => Decision::InvertNotSampled,
            (true, false) => Decision::InvertSampled,
        })
    }
}

/// `probabilistic`: the Collector's FNV-1a (64-bit) of `hash_salt` then the trace id, sampled when at most
/// `u64::MAX × percentage / 100` — the same traces a Go collector with the same salt keeps.
#[derive(Debug)]
pub struct Probabilistic {
    salt: Vec<u8>,
    threshold: u64,
}

/// The Collector's salt when `hash_salt` is empty.
pub const DEFAULT_HASH_SALT: &str = "default-hash-seed";

impl Probabilistic {
    pub fn new(c: &ProbabilisticConfig) -> Self {
        let salt = if c.hash_salt.is_empty() {
            DEFAULT_HASH_SALT
        } else {
            &c.hash_salt
        };
        let threshold = threshold(c.sampling_percentage / 100.0);
        Probabilistic {
            salt: salt.as_bytes().to_vec(),
            threshold,
        }
    }

    pub fn matches(&self, trace_id: &[u8]) -> bool {
        self.threshold > 0 && fnv1a64(&[&self.salt, trace_id]) <= self.threshold
    }
}

/// `floor(u64::MAX × ratio)` computed exactly (the Collector multiplies in big floats), 0 for ratios ≤ 0 and
/// `u64::MAX` from 1.
pub fn threshold(ratio: f64) -> u64 {
    if ratio.is_nan() || ratio <= 0.0 {
        return 0;
    }
    if ratio >= 1.0 {
        return u64::MAX;
    }
    // ratio = mantissa × 2^exp exactly; u64::MAX × mantissa fits in 117 bits.
    let bits = ratio.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = u128::from(bits & ((1u64 << 52) - 1));
    let (mantissa, exp) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u128 << 52), biased - 1075)
    };
    let shift = (-exp) as u32;
    if shift >= 128 {
        return 0;
    }
    ((u128::from(u64::MAX) * mantissa) >> shift) as u64
}

/// FNV-1a, 64 bits, over the parts in order.
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// `status_code`: some span has one of the statuses.
#[derive(Debug)]
pub struct StatusCodes([bool; 3]);

impl StatusCodes {
    pub fn new(codes: &[String]) -> Self {
        let mut set = [false; 3];
        for c in codes {
            if let Some(i) = status_code(c) {
                set[i as usize] = true;
            }
        }
        StatusCodes(set)
    }

    /// Whether `code` (0 unset, 1 ok, 2 error) is in the set; other codes read as unset.
    pub fn contains(&self, code: u64) -> bool {
        self.0[if code <= 2 { code as usize } else { 0 }]
    }

    pub fn is_empty(&self) -> bool {
        !self.0.iter().any(|b| *b)
    }

    /// Whether one of the statuses `seen` (indexed by code) is in the set.
    pub fn any_of(&self, seen: &[bool; 3]) -> bool {
        (0..3).any(|i| seen[i] && self.0[i])
    }

    pub fn matches(&self, t: &TraceData<'_>) -> Result<bool, WireError> {
        Ok(self.any_of(&t.facts()?.statuses))
    }
}

/// `trace_state`: some span's W3C `tracestate` has `key` with one of the values.
#[derive(Debug)]
pub struct TraceState {
    pairs: Vec<String>,
}

impl TraceState {
    pub fn new(c: &TraceStateConfig) -> Self {
        TraceState {
            pairs: c.values.iter().map(|v| format!("{}={v}", c.key)).collect(),
        }
    }

    pub fn matches(&self, t: &TraceData<'_>) -> Result<bool, WireError> {
        let mut found = false;
        let mut err = None;
        t.for_each_span(|s| {
            if found {
                return;
            }
            match trace_state(s.ctx.raw).and_then(utf8) {
                Ok(ts) => {
                    found = ts
                        .split(',')
                        .map(str::trim)
                        .any(|member| self.pairs.iter().any(|p| p == member));
                }
                Err(e) => err = Some(e),
            }
        })?;
        match err {
            Some(e) if !found => Err(e),
            _ => Ok(found),
        }
    }
}
