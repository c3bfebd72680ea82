//! How MLflow's server turns attribute values into text (`json.dumps` of scalars, `try_json_loads` of strings).
//! Values are read by the shared wire layer (`spanpipe_core::wire`); this is only the conversion.

use std::borrow::Cow;

use spanpipe_core::wire::AnyValueRef;

/// The value as MLflow's server turns a resource attribute into a trace tag: strings unchanged, scalars as
/// JSON (`json.dumps`); arrays, maps, bytes and empty values are not used (`None`).
pub fn tag_text(v: AnyValueRef<'_>) -> Option<Cow<'_, str>> {
    match v {
        AnyValueRef::Str(s) => Some(Cow::Borrowed(s)),
        AnyValueRef::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
        AnyValueRef::Int(i) => Some(Cow::Owned(i.to_string())),
        AnyValueRef::Double(d) if d.is_finite() => Some(Cow::Owned(format!("{d:?}"))),
        _ => None,
    }
}

/// `text` cut to at most `max` bytes on a UTF-8 character boundary (a label value taken from a span is the
/// client's to choose: 30 KB experiment ids must not make `/metrics` hundreds of MB); `true` when it was cut.
pub fn cap_len(text: Cow<'_, str>, max: usize) -> (Cow<'_, str>, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = match text {
        Cow::Borrowed(s) => Cow::Borrowed(&s[..end]),
        Cow::Owned(mut s) => {
            s.truncate(end);
            Cow::Owned(s)
        }
    };
    (cut, true)
}

/// A string value JSON-decoded (MLflow writes `mlflow.*` values as JSON), other scalars as text.
pub fn decoded(v: AnyValueRef<'_>) -> Option<Cow<'_, str>> {
    match v {
        AnyValueRef::Str(s) => Some(json_str(s)),
        other => tag_text(other),
    }
}

/// MLflow's `try_json_loads` for text that should be a string: `"\"LLM\""` → `LLM`, anything that is not a JSON
/// string literal stays as it is. Borrowed unless the literal has escapes.
pub fn json_str(raw: &str) -> Cow<'_, str> {
    let b = raw.as_bytes();
    if b.len() < 2 || b[0] != b'"' || b[b.len() - 1] != b'"' {
        return Cow::Borrowed(raw);
    }
    let inner = &raw[1..raw.len() - 1];
    if !inner.bytes().any(|c| c == b'\\' || c == b'"' || c < 0x20) {
        return Cow::Borrowed(inner);
    }
    match serde_json::from_str::<String>(raw) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_as_mlflow_prints_them() {
        assert_eq!(tag_text(AnyValueRef::Double(1.0)).unwrap(), "1.0");
        assert_eq!(tag_text(AnyValueRef::Int(7)).unwrap(), "7");
        assert_eq!(tag_text(AnyValueRef::Bool(false)).unwrap(), "false");
        assert!(tag_text(AnyValueRef::Bytes(b"x")).is_none());
        assert!(tag_text(AnyValueRef::Array(b"")).is_none());
        assert_eq!(decoded(AnyValueRef::Str("\"x\"")).unwrap(), "x");
    }

    #[test]
    fn json_strings_are_decoded_like_try_json_loads() {
        assert_eq!(json_str("\"LLM\""), "LLM");
        assert!(matches!(json_str("\"LLM\""), Cow::Borrowed(_)));
        assert_eq!(json_str("LLM"), "LLM");
        assert_eq!(json_str("\"a\\\"b\""), "a\"b");
        assert_eq!(json_str("\"caf\\u00e9\""), "café");
        assert_eq!(json_str("\""), "\"");
        assert_eq!(json_str("\"bad\\\""), "\"bad\\\"");
        assert_eq!(json_str("\"\""), "");
    }
}
