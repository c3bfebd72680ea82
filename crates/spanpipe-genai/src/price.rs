//! The operator's price table: per-1M-token prices by model (exact name or regular expression), with the date
//! each price takes effect. Nothing here knows a price: every number comes from the file
//! (`configs/genai-prices.example.yaml` is a dated example).
//!
//! ```yaml
//! currency: USD
//! prices:
//!   - model: gpt-4o-mini
//!     effective_from: 2024-07-18
//!     input: 0.15          # per 1,000,000 input tokens
//!     output: 0.60
//!     cache_read: 0.075    # optional: cache_read, cache_write, reasoning
//!   - model_regex: "claude-3-5-haiku.*"
//!     input: 0.80
//!     output: 4.00
//! ```

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use crate::usage::Usage;

/// Longest compiled regular expression accepted (the table is the operator's, but a typo must not eat memory).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Largest price table file read.
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// The price table file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFile {
    /// The unit of every price, e.g. `USD`; becomes the unit of `gen_ai.client.cost`.
    pub currency: String,
    pub prices: Vec<PriceEntry>,
}

/// One model's prices, per 1,000,000 tokens.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// The model name, matched exactly.
    #[serde(default)]
    pub model: Option<String>,
    /// A regular expression the whole model name must match (used when no exact entry matches).
    #[serde(default)]
    pub model_regex: Option<String>,
    /// Only spans of this provider (`gen_ai.provider.name`), when set.
    #[serde(default)]
    pub provider: Option<String>,
    /// `YYYY-MM-DD` (UTC): the price applies to spans starting on or after this day. Absent: always.
    #[serde(default)]
    pub effective_from: Option<String>,
    pub input: f64,
    pub output: f64,
    /// Cache-read input tokens; absent: the input price.
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Cache-write (creation) input tokens; absent: the input price.
    #[serde(default)]
    pub cache_write: Option<f64>,
    /// Reasoning output tokens; absent: the output price.
    #[serde(default)]
    pub reasoning: Option<f64>,
}

/// A validated entry.
#[derive(Debug)]
struct Entry {
    provider: Option<String>,
    /// Days since 1970-01-01.
    from_day: i64,
    input: f64,
    output: f64,
    cache_read: f64,
    cache_write: f64,
    reasoning: f64,
}

/// The cost of one span, in the table's currency.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub input: f64,
    pub output: f64,
}

impl Cost {
    pub fn total(&self) -> f64 {
        self.input + self.output
    }
}

/// A loaded, validated price table.
#[derive(Debug)]
pub struct PriceTable {
    pub currency: String,
    entries: Vec<Entry>,
    /// Exact model → entry indices, latest `effective_from` first.
    exact: HashMap<String, Vec<usize>>,
    /// Regular expressions in file order, each with its entry indices.
    regexes: Vec<(Regex, Vec<usize>)>,
}

/// Why a table was refused: a message naming the entry.
pub type TableError = String;

