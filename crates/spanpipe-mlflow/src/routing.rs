//! Which experiment a resource's spans go to: the ordered `routing` rules (first match wins), else the default
//! experiment. With `allowed_experiments`, a routed value that matches none of the patterns goes to the default
//! experiment too (the tenant guard: clients cannot make spanpipe create or write to experiments of their choosing);
//! such refusals are counted in `spanpipe_mlflow_routing_refused_total{exporter}` and warned once per value.

use std::collections::HashSet;
use std::sync::Mutex;

use spanpipe_core::Metadata;

use crate::config::{RuleAs, valid_experiment_id};
use spanpipe_core::wire::{AnyValueRef, fields, find_attr};

/// An experiment as named by configuration or data: resolved to an id (names via the experiments API) before
/// sending.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Id(String),
    Name(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Id(id) => write!(f, "experiment id {id}"),
            Target::Name(n) => write!(f, "experiment {n:?}"),
        }
    }
}

/// Where a rule reads its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    ResourceAttribute(String),
    /// Lower-cased header name, looked up in the batch's metadata.
    RequestHeader(String),
}

/// A validated routing rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub source: Source,
    pub value_as: RuleAs,
}

/// How many distinct bad values we remember so each is warned about once.
const MAX_WARNED: usize = 256;

/// Evaluates the rules for one resource at a time.
#[derive(Debug)]
pub struct Router {
    rules: Vec<Rule>,
    default: Target,
    warned: Mutex<HashSet<String>>,
    /// `None`: any routed value is accepted.
    allowed: Option<regex::RegexSet>,
    refused: metrics::Counter,
    refused_warned: Mutex<HashSet<String>>,
    exporter: String,
}

/// The counter of routed values refused by `allowed_experiments`.
pub const REFUSED_METRIC: &str = "spanpipe_mlflow_routing_refused_total";

impl Router {
    pub fn new(rules: Vec<Rule>, default: Target) -> Self {
        Router {
            rules,
            default,
            warned: Mutex::new(HashSet::new()),
            allowed: None,
            refused: metrics::Counter::noop(),
            refused_warned: Mutex::new(HashSet::new()),
            exporter: String::new(),
        }
    }

    /// Accepts only routed values matching one of `allowed` (anchored patterns); refusals are counted for
    /// `exporter`.
    pub fn with_allow_list(mut self, allowed: Option<regex::RegexSet>, exporter: &str) -> Self {
        metrics::describe_counter!(
            REFUSED_METRIC,
            metrics::Unit::Count,
            "Resources whose routed experiment matched no allowed_experiments pattern; their spans went to the default experiment."
        );
        self.refused = metrics::counter!(REFUSED_METRIC, "exporter" => exporter.to_owned());
        self.allowed = allowed;
        self.exporter = exporter.to_owned();
        self
    }

    pub fn default_target(&self) -> &Target {
        &self.default
    }

    /// The experiment for the spans of `resource` (an encoded `Resource`) in a batch with `metadata`.
    ///
    /// A rule matches when its attribute or header is present with a usable value (a non-empty string, or an
    /// integer attribute). An id that is not an integer cannot be an MLflow experiment: MLflow would reject the
    /// whole request with 400, so the rule is skipped (warned once per value) and the next one decides.
    pub fn route(&self, resource: &[u8], metadata: &Metadata) -> Target {
        for rule in &self.rules {
            let value = match &rule.source {
                Source::ResourceAttribute(key) => {
                    find_attr(resource, fields::resource::ATTRIBUTES, key)
                        .ok()
                        .flatten()
                        .and_then(|v| match v.get() {
                            // Routing text: strings as they are, integers in decimal; nothing else is an experiment.
                            AnyValueRef::Str(s) => Some(s.to_string()),
                            AnyValueRef::Int(i) => Some(i.to_string()),
                            _ => None,
                        })
                }
                Source::RequestHeader(name) => metadata.get(name).map(str::to_string),
            };
            let Some(value) = value
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
            else {
                continue;
            };
            let target = match rule.value_as {
                RuleAs::ExperimentName => Target::Name(value),
                RuleAs::ExperimentId if valid_experiment_id(&value) => Target::Id(value),
                RuleAs::ExperimentId => {
                    self.warn_bad_id(&rule.source, &value);
                    continue;
                }
            };
            return self.guarded(target);
        }
        self.default.clone()
    }

    /// `target` if the allow-list accepts it, else the default experiment (counted, warned once per value).
    fn guarded(&self, target: Target) -> Target {
        let Some(allowed) = &self.allowed else {
            return target;
        };
        let value = match &target {
            Target::Id(v) | Target::Name(v) => v,
        };
        if allowed.is_match(value) {
            return target;
        }
        self.refused.increment(1);
        let mut warned = self
            .refused_warned
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if warned.len() < MAX_WARNED && warned.insert(value.clone()) {
            // A client's value, so cut: a long one must not make a long log line.
            let shown: String = value.chars().take(120).collect();
            tracing::warn!(exporter = %self.exporter, value = %shown, default = %self.default,
                "routed {target_kind} matches no allowed_experiments pattern; its spans go to the default experiment \
                 (warned once per value)", target_kind = match target { Target::Id(_) => "experiment id", Target::Name(_) => "experiment name" });
        }
        self.default.clone()
    }

