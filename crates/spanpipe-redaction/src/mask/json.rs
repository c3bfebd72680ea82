//! Masking the string leaves of a JSON text: every string token (keys too) is decoded, masked and re-encoded
//! when it changed; numbers, punctuation and whitespace are copied byte for byte. A leaf that cannot be decoded
//! (a lone surrogate escape) is masked whole: we fail closed rather than pass something we could not inspect.

use super::Masker;
use super::hash::MASK;
use crate::json::{self, NotJson};

/// The masked text, `Ok(None)` when nothing changed, `Err` when `s` is not JSON.
pub(super) fn mask_json(m: &Masker, s: &str, depth: u8) -> Result<Option<String>, NotJson> {
    json::parse(s)?;
    let b = s.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    // In valid JSON a quote outside a string always opens one, so string tokens are found by their quotes.
    while let Some(off) = b
        .get(i..)
        .and_then(|rest| rest.iter().position(|&c| c == b'"'))
    {
        let start = i + off;
        let end = json::string_end(b, start)?;
        let raw = s.get(start..end).ok_or(NotJson)?;
        let replacement = match json::decode_str(raw) {
            None => Some(json::encode_str(MASK)),
            Some(text) => m.mask_at(&text, depth + 1).map(|t| json::encode_str(&t)),
        };
        if let Some(rep) = replacement {
            let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
            o.push_str(s.get(copied..start).ok_or(NotJson)?);
            o.push_str(&rep);
            copied = end;
        }
        i = end;
    }
    Ok(out.map(|mut o| {
        o.push_str(s.get(copied..).unwrap_or_default());
        o
    }))
}
