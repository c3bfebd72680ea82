//! Human-written quantities in configuration: durations (`200ms`, `1m30s`) and sizes (`20 MiB`).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A duration written as the OTel Collector does (`200ms`, `5s`, `1m30s`, `1.5s`, `10us`, `100ns`, `0`), so
/// component configs can use it directly as a serde field type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Duration(pub std::time::Duration);

/// A size in bytes written as an integer or with a unit (`B`, `KB`/`MB`/`GB`/`TB` = powers of 1000,
/// `KiB`/`MiB`/`GiB`/`TiB` = powers of 1024; units case-insensitive, optional space: `20 MiB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct ByteSize(pub u64);

fn bad_duration(text: &str, why: &str) -> String {
    format!("bad duration {text:?}: {why}")
}

const DURATION_HINT: &str = "expected a duration such as 200ms or 5s";

/// Splits `<digits>[.<digits>]` into an integer part and up to 20 fractional digits, or `None` if malformed.
fn split_decimal(num: &str) -> Option<(u128, u128, u32)> {
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty()) || !digits(int_part) || !digits(frac_part) {
        return None;
    }
    let int = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let frac_digits = &frac_part[..frac_part.len().min(20)];
    let frac = if frac_digits.is_empty() {
        0
    } else {
        frac_digits.parse().ok()?
    };
    Some((int, frac, u32::try_from(frac_digits.len()).ok()?))
}

/// `int.frac × unit`, truncated to an integer; `None` on overflow.
fn scale(int: u128, frac: u128, frac_len: u32, unit: u128) -> Option<u128> {
    let whole = int.checked_mul(unit)?;
    let part = frac.checked_mul(unit)? / 10u128.checked_pow(frac_len)?;
    whole.checked_add(part)
}

impl Duration {
    /// Parses the OTel Collector duration syntax.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.starts_with('-') {
            return Err(bad_duration(text, "durations cannot be negative"));
        }
        let t = t.strip_prefix('+').unwrap_or(t);
        if t.is_empty() {
            return Err(bad_duration(text, DURATION_HINT));
        }
        if t.chars().all(|c| c == '0') {
            return Ok(Duration::default());
        }
        let mut total: u128 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let (num, after) = rest.split_at(num_end);
            let unit_end = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_end);
            let unit_nanos: u128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => NANOS_PER_SEC,
                "m" => 60 * NANOS_PER_SEC,
                "h" => 3600 * NANOS_PER_SEC,
                "" => {
                    return Err(bad_duration(
                        text,
                        &format!("{DURATION_HINT} (a number needs a unit)"),
                    ));
                }
                _ => return Err(bad_duration(text, DURATION_HINT)),
            };
            let (int, frac, frac_len) =
                split_decimal(num).ok_or_else(|| bad_duration(text, DURATION_HINT))?;
            total = scale(int, frac, frac_len, unit_nanos)
                .and_then(|n| total.checked_add(n))
                .ok_or_else(|| bad_duration(text, "duration is too large"))?;
            rest = next;
        }
        let secs = u64::try_from(total / NANOS_PER_SEC)
            .map_err(|_| bad_duration(text, "duration is too large"))?;
        let nanos = u32::try_from(total % NANOS_PER_SEC).unwrap_or(0);
        Ok(Duration(std::time::Duration::new(secs, nanos)))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_nanos();
        if total == 0 {
            return f.write_str("0s");
        }
        if total < NANOS_PER_SEC {
            return match total {
                t if t.is_multiple_of(1_000_000) => write!(f, "{}ms", t / 1_000_000),
                t if t.is_multiple_of(1_000) => write!(f, "{}us", t / 1_000),
                t => write!(f, "{t}ns"),
            };
        }
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if nanos > 0 {
            let frac = format!("{nanos:09}");
            write!(f, "{s}.{}s", frac.trim_end_matches('0'))?;
        } else if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 200ms or 5s")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        Duration::parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(bad_duration(
            &v.to_string(),
            &format!("{DURATION_HINT} (a number needs a unit)"),
        )))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

const SIZE_HINT: &str = "expected a size such as 1048576, 512KiB, 20 MiB or 1GB";

impl ByteSize {
    /// Parses an integer byte count or a number with a size unit.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("bad size {text:?}: {why}");
        let t = text.trim();
        if t.starts_with('-') {
            return Err(bad("sizes cannot be negative"));
        }
        let num_end = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(num_end);
        let multiplier: u128 = match unit.trim_start().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1000,
            "mb" => 1000u128.pow(2),
            "gb" => 1000u128.pow(3),
            "tb" => 1000u128.pow(4),
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            _ => return Err(bad(SIZE_HINT)),
        };
        let (int, frac, frac_len) = split_decimal(num).ok_or_else(|| bad(SIZE_HINT))?;
        scale(int, frac, frac_len, multiplier)
            .and_then(|n| u64::try_from(n).ok())
            .map(ByteSize)
            .ok_or_else(|| bad("size is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 8] = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
            (1_000_000_000_000, "TB"),
            (1_000_000_000, "GB"),
            (1_000_000, "MB"),
            (1_000, "KB"),
        ];
        match UNITS
            .iter()
            .find(|(size, _)| self.0 >= *size && self.0.is_multiple_of(*size))
        {
            Some((size, unit)) => write!(f, "{}{unit}", self.0 / size),
            None => write!(f, "{}B", self.0),
        }
    }
}

impl From<u64> for ByteSize {
    fn from(bytes: u64) -> Self {
        ByteSize(bytes)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as 512KiB or 20 MiB")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        ByteSize::parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
        Err(E::custom(format!(
            "bad size {:?}: {SIZE_HINT}",
            v.to_string()
        )))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

#[cfg(test)]
#[path = "units_tests.rs"]
mod tests;