    fn warn_bad_id(&self, source: &Source, value: &str) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.len() < MAX_WARNED && warned.insert(value.to_string()) {
            tracing::warn!(
                ?source,
                value,
                "routing value is not an MLflow experiment id (an integer); rule skipped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    fn resource(attrs: &[(&str, Value)]) -> Vec<u8> {
        Resource {
            attributes: attrs
                .iter()
                .map(|(k, v)| KeyValue {
                    key: (*k).into(),
                    value: Some(AnyValue {
                        value: Some(v.clone()),
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn meta(pairs: &[(&str, &str)]) -> Metadata {
        Metadata(Some(Arc::from(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect::<Vec<_>>(),
        )))
    }

    fn router() -> Router {
        Router::new(
            vec![
                Rule {
                    source: Source::ResourceAttribute("mlflow.experiment_name".into()),
                    value_as: RuleAs::ExperimentName,
                },
                Rule {
                    source: Source::RequestHeader("x-mlflow-experiment-id".into()),
                    value_as: RuleAs::ExperimentId,
                },
                Rule {
                    source: Source::ResourceAttribute("exp.id".into()),
                    value_as: RuleAs::ExperimentId,
                },
            ],
            Target::Name("fallback".into()),
        )
    }

    #[test]
    fn first_matching_rule_wins_else_default() {
        let r = router();
        let named = resource(&[(
            "mlflow.experiment_name",
            Value::StringValue("agents".into()),
        )]);
        let hdr = meta(&[("X-MLflow-Experiment-Id", "7")]);
        assert_eq!(r.route(&named, &hdr), Target::Name("agents".into()));
        assert_eq!(r.route(&resource(&[]), &hdr), Target::Id("7".into()));
        let int_attr = resource(&[("exp.id", Value::IntValue(12))]);
        assert_eq!(
            r.route(&int_attr, &Metadata::default()),
            Target::Id("12".into())
        );
        assert_eq!(
            r.route(&resource(&[]), &Metadata::default()),
            Target::Name("fallback".into())
        );
        assert_eq!(r.default_target(), &Target::Name("fallback".into()));
    }

    #[test]
    fn empty_non_text_and_non_numeric_values_fall_through() {
        let r = router();
        let empty = resource(&[
            ("mlflow.experiment_name", Value::StringValue("  ".into())),
            ("exp.id", Value::StringValue("abc".into())),
        ]);
        assert_eq!(
            r.route(&empty, &meta(&[("x-mlflow-experiment-id", "1 OR 1")])),
            Target::Name("fallback".into())
        );
        let boolean = resource(&[("mlflow.experiment_name", Value::BoolValue(true))]);
        assert_eq!(
            r.route(&boolean, &Metadata::default()),
            Target::Name("fallback".into())
        );
        // A resource that is not valid protobuf cannot match an attribute rule, but headers still apply.
        assert_eq!(
            r.route(b"\x0a\xff", &meta(&[("x-mlflow-experiment-id", "3")])),
            Target::Id("3".into())
        );
        assert_eq!(Target::Name("a".into()).to_string(), "experiment \"a\"");
        assert_eq!(Target::Id("4".into()).to_string(), "experiment id 4");
    }

    #[test]
    fn allow_list_sends_refused_values_to_the_default() {
        let set = regex::RegexSet::new(["^(?:team-[a-z]+)$", "^(?:7)$"]).unwrap();
        let r = router().with_allow_list(Some(set), "mlflow/t");
        let named = |n: &str| resource(&[("mlflow.experiment_name", Value::StringValue(n.into()))]);
        let none = Metadata::default();
        assert_eq!(
            r.route(&named("team-a"), &none),
            Target::Name("team-a".into())
        );
        for hostile in ["team-a-x", "xteam-a", "evil", "team-A"] {
            assert_eq!(
                r.route(&named(hostile), &none),
                Target::Name("fallback".into()),
                "{hostile}"
            );
        }
        let hdr = |v: &str| meta(&[("x-mlflow-experiment-id", v)]);
        assert_eq!(r.route(&resource(&[]), &hdr("7")), Target::Id("7".into()));
        assert_eq!(
            r.route(&resource(&[]), &hdr("8")),
            Target::Name("fallback".into())
        );
        // Each refused value is remembered once, and the memory is bounded.
        for i in 0..(MAX_WARNED * 2) {
            r.route(&named(&format!("evil-{i}")), &none);
        }
        assert_eq!(r.refused_warned.lock().unwrap().len(), MAX_WARNED);
    }
}
