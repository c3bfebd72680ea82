//! `include` / `exclude`: the OTel Collector's span match properties (`filterconfig.MatchProperties` for spans)
//! and their semantics.
//!
//! Every property given must match (AND); within a list, one item is enough (OR). `strict` compares exactly,
//! `regexp` searches anywhere in the string (Go's `MatchString`, unanchored). `services` reads the resource's
//! `service.name` (`<nil-service-name>` when absent). Attribute and resource entries need the key present and, if
//! a `value` is given, equal to it (`strict`: same type and value; `regexp`: the value's string form matches).
//! A span is processed when it matches `include` (if set) and does not match `exclude` (if set).

use regex::Regex;
use serde::Deserialize;

use crate::config::{ConfigValue, Invalid, Key, regex};
use crate::span::{SPAN_KINDS, SpanRef};
use crate::value::{ValueExt, ValueRef, format_double_plain, values_equal};

/// `strict` or `regexp`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MatchType {
    /// Not set: a config error, as in the OTel Collector.
    #[default]
    #[serde(skip)]
    Unset,
    Strict,
    Regexp,
}

/// An attribute to match: the key must exist; the value, if given, must match.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeMatch {
    pub key: String,
    pub value: Option<ConfigValue>,
}

/// An instrumentation scope to match by name and, if given, version.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LibraryMatch {
    pub name: String,
    pub version: Option<String>,
}

/// One `include` or `exclude` block.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MatchProperties {
    pub match_type: MatchType,
    pub services: Vec<String>,
    pub span_names: Vec<String>,
    pub span_kinds: Vec<String>,
    pub attributes: Vec<AttributeMatch>,
    /// Resource attributes (`resource_attributes` is accepted as an alias).
    #[serde(alias = "resource_attributes")]
    pub resources: Vec<AttributeMatch>,
    pub libraries: Vec<LibraryMatch>,
}

/// `include` and `exclude` together.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MatchConfig {
    pub include: Option<MatchProperties>,
    pub exclude: Option<MatchProperties>,
}

/// Strings matched exactly or by regular expression.
#[derive(Debug)]
enum StrSet {
    Strict(Vec<String>),
    Regexp(Vec<Regex>),
}

impl StrSet {
    fn new(mt: MatchType, items: &[String], key: &'static str) -> Result<Self, Invalid> {
        Ok(match mt {
            MatchType::Regexp => StrSet::Regexp(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, p)| regex(p, vec![Key::Name(key), Key::Index(i)]))
                    .collect::<Result<_, _>>()?,
            ),
            _ => StrSet::Strict(items.to_vec()),
        })
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            StrSet::Strict(items) => items.iter().any(|i| i == s),
            StrSet::Regexp(res) => res.iter().any(|r| r.is_match(s)),
        }
    }
}

#[derive(Debug)]
enum ValueMatch {
    Any,
    Equal(opentelemetry_proto::tonic::common::v1::AnyValue),
    Regexp(Regex),
}

#[derive(Debug)]
struct AttrMatcher {
    key: String,
    value: ValueMatch,
}

impl AttrMatcher {
    fn matches(&self, v: Option<ValueRef<'_>>) -> bool {
        let Some(v) = v else { return false };
        match &self.value {
            ValueMatch::Any => true,
            ValueMatch::Equal(want) => values_equal(&v, want),
            ValueMatch::Regexp(re) => match v {
                ValueRef::Str(s) => re.is_match(s),
                ValueRef::Bool(b) => re.is_match(&b.to_string()),
                ValueRef::Int(i) => re.is_match(&i.to_string()),
                ValueRef::Double(d) => re.is_match(&format_double_plain(d)),
                _ => false,
            },
        }
    }
}

fn attr_matchers(
    mt: MatchType,
    items: &[AttributeMatch],
    key: &'static str,
) -> Result<Vec<AttrMatcher>, Invalid> {
    let mut out = Vec::with_capacity(items.len());
    for (i, a) in items.iter().enumerate() {
        let at = |k| vec![Key::Name(key), Key::Index(i), Key::Name(k)];
        if a.key.is_empty() {
            return Err(Invalid::new(at("key"), "must not be empty"));
        }
        let value = match (&a.value, mt) {
            (None, _) => ValueMatch::Any,
            (Some(ConfigValue::Str(p)), MatchType::Regexp) => {
                ValueMatch::Regexp(regex(p, at("value"))?)
            }
            (Some(_), MatchType::Regexp) => {
                return Err(Invalid::new(
                    at("value"),
                    "match_type regexp only supports string values",
                ));
            }
            (Some(v), _) => ValueMatch::Equal(v.to_any_value()),
        };
        out.push(AttrMatcher {
            key: a.key.clone(),
            value,
        });
    }
    Ok(out)
}

