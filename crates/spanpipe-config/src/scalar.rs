//! YAML 1.2 core-schema resolution of plain scalar text (null, bool, int, float).

/// What a plain scalar means under the YAML 1.2 core schema.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Resolved {
    Null,
    Bool(bool),
    /// An integer; wider than i64/u64 so both signs and the full u64 range fit.
    Int(i128),
    Float(f64),
    Str,
}

/// True for the texts the core schema reads as null (`null`, `Null`, `NULL`, `~`, empty).
pub(crate) fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// The core-schema boolean spelled by `text`, if any.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Outcome of reading integer text: not an integer at all, or an integer that does not fit in i128.
pub(crate) enum IntError {
    NotInt,
    Overflow,
}

/// The core-schema integer spelled by `text` (`[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`).
pub(crate) fn parse_int(text: &str) -> Result<i128, IntError> {
    let (radix, digits, negative) = if let Some(hex) = text.strip_prefix("0x") {
        (16, hex, false)
    } else if let Some(oct) = text.strip_prefix("0o") {
        (8, oct, false)
    } else if let Some(rest) = text.strip_prefix('-') {
        (10, rest, true)
    } else {
        (10, text.strip_prefix('+').unwrap_or(text), false)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(IntError::NotInt);
    }
    let magnitude = i128::from_str_radix(digits, radix).map_err(|_| IntError::Overflow)?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// The core-schema float spelled by `text` (decimal with optional exponent, `.inf`, `.nan`).
pub(crate) fn parse_float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let negative = text.starts_with('-');
    match unsigned {
        ".inf" | ".Inf" | ".INF" => {
            return Some(if negative {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        ".nan" | ".NaN" | ".NAN" if unsigned.len() == text.len() => return Some(f64::NAN),
        _ => {}
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match frac_part {
        None => !int_part.is_empty() && all_digits(int_part),
        Some(f) if int_part.is_empty() => !f.is_empty() && all_digits(f),
        Some(f) => all_digits(int_part) && all_digits(f),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
        !digits.is_empty() && all_digits(digits)
    });
    if !mantissa_ok || !exponent_ok {
        return None;
    }
    text.parse().ok()
}

/// Resolves plain scalar text under the core schema.
pub(crate) fn resolve(text: &str) -> Resolved {
    if is_null_text(text) {
        return Resolved::Null;
    }
    if let Some(b) = parse_bool(text) {
        return Resolved::Bool(b);
    }
    match parse_int(text) {
        Ok(i) => return Resolved::Int(i),
        Err(IntError::Overflow) => {
            if let Ok(f) = text.parse() {
                return Resolved::Float(f);
            }
        }
        Err(IntError::NotInt) => {}
    }
    match parse_float(text) {
        Some(f) => Resolved::Float(f),
        None => Resolved::Str,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema() {
        assert_eq!(resolve(""), Resolved::Null);
        assert_eq!(resolve("~"), Resolved::Null);
        assert_eq!(resolve("NULL"), Resolved::Null);
        assert_eq!(resolve("nULL"), Resolved::Str);
        assert_eq!(resolve("True"), Resolved::Bool(true));
        assert_eq!(resolve("yes"), Resolved::Str);
        assert_eq!(resolve("0x1F"), Resolved::Int(31));
        assert_eq!(resolve("0o17"), Resolved::Int(15));
        assert_eq!(resolve("-12"), Resolved::Int(-12));
        assert_eq!(resolve("+12"), Resolved::Int(12));
        assert_eq!(resolve("1.5"), Resolved::Float(1.5));
        assert_eq!(resolve(".5"), Resolved::Float(0.5));
        assert_eq!(resolve("1e3"), Resolved::Float(1000.0));
        assert_eq!(resolve("-.inf"), Resolved::Float(f64::NEG_INFINITY));
        assert!(matches!(resolve(".NaN"), Resolved::Float(f) if f.is_nan()));
        assert_eq!(resolve("-.nan"), Resolved::Str);
        assert_eq!(resolve("5s"), Resolved::Str);
        assert_eq!(resolve("1.2.3"), Resolved::Str);
        assert_eq!(resolve("."), Resolved::Str);
        assert_eq!(resolve("inf"), Resolved::Str);
        assert_eq!(resolve("0x"), Resolved::Str);
        assert_eq!(resolve("1e"), Resolved::Str);
    }
}
