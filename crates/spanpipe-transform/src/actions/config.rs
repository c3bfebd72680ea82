//! The `actions` list as written (the OTel Collector's `attraction.ActionKeyValue`) and its validation into
//! compiled [`Action`]s, with the same rules and messages in spirit.

use regex::Regex;
use serde::Deserialize;

use super::{Action, Source, Target};
use crate::config::{ConfigValue, Invalid, Key, regex};

/// One action as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ActionConfig {
    /// insert | update | upsert | delete | hash | extract | convert (any case).
    pub action: String,
    pub key: String,
    pub value: Option<ConfigValue>,
    /// A regular expression: on keys for delete and hash, with named groups on the value for extract.
    pub pattern: String,
    pub from_attribute: String,
    /// `metadata.<header>` (or a bare header name) of the incoming request.
    pub from_context: String,
    /// int | double | string, for convert.
    pub converted_type: String,
}

fn err(i: usize, key: &'static str, message: impl Into<String>) -> Invalid {
    Invalid::new(
        vec![Key::Name("actions"), Key::Index(i), Key::Name(key)],
        message,
    )
}

impl ActionConfig {
    fn source(&self, i: usize) -> Result<Source, Invalid> {
        let n = usize::from(self.value.is_some())
            + usize::from(!self.from_attribute.is_empty())
            + usize::from(!self.from_context.is_empty());
        if n == 0 {
            return Err(err(
                i,
                "action",
                format!(
                    "{} needs one of value, from_attribute or from_context",
                    self.action
                ),
            ));
        }
        if n > 1 {
            return Err(err(
                i,
                "value",
                "set only one of value, from_attribute and from_context",
            ));
        }
        if let Some(v) = &self.value {
            return Ok(Source::Value(v.to_any_value()));
        }
        if !self.from_attribute.is_empty() {
            return Ok(Source::Attribute(self.from_attribute.clone()));
        }
        let c = self.from_context.as_str();
        if c == "client.address" || c.starts_with("auth.") {
            return Err(err(
                i,
                "from_context",
                "spanpipe keeps no client address or auth data with a batch; use metadata.<header> (with the \
                 receiver's include_metadata: true)",
            ));
        }
        let header = c.strip_prefix("metadata.").unwrap_or(c);
        if header.is_empty() {
            return Err(err(i, "from_context", "names no header"));
        }
        Ok(Source::Context(header.to_ascii_lowercase()))
    }

    fn unused(&self, i: usize, fields: &[&'static str]) -> Result<(), Invalid> {
        for f in fields {
            let set = match *f {
                "value" => self.value.is_some(),
                "pattern" => !self.pattern.is_empty(),
                "from_attribute" => !self.from_attribute.is_empty(),
                "from_context" => !self.from_context.is_empty(),
                "converted_type" => !self.converted_type.is_empty(),
                _ => false,
            };
            if set {
                return Err(err(
                    i,
                    f,
                    format!("is not used by action {}", self.action.to_ascii_lowercase()),
                ));
            }
        }
        Ok(())
    }

    fn key_or_pattern(&self, i: usize) -> Result<(Option<String>, Option<Regex>), Invalid> {
        if self.key.is_empty() && self.pattern.is_empty() {
            return Err(err(i, "key", "set key, pattern or both"));
        }
        let key = (!self.key.is_empty()).then(|| self.key.clone());
        let pattern = if self.pattern.is_empty() {
            None
        } else {
            Some(regex(
                &self.pattern,
                vec![Key::Name("actions"), Key::Index(i), Key::Name("pattern")],
            )?)
        };
        Ok((key, pattern))
    }

    fn required_key(&self, i: usize) -> Result<String, Invalid> {
        if self.key.is_empty() {
            return Err(err(i, "key", "is required"));
        }
        Ok(self.key.clone())
    }

    /// Validates the action at index `i` of `actions`.
    pub fn compile(&self, i: usize) -> Result<Action, Invalid> {
        let kind = self.action.to_ascii_lowercase();
        Ok(match kind.as_str() {
            "insert" | "update" | "upsert" => {
                let key = self.required_key(i)?;
                self.unused(i, &["pattern", "converted_type"])?;
                let source = self.source(i)?;
                match kind.as_str() {
                    "insert" => Action::Insert { key, source },
                    "update" => Action::Update { key, source },
                    _ => Action::Upsert { key, source },
                }
            }
            "delete" | "hash" => {
                self.unused(
                    i,
                    &["value", "from_attribute", "from_context", "converted_type"],
                )?;
                let (key, pattern) = self.key_or_pattern(i)?;
                if kind == "delete" {
                    Action::Delete { key, pattern }
                } else {
                    Action::Hash { key, pattern }
                }
            }
            "extract" => {
                let key = self.required_key(i)?;
                self.unused(
                    i,
                    &["value", "from_attribute", "from_context", "converted_type"],
                )?;
                if self.pattern.is_empty() {
                    return Err(err(i, "pattern", "is required for extract"));
                }
                let re = regex(
                    &self.pattern,
                    vec![Key::Name("actions"), Key::Index(i), Key::Name("pattern")],
                )?;
                let names: Vec<Option<&str>> = re.capture_names().skip(1).collect();
                if names.is_empty() {
                    return Err(err(i, "pattern", "has no named groups (?P<name>...)"));
                }
                if names.iter().any(Option::is_none) {
                    return Err(err(
                        i,
                        "pattern",
                        "every group must be named (?P<name>...); use (?:...) for grouping",
                    ));
                }
                let names = names.into_iter().flatten().map(str::to_string).collect();
                Action::Extract {
                    key,
                    regex: re,
                    names,
                }
            }
            "convert" => {
                let key = self.required_key(i)?;
                self.unused(i, &["value", "from_attribute", "from_context", "pattern"])?;
                let to = match self.converted_type.as_str() {
                    "int" => Target::Int,
                    "double" => Target::Double,
                    "string" => Target::String,
                    "" => return Err(err(i, "converted_type", "is required for convert")),
                    other => {
                        return Err(err(
                            i,
                            "converted_type",
                            format!("\"{other}\" is not one of int, double, string"),
                        ));
                    }
                };
                Action::Convert { key, to }
            }
            "" => return Err(err(i, "action", "is required")),
            other => {
                return Err(err(
                    i,
                    "action",
                    format!(
                        "unsupported action \"{other}\": use insert, update, upsert, delete, hash, extract or convert"
                    ),
                ));
            }
        })
    }
}

/// Validates a whole action list (at least one action, as the OTel Collector requires). `list` is its key:
/// `actions` in the attributes processor, `attributes` in the resource processor.
pub fn compile_actions(
    actions: &[ActionConfig],
    list: &'static str,
) -> Result<Vec<Action>, Invalid> {
    if actions.is_empty() {
        return Err(Invalid::new(
            vec![Key::Name(list)],
            "at least one action is required",
        ));
    }
    actions
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.compile(i).map_err(|mut e| {
                if let Some(first) = e.keys.first_mut() {
                    *first = Key::Name(list);
                }
                e
            })
        })
        .collect()
}
