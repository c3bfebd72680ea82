//! Named masking presets for what GenAI payloads most often leak. Each is a regex plus an optional check of the
//! match (card numbers must pass the Luhn checksum, so timestamps and ids are not masked).

/// One named preset.
pub struct Preset {
    pub name: &'static str,
    pub pattern: &'static str,
    /// A match is masked only when this accepts it.
    pub accept: Option<fn(&str) -> bool>,
}

/// Every preset `blocked_value_presets` may name.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "email",
        pattern: r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
        accept: None,
    },
    Preset {
        // OpenAI / Anthropic (sk-...), AWS access key ids, GitHub, GitLab, Slack, Google, Databricks, Hugging Face.
        name: "api_key",
        pattern: r"\b(?:sk-[A-Za-z0-9_\-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|glpat-[A-Za-z0-9_\-]{20,}|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}|dapi[0-9a-f]{32}|hf_[A-Za-z0-9]{30,})\b",
        accept: None,
    },
    Preset {
        // `Bearer <token>` / `Basic <credentials>` (as in a logged Authorization header) and bare JWTs.
        name: "bearer_token",
        pattern: r"(?i:\b(?:bearer|basic)\s+[A-Za-z0-9\-._~+/]{8,}=*)|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+",
        accept: None,
    },
    Preset {
        // 13-19 digits, optionally grouped by spaces or dashes, starting like Visa, Mastercard, Amex, Discover,
        // Diners or JCB, and passing the Luhn check.
        name: "credit_card",
        pattern: r"\b(?:4|5[1-5]|2[2-7]|3[47]|3[068]|6(?:011|5))(?:[ \-]?[0-9]){11,17}\b",
        accept: Some(luhn_valid),
    },
];

/// The Luhn checksum over the digits of `s` (separators ignored); false for fewer than 13 or more than 19 digits.
pub fn luhn_valid(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}
