//! Environment-variable expansion inside scalar values, using the OTel Collector syntax.

use crate::error::ConfigError;
use crate::node::{Node, Value};

/// Env expansion inside scalar text, OTel collector syntax: `${env:VAR}`, `${VAR}`, `${env:VAR:-default}`
/// (default used when unset or empty), `$$` → literal `$`. A bare `$VAR` (no braces) is left as is. An unset
/// variable without default expands to the empty string (as the OTel Collector does). A malformed `${` (no closing
/// brace, bad name, unsupported `scheme:`) is an error.
///
/// Only mapping values and sequence items are expanded, never keys. A plain scalar that is exactly one `${...}`
/// reference stays plain (so `port: ${env:PORT}` can still become a number); any other scalar that contained a
/// `${...}` or `$$` becomes a string (`quoted = true`). Locations are unchanged.
pub fn expand_env(
    node: &mut Node,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match &mut node.value {
        Value::Null => Ok(()),
        Value::Scalar { text, quoted } => {
            if let Some(expanded) = expand_text(text, env)
                .map_err(|m| ConfigError::new(node.location.clone(), "", m))?
            {
                if !*quoted && !expanded.whole_reference {
                    *quoted = true;
                }
                *text = expanded.text;
            }
            Ok(())
        }
        Value::Seq(items) => items.iter_mut().enumerate().try_for_each(|(i, n)| {
            expand_env(n, env).map_err(|mut e| {
                e.key = match e.key.as_str() {
                    "" => format!("[{i}]"),
                    k if k.starts_with('[') => format!("[{i}]{k}"),
                    k => format!("[{i}].{k}"),
                };
                e
            })
        }),
        Value::Map(entries) => entries.iter_mut().try_for_each(|(key, value)| {
            expand_env(value, env).map_err(|e| with_key(e, key.as_str().unwrap_or_default()))
        }),
    }
}

/// Prefixes the error's key path with the key of the mapping entry it was found under.
fn with_key(mut error: ConfigError, key: &str) -> ConfigError {
    error.key = if error.key.is_empty() {
        key.to_owned()
    } else if error.key.starts_with('[') {
        format!("{key}{}", error.key)
    } else {
        format!("{key}.{}", error.key)
    };
    error
}

struct Expanded {
    text: String,
    /// The input was exactly one `${...}` reference.
    whole_reference: bool,
}

/// Expands `text`; `None` when it contains nothing to expand.
fn expand_text(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Expanded>, String> {
    if !text.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    let mut references = 0usize;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            changed = true;
            rest = tail;
        } else if let Some(body_and_tail) = after.strip_prefix('{') {
            let Some(end) = body_and_tail.find('}') else {
                return Err(format!(
                    "unterminated `${{` in {text:?}: expected `${{env:NAME}}`"
                ));
            };
            out.push_str(&lookup(&body_and_tail[..end], env)?);
            changed = true;
            references += 1;
            rest = &body_and_tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if !changed {
        return Ok(None);
    }
    let whole_reference = references == 1
        && text.starts_with("${")
        && text.ends_with('}')
        && text.matches('}').count() == 1;
    Ok(Some(Expanded {
        text: out,
        whole_reference,
    }))
}

/// Resolves the inside of one `${...}`.
fn lookup(body: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let spec = match body.split_once(':') {
        Some(("env", spec)) => spec,
        Some((scheme, rest)) if !rest.starts_with('-') => {
            return Err(format!(
                "unsupported config provider `{scheme}` in `${{{body}}}`: only `env` is supported"
            ));
        }
        _ => body,
    };
    let (name, default) = match spec.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (spec, None),
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "invalid environment variable name {name:?} in `${{{body}}}`"
        ));
    }
    Ok(match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => default.to_owned(),
        (Some(value), _) => value,
        (None, default) => default.unwrap_or_default().to_owned(),
    })
}

/// Location-free check used by tests and `--set`: expands one string.
#[cfg(test)]
pub(crate) fn expand_str(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    Ok(expand_text(text, env)?.map_or_else(|| text.to_owned(), |e| e.text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_str;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("collector".into()),
            "PORT" => Some("4317".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn all_forms() {
        assert_eq!(expand_str("${env:HOST}", &env).unwrap(), "collector");
        assert_eq!(
            expand_str("${HOST}:${PORT}", &env).unwrap(),
            "collector:4317"
        );
        assert_eq!(
            expand_str("${env:MISSING:-fallback}", &env).unwrap(),
            "fallback"
        );
        assert_eq!(
            expand_str("${env:EMPTY:-fallback}", &env).unwrap(),
            "fallback"
        );
        assert_eq!(expand_str("${HOST:-fallback}", &env).unwrap(), "collector");
        assert_eq!(expand_str("${env:MISSING}", &env).unwrap(), "");
        assert_eq!(expand_str("${EMPTY}", &env).unwrap(), "");
        assert_eq!(
            expand_str("cost: $$5 and $$${HOST}", &env).unwrap(),
            "cost: $5 and $collector"
        );
        assert_eq!(expand_str("$HOST stays", &env).unwrap(), "$HOST stays");
        assert_eq!(expand_str("trailing $", &env).unwrap(), "trailing $");
        assert_eq!(expand_str("${env:MISSING:-a:b-c}", &env).unwrap(), "a:b-c");
    }

    #[test]
    fn malformed() {
        assert!(
            expand_str("${env:HOST", &env)
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            expand_str("${}", &env)
                .unwrap_err()
                .contains("invalid environment variable name")
        );
        assert!(expand_str("${1X}", &env).is_err());
        assert!(
            expand_str("${file:/etc/x}", &env)
                .unwrap_err()
                .contains("unsupported config provider")
        );
    }

    #[test]
    fn tree_expansion_keeps_typing_and_reports_location() {
        let mut n = load_str("c.yaml", "a:\n  port: ${env:PORT}\n  url: http://${HOST}:${PORT}\n  q: '${PORT}'\n  l: [x, $$y]\n")
            .unwrap();
        expand_env(&mut n, &env).unwrap();
        let a = n.get("a").unwrap();
        assert!(
            matches!(&a.get("port").unwrap().value, Value::Scalar { text, quoted: false } if text == "4317")
        );
        assert!(
            matches!(&a.get("url").unwrap().value, Value::Scalar { text, quoted: true } if text == "http://collector:4317")
        );
        assert!(
            matches!(&a.get("q").unwrap().value, Value::Scalar { text, quoted: true } if text == "4317")
        );
        let port: u16 = a.get("port").unwrap().deserialize("a.port").unwrap();
        assert_eq!(port, 4317);
        assert_eq!(a.get("port").unwrap().location.to_string(), "c.yaml:2:9");
        let l: Vec<String> = a.get("l").unwrap().deserialize("a.l").unwrap();
        assert_eq!(l, ["x", "$y"]);

        let mut bad = load_str("c.yaml", "a:\n  b: [ok, \"${oops\"]\n").unwrap();
        let err = expand_env(&mut bad, &env).unwrap_err().to_string();
        assert!(
            err.starts_with("c.yaml:2:11: a.b[1]: unterminated"),
            "{err}"
        );
    }
}
