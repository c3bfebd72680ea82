//! Renders a [`Node`] tree back to block-style YAML (for `spanpipe print-config`), quoting what needs quoting so
//! the output re-parses to the same values, and redacting secrets.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::error::Location;
use crate::node::{Node, Value};
use crate::scalar::{Resolved, resolve};

const REDACTED: &str = "\"[REDACTED]\"";

/// Where the values to redact are: the nodes a component read as a [`crate::Secret`].
type Secrets<'a> = &'a HashSet<Location>;

/// A backstop for sections no component has typed yet (an unknown component, a config that does not build): keys
/// whose (scalar) values are never printed: `token`, `password`, `secret`, `api_key`, `authorization`,
/// `bearer_token`, and anything ending in `_token`, `_password` or `_secret` (case-insensitive).
pub(crate) fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(
        key.as_str(),
        "token" | "password" | "secret" | "api_key" | "authorization" | "bearer_token"
    ) || key.ends_with("_token")
        || key.ends_with("_password")
        || key.ends_with("_secret")
}

/// Renders `node` as a YAML document ending in a newline.
pub(crate) fn to_yaml(node: &Node, secrets: Secrets<'_>) -> String {
    let mut out = String::new();
    match &node.value {
        Value::Map(entries) if !entries.is_empty() => {
            write_map(&mut out, entries, 0, false, secrets)
        }
        Value::Seq(items) if !items.is_empty() => {
            write_seq(&mut out, items, 0, false, false, secrets)
        }
        Value::Map(_) => out.push_str("{}\n"),
        Value::Seq(_) => out.push_str("[]\n"),
        Value::Null => out.push_str("~\n"),
        Value::Scalar { text, quoted } => {
            write_scalar(&mut out, text, *quoted);
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, width: usize) {
    out.extend(std::iter::repeat_n(' ', width));
}

/// Writes mapping entries at `width`; the first line's indentation is skipped when it follows a `- `.
fn write_map(
    out: &mut String,
    entries: &[(Node, Node)],
    width: usize,
    first_inline: bool,
    secrets: Secrets<'_>,
) {
    for (index, (key, value)) in entries.iter().enumerate() {
        if !(first_inline && index == 0) {
            indent(out, width);
        }
        let text = key.as_str().unwrap_or_default();
        if text == "<<" || !is_plain_safe(text) {
            write_quoted(out, text);
        } else {
            write_scalar(
                out,
                text,
                matches!(key.value, Value::Scalar { quoted: true, .. }),
            );
        }
        out.push(':');
        write_value(out, value, width, is_secret_key(text), secrets);
    }
}

/// Writes sequence items at `width`; the first line's indentation is skipped when it follows a `- `.
fn write_seq(
    out: &mut String,
    items: &[Node],
    width: usize,
    first_inline: bool,
    secret: bool,
    secrets: Secrets<'_>,
) {
    for (index, item) in items.iter().enumerate() {
        if !(first_inline && index == 0) {
            indent(out, width);
        }
        out.push('-');
        match &item.value {
            Value::Map(entries) if !entries.is_empty() => {
                out.push(' ');
                write_map(out, entries, width + 2, true, secrets);
            }
            Value::Seq(nested) if !nested.is_empty() => {
                out.push(' ');
                write_seq(out, nested, width + 2, true, secret, secrets);
            }
            _ => write_value(out, item, width, secret, secrets),
        }
    }
}

/// Writes the value after `key:` or `-` (including the line break).
fn write_value(out: &mut String, node: &Node, width: usize, secret: bool, secrets: Secrets<'_>) {
    let secret = secret || secrets.contains(&node.location);
    match &node.value {
        Value::Null => out.push('\n'),
        Value::Scalar {
            text,
            quoted: false,
        } if text.is_empty() => out.push('\n'),
        Value::Scalar { text, quoted } => {
            out.push(' ');
            if secret {
                out.push_str(REDACTED);
            } else {
                write_scalar(out, &redact_userinfo(text), *quoted);
            }
            out.push('\n');
        }
        Value::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
        Value::Seq(items) if items.is_empty() => out.push_str(" []\n"),
        Value::Map(entries) => {
            out.push('\n');
            write_map(out, entries, width + 2, false, secrets);
        }
        Value::Seq(items) => {
            out.push('\n');
            write_seq(out, items, width + 2, false, secret, secrets);
        }
    }
}

/// Writes a scalar plain when that re-parses to the same meaning, double-quoted otherwise.
fn write_scalar(out: &mut String, text: &str, quoted: bool) {
    let plain = is_plain_safe(text) && (!quoted || resolve(text) == Resolved::Str);
    if plain {
        out.push_str(text);
    } else {
        write_quoted(out, text);
    }
}

/// A URL's `user:password@` (any scalar that looks like `scheme://userinfo@host...`) printed as
/// `user:[REDACTED]@`, or `[REDACTED]@` when there is no password part: credentials in endpoints are secrets too.
pub(crate) fn redact_userinfo(text: &str) -> Cow<'_, str> {
    let Some(scheme_end) = text.find("://") else {
        return Cow::Borrowed(text);
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return Cow::Borrowed(text);
    };
    let userinfo = &rest[..at];
    let shown = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:[REDACTED]"),
        None => "[REDACTED]".to_owned(),
    };
    Cow::Owned(format!("{}{shown}{}", &text[..scheme_end + 3], &rest[at..]))
}

/// True if `text` written as a plain scalar in block context parses back to exactly `text`.
fn is_plain_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    let second = text.chars().nth(1);
    let bad_start = match first {
        '-' => second.is_none_or(|c| c == ' '),
        '?' | ':' | ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\''
        | '"' | '%' | '@' | '`' => true,
        _ => false,
    };
    !bad_start
        && !text.starts_with(' ')
        && !text.ends_with(' ')
        && !text.ends_with(':')
        && !text.contains(": ")
        && !text.contains(" #")
        && !text.starts_with("---")
        && !text.starts_with("...")
        && text
            .chars()
            .all(|c| !c.is_control() && !matches!(c, '\u{FEFF}' | '\u{2028}' | '\u{2029}'))
}

fn write_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{FEFF}' | '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{:04X}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
#[path = "emit_tests.rs"]
mod tests;