impl PriceTable {
    /// Reads and validates the file at `path` (YAML or JSON).
    pub fn load(path: &Path) -> Result<PriceTable, TableError> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(format!(
                "{}: larger than {MAX_FILE_BYTES} bytes",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses and validates a table's text; `name` is used in errors.
    pub fn parse(name: &str, text: &str) -> Result<PriceTable, TableError> {
        let node = spanpipe_config::load_str(name, text).map_err(|e| e.to_string())?;
        let file: PriceFile = node.deserialize("").map_err(|e| e.to_string())?;
        Self::from_file(file).map_err(|e| format!("{name}: {e}"))
    }

    fn from_file(file: PriceFile) -> Result<PriceTable, TableError> {
        if file.currency.trim().is_empty() {
            return Err("currency: must not be empty".into());
        }
        let mut t = PriceTable {
            currency: file.currency.trim().to_string(),
            entries: Vec::with_capacity(file.prices.len()),
            exact: HashMap::new(),
            regexes: Vec::new(),
        };
        for (i, e) in file.prices.into_iter().enumerate() {
            let at = |m: &str| format!("prices[{i}]: {m}");
            for (what, v) in [("input", Some(e.input)), ("output", Some(e.output))]
                .into_iter()
                .chain([
                    ("cache_read", e.cache_read),
                    ("cache_write", e.cache_write),
                    ("reasoning", e.reasoning),
                ])
            {
                if let Some(v) = v
                    && !(v.is_finite() && v >= 0.0)
                {
                    return Err(at(&format!("{what}: must be a price ≥ 0")));
                }
            }
            let from_day = match &e.effective_from {
                Some(d) => parse_day(d).ok_or_else(|| {
                    at(&format!("effective_from: {d:?} is not a YYYY-MM-DD date"))
                })?,
                None => i64::MIN,
            };
            let idx = t.entries.len();
            t.entries.push(Entry {
                provider: e.provider.filter(|p| !p.is_empty()),
                from_day,
                input: e.input,
                output: e.output,
                cache_read: e.cache_read.unwrap_or(e.input),
                cache_write: e.cache_write.unwrap_or(e.input),
                reasoning: e.reasoning.unwrap_or(e.output),
            });
            match (e.model, e.model_regex) {
                (Some(m), None) if !m.is_empty() => t.exact.entry(m).or_default().push(idx),
                (None, Some(r)) if !r.is_empty() => {
                    if let Some(slot) = t.regexes.iter_mut().find(|(re, _)| re.as_str() == full(&r))
                    {
                        slot.1.push(idx);
                    } else {
                        let re = regex::RegexBuilder::new(&full(&r))
                            .size_limit(REGEX_SIZE_LIMIT)
                            .build()
                            .map_err(|err| at(&format!("model_regex: {err}")))?;
                        t.regexes.push((re, vec![idx]));
                    }
                }
                _ => return Err(at("exactly one of model and model_regex, not empty")),
            }
        }
        let by_day = |v: &mut Vec<usize>, entries: &[Entry]| {
            v.sort_by_key(|&i| std::cmp::Reverse(entries[i].from_day));
        };
        for v in t.exact.values_mut() {
            by_day(v, &t.entries);
        }
        for (_, v) in t.regexes.iter_mut() {
            by_day(v, &t.entries);
        }
        Ok(t)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for `model` (of `provider`) on `day` (days since the epoch): an exact entry first, else the
    /// first regular expression (in file order) with an entry in effect; among a model's entries, the latest in
    /// effect. `None`: unpriced.
    fn find(&self, model: &str, provider: Option<&str>, day: i64) -> Option<&Entry> {
        let pick = |idx: &[usize]| {
            idx.iter().map(|&i| &self.entries[i]).find(|e| {
                e.from_day <= day && e.provider.as_deref().is_none_or(|p| Some(p) == provider)
            })
        };
        if let Some(e) = self.exact.get(model).and_then(|v| pick(v)) {
            return Some(e);
        }
        self.regexes
            .iter()
            .filter(|(re, _)| re.is_match(model))
            .find_map(|(_, v)| pick(v))
    }

    /// Whether `model` has a price on `day`.
    pub fn is_priced(&self, model: &str, provider: Option<&str>, day: i64) -> bool {
        self.find(model, provider, day).is_some()
    }

    /// The cost of `usage` for `model` on `day`; `None` when the model has no price then.
    ///
    /// Input and output counts include their cached and reasoning parts (the OTel and OpenAI convention), so
    /// those parts are priced at their own rates and the rest at the plain rates; a part larger than its whole
    /// (a client that reports them separately) is priced on its own, the rest counted as 0.
    pub fn cost(&self, model: &str, provider: Option<&str>, day: i64, u: &Usage) -> Option<Cost> {
        let e = self.find(model, provider, day)?;
        let (input, output) = (u.input.unwrap_or(0), u.output.unwrap_or(0));
        let (cr, cw, rs) = (
            u.cache_read.unwrap_or(0),
            u.cache_write.unwrap_or(0),
            u.reasoning.unwrap_or(0),
        );
        let plain_in = input.saturating_sub(cr.saturating_add(cw));
        let plain_out = output.saturating_sub(rs);
        let m = 1e-6;
        Some(Cost {
            input: (plain_in as f64 * e.input
                + cr as f64 * e.cache_read
                + cw as f64 * e.cache_write)
                * m,
            output: (plain_out as f64 * e.output + rs as f64 * e.reasoning) * m,
        })
    }
}

/// `^(?:re)$`: a model name must match the whole expression.
fn full(re: &str) -> String {
    format!("^(?:{re})$")
}

/// `YYYY-MM-DD` as days since 1970-01-01 (proleptic Gregorian).
pub fn parse_day(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1..=9999).contains(&y) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The UTC day of a span starting at `unix_nano`.
pub fn day_of(unix_nano: u64) -> i64 {
    (unix_nano / 86_400_000_000_000) as i64
}

#[cfg(test)]
mod tests;
