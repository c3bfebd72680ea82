//! OTel consistent probability sampling arithmetic (the `pkg/sampling` of the collector contrib): 56-bit
//! randomness, rejection thresholds and their `th` / `rv` encodings.
//!
//! A span is kept when `randomness >= threshold`; threshold 0 keeps everything, [`NEVER`] nothing.

/// 2^56: the number of distinct randomness values.
pub const MAX_ADJUSTED: u64 = 1 << 56;
/// The threshold that keeps nothing (cannot be encoded as `th`).
pub const NEVER: u64 = MAX_ADJUSTED;
const HEX_DIGITS: u32 = 14;

/// The binary exponent `e` with `x = m * 2^e`, `m` in [0.5, 1) (C's `frexp`), for positive normal `x`.
fn frexp_exp(x: f64) -> i32 {
    ((x.to_bits() >> 52) & 0x7ff) as i32 - 1022
}

/// The threshold for keeping `fraction` of spans, rounded to `precision` hex digits (more near 0 and 1, where
/// relative error matters), or `None` outside [2^-56, 1].
pub fn from_probability(fraction: f64, precision: u32) -> Option<u64> {
    let min = 1.0 / MAX_ADJUSTED as f64;
    if !(min..=1.0).contains(&fraction) {
        return None;
    }
    if fraction == 1.0 {
        return Some(0);
    }
    let p = precision as i32;
    let extra_f = p + frexp_exp(fraction) / -4;
    let extra_r = p + frexp_exp(1.0 - fraction) / -4;
    let precision = (HEX_DIGITS as i32).min(extra_f.max(extra_r)) as u32;
    let scaled = (fraction * MAX_ADJUSTED as f64).round() as u64;
    let mut threshold = MAX_ADJUSTED - scaled.min(MAX_ADJUSTED);
    let shift = 4 * (HEX_DIGITS - precision);
    if shift != 0 {
        let half = 1u64 << (shift - 1);
        threshold = ((threshold + half) >> shift) << shift;
    }
    Some(threshold)
}

/// The probability a threshold keeps.
pub fn probability(threshold: u64) -> f64 {
    (MAX_ADJUSTED - threshold.min(MAX_ADJUSTED)) as f64 / MAX_ADJUSTED as f64
}

/// `th` value: 14 hex digits with trailing zeros removed (`0` keeps all); `None` for [`NEVER`].
pub fn encode_th(threshold: u64) -> Option<String> {
    if threshold >= MAX_ADJUSTED {
        return None;
    }
    if threshold == 0 {
        return Some("0".into());
    }
    let s = format!("{threshold:014x}");
    Some(s.trim_end_matches('0').to_string())
}

/// Parses a `th` value (1 to 14 hex digits, padded on the right).
pub fn parse_th(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 14 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u64::from_str_radix(s, 16).ok()?;
    Some(v << (4 * (14 - s.len() as u32)))
}

/// Parses an `rv` value (exactly 14 hex digits).
pub fn parse_rv(s: &str) -> Option<u64> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// `rv` value of a randomness.
pub fn encode_rv(r: u64) -> String {
    format!("{:014x}", r & (MAX_ADJUSTED - 1))
}

/// The W3C randomness of a trace id: its low 56 bits.
pub fn trace_id_randomness(trace_id: &[u8]) -> u64 {
    let mut v = 0u64;
    for &b in trace_id.get(9..16).unwrap_or_default() {
        v = (v << 8) | u64::from(b);
    }
    v
}

/// `hash_seed` mode's randomness: FNV-1a over the seed (little endian) and the trace id, spread into 56 bits so
/// that its top 14 bits compare against thresholds like the collector's 14-bit bucket test.
pub fn hash_randomness(trace_id: &[u8], seed: u32) -> u64 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in seed.to_le_bytes().iter().chain(trace_id) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    const BUCKETS: u64 = 0x4000;
    let hashed = u64::from(h) & (BUCKETS - 1);
    let rprime14 = BUCKETS - 1 - hashed;
    let unused18 = u64::from(h >> 18);
    let mixed28 = unused18 ^ (unused18 << 10);
    ((rprime14 << 42) | (mixed28 << 14) | hashed) & (MAX_ADJUSTED - 1)
}

/// `hash_seed` mode's threshold for a percentage (the collector's float32 arithmetic, truncating), or `None`
/// when it rounds to "keep nothing".
pub fn hash_threshold(pct: f32) -> Option<u64> {
    let scaled = (pct * (0x4000 as f32 / 100.0)) as u32;
    if scaled == 0 {
        return None;
    }
    let reject = 0x4000u64.saturating_sub(u64::from(scaled));
    Some(reject << 42)
}
