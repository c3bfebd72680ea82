//! The W3C `tracestate` list and its OpenTelemetry `ot` member (`ot=rv:<14 hex>;th:<hex>;<other>:<v>`), as the
//! OTel sampling specification defines them. When the sampler updates `ot`, the member moves to the front of the
//! list (W3C: a modified entry goes first); other vendors' members keep their order.

use super::threshold::{encode_rv, encode_th, parse_rv, parse_th};

/// Longest `ot` value accepted.
const MAX_OT_LEN: usize = 256;

/// A parsed `ot` member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtState<'a> {
    pub rv: Option<u64>,
    pub th: Option<u64>,
    /// Other `key:value` sub-members, kept in order.
    pub extra: Vec<&'a str>,
}

/// A tracestate split into its `ot` value (if any) and the other members (trimmed, in order).
pub fn split(tracestate: &str) -> (Option<&str>, Vec<&str>) {
    let mut ot = None;
    let mut others = Vec::new();
    for member in tracestate.split(',') {
        let m = member.trim_matches([' ', '\t']);
        if m.is_empty() {
            continue;
        }
        match m.strip_prefix("ot=") {
            Some(v) if ot.is_none() => ot = Some(v),
            _ => others.push(m),
        }
    }
    (ot, others)
}

fn valid_key(k: &str) -> bool {
    let mut b = k.bytes();
    b.next().is_some_and(|c| c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn valid_value(v: &str) -> bool {
    v.bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Parses an `ot` value; `Err` names what is wrong (the span's sampling information is then unusable).
pub fn parse_ot(v: &str) -> Result<OtState<'_>, &'static str> {
    if v.len() > MAX_OT_LEN {
        return Err("ot tracestate too long");
    }
    let mut st = OtState::default();
    for sub in v.split(';') {
        let Some((k, val)) = sub.split_once(':') else {
            return Err("ot tracestate syntax");
        };
        if !valid_key(k) || !valid_value(val) {
            return Err("ot tracestate syntax");
        }
        match k {
            "rv" => st.rv = Some(parse_rv(val).ok_or("invalid rv")?),
            "th" => st.th = Some(parse_th(val).ok_or("invalid th")?),
            _ => st.extra.push(sub),
        }
    }
    Ok(st)
}

/// The tracestate with `ot` written first (omitted when empty) followed by `others`.
pub fn serialize(ot: &OtState<'_>, others: &[&str]) -> String {
    let mut subs: Vec<String> = Vec::new();
    if let Some(rv) = ot.rv {
        subs.push(format!("rv:{}", encode_rv(rv)));
    }
    if let Some(th) = ot.th.and_then(encode_th) {
        subs.push(format!("th:{th}"));
    }
    subs.extend(ot.extra.iter().map(|s| s.to_string()));
    let mut members = Vec::with_capacity(others.len() + 1);
    if !subs.is_empty() {
        members.push(format!("ot={}", subs.join(";")));
    }
    members.extend(others.iter().map(|s| s.to_string()));
    members.join(",")
}