/// A compiled `include` or `exclude` block.
#[derive(Debug)]
pub struct Matcher {
    services: Option<StrSet>,
    names: Option<StrSet>,
    kinds: Option<StrSet>,
    attributes: Vec<AttrMatcher>,
    resources: Vec<AttrMatcher>,
    libraries: Vec<(StrSet, Option<StrSet>)>,
}

impl Matcher {
    /// Validates and compiles (errors are relative to the block).
    pub fn new(p: &MatchProperties) -> Result<Self, Invalid> {
        let mt = p.match_type;
        if mt == MatchType::Unset {
            return Err(Invalid::new(
                vec![Key::Name("match_type")],
                "is required: strict or regexp",
            ));
        }
        if p.services.is_empty()
            && p.span_names.is_empty()
            && p.span_kinds.is_empty()
            && p.attributes.is_empty()
            && p.resources.is_empty()
            && p.libraries.is_empty()
        {
            return Err(Invalid::new(
                vec![],
                "at least one of services, span_names, span_kinds, attributes, resources or libraries must be set",
            ));
        }
        if mt == MatchType::Strict {
            for (i, k) in p.span_kinds.iter().enumerate() {
                if !SPAN_KINDS[1..].contains(&k.as_str()) {
                    return Err(Invalid::new(
                        vec![Key::Name("span_kinds"), Key::Index(i)],
                        format!(
                            "\"{k}\" is not a span kind; with match_type strict use one of {}",
                            SPAN_KINDS[1..].join(", ")
                        ),
                    ));
                }
            }
        }
        let set = |items: &[String], key| -> Result<Option<StrSet>, Invalid> {
            if items.is_empty() {
                Ok(None)
            } else {
                StrSet::new(mt, items, key).map(Some)
            }
        };
        let mut libraries = Vec::new();
        for (i, l) in p.libraries.iter().enumerate() {
            let at = |k| vec![Key::Name("libraries"), Key::Index(i), Key::Name(k)];
            let name = StrSet::new(mt, std::slice::from_ref(&l.name), "libraries")
                .map_err(|e| Invalid::new(at("name"), e.message))?;
            let version = match &l.version {
                Some(v) => Some(
                    StrSet::new(mt, std::slice::from_ref(v), "libraries")
                        .map_err(|e| Invalid::new(at("version"), e.message))?,
                ),
                None => None,
            };
            libraries.push((name, version));
        }
        Ok(Matcher {
            services: set(&p.services, "services")?,
            names: set(&p.span_names, "span_names")?,
            kinds: set(&p.span_kinds, "span_kinds")?,
            attributes: attr_matchers(mt, &p.attributes, "attributes")?,
            resources: attr_matchers(mt, &p.resources, "resources")?,
            libraries,
        })
    }

    /// Whether the span has every property of the block.
    pub fn matches(&self, span: &SpanRef<'_>) -> bool {
        if let Some(services) = &self.services {
            let name: std::borrow::Cow<'_, str> = match span.resource_attribute("service.name") {
                None => "<nil-service-name>".into(),
                Some(ValueRef::Str(s)) => s.into(),
                Some(v) => v.as_string().into(),
            };
            if !services.matches(&name) {
                return false;
            }
        }
        if self.names.as_ref().is_some_and(|n| !n.matches(span.name)) {
            return false;
        }
        if self
            .kinds
            .as_ref()
            .is_some_and(|k| !k.matches(span.kind_str()))
        {
            return false;
        }
        for (name, version) in &self.libraries {
            if !name.matches(span.scope_field(1)) {
                return false;
            }
            if version
                .as_ref()
                .is_some_and(|v| !v.matches(span.scope_field(2)))
            {
                return false;
            }
        }
        if !self.resources.is_empty()
            && !self
                .resources
                .iter()
                .all(|m| m.matches(span.resource_attribute(&m.key)))
        {
            return false;
        }
        self.attributes
            .iter()
            .all(|m| m.matches(span.attribute(&m.key)))
    }
}

/// Compiled `include` / `exclude`.
#[derive(Debug, Default)]
pub struct SpanFilter {
    include: Option<Matcher>,
    exclude: Option<Matcher>,
}

impl SpanFilter {
    pub fn new(cfg: &MatchConfig) -> Result<Self, Invalid> {
        let compile = |p: &Option<MatchProperties>, key| {
            p.as_ref()
                .map(|p| Matcher::new(p).map_err(|e| e.under(&[Key::Name(key)])))
                .transpose()
        };
        Ok(SpanFilter {
            include: compile(&cfg.include, "include")?,
            exclude: compile(&cfg.exclude, "exclude")?,
        })
    }

    /// True when neither block is set (every span is processed).
    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// Whether the processor applies to this span: matches `include` (if set) and not `exclude` (if set).
    pub fn applies(&self, span: &SpanRef<'_>) -> bool {
        self.include.as_ref().is_none_or(|m| m.matches(span))
            && !self.exclude.as_ref().is_some_and(|m| m.matches(span))
    }
}

#[cfg(test)]
mod tests;
