//! `processors.tail_sampling`: the OTel Collector contrib's option names and defaults, plus spanpipe's GenAI
//! policies. Parsing is serde; [`TailSamplingConfig::validate`] checks what serde cannot, naming the exact key.

use std::time::Duration;

use serde::Deserialize;
use spanpipe_config::{ByteSize, Duration as ConfigDuration};
use spanpipe_core::{Invalid, Key};

/// Deepest nesting of `and` / `composite` / `not` / `drop` policies accepted (contrib allows two levels).
pub const MAX_POLICY_DEPTH: usize = 4;

/// `tail_sampling`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TailSamplingConfig {
    /// Wait from a trace's first span until its decision.
    pub decision_wait: ConfigDuration,
    /// Undecided traces held at most; past it the oldest is decided early.
    pub num_traces: u64,
    /// Sizing hint for the trace table.
    pub expected_new_traces_per_sec: u64,
    pub decision_cache: DecisionCacheConfig,
    pub policies: Vec<PolicyConfig>,
    /// Stop evaluating at the first policy that samples.
    pub sample_on_first_match: bool,
    /// On shutdown, drop undecided traces instead of deciding them with what arrived.
    pub drop_pending_traces_on_shutdown: bool,
    /// A trace whose buffered bytes pass this is decided at once (0: no per-trace bound).
    pub maximum_trace_size_bytes: ByteSize,
    /// spanpipe: bytes of undecided traces this processor holds at most; past it the oldest is decided early
    /// (0: bounded only by `num_traces` and the process memory budget).
    pub max_buffered_bytes: ByteSize,
}

impl Default for TailSamplingConfig {
    fn default() -> Self {
        TailSamplingConfig {
            decision_wait: ConfigDuration(Duration::from_secs(30)),
            num_traces: 50_000,
            expected_new_traces_per_sec: 0,
            decision_cache: DecisionCacheConfig::default(),
            policies: Vec::new(),
            sample_on_first_match: false,
            drop_pending_traces_on_shutdown: false,
            maximum_trace_size_bytes: ByteSize(0),
            max_buffered_bytes: ByteSize(0),
        }
    }
}

/// `decision_cache`: how many decided trace ids are remembered after their spans are gone.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionCacheConfig {
    pub sampled_cache_size: usize,
    pub non_sampled_cache_size: usize,
}

/// One policy (at the top level or inside `and`, `composite`, `not`, `drop`). As in the Collector, every type's
/// section may be present; only the one `type` names is used.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub latency: LatencyConfig,
    pub numeric_attribute: NumericAttributeConfig,
    pub probabilistic: ProbabilisticConfig,
    pub status_code: StatusCodeConfig,
    pub string_attribute: StringAttributeConfig,
    pub rate_limiting: RateLimitingConfig,
    pub span_count: SpanCountConfig,
    pub trace_state: TraceStateConfig,
    pub boolean_attribute: BooleanAttributeConfig,
    pub and: AndConfig,
    pub drop: DropConfig,
    pub not: NotConfig,
    pub composite: CompositeConfig,
    pub genai_usage: GenaiUsageConfig,
    pub span_type: SpanTypeConfig,
    pub finish_reason: FinishReasonConfig,
}

/// `latency`: the trace's duration (earliest start to latest end).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    pub threshold_ms: i64,
    /// 0: no upper bound (then `duration >= threshold_ms`; else `threshold_ms < duration <= upper`).
    pub upper_threshold_ms: i64,
}

/// `numeric_attribute`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NumericAttributeConfig {
    pub key: String,
    /// Unset (or 0, as in the Collector): no lower bound.
    pub min_value: Option<i64>,
    pub max_value: Option<i64>,
    pub invert_match: bool,
}

/// `probabilistic`: FNV-1a of `hash_salt` and the trace id against the percentage.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProbabilisticConfig {
    pub hash_salt: String,
    pub sampling_percentage: f64,
}

/// `status_code`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StatusCodeConfig {
    pub status_codes: Vec<String>,
}

/// `string_attribute`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StringAttributeConfig {
    pub key: String,
    pub values: Vec<String>,
    pub enabled_regex_matching: bool,
    /// Accepted for Collector configs; regexes here are matched directly (no result cache).
    pub cache_max_size: usize,
    pub invert_match: bool,
}

/// `rate_limiting`: a token bucket of spans, refilled at `spans_per_second`, holding twice that.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitingConfig {
    pub spans_per_second: i64,
}

/// `span_count`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SpanCountConfig {
    pub min_spans: i64,
    /// 0: no upper bound.
    pub max_spans: i64,
}

/// `trace_state`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TraceStateConfig {
    pub key: String,
    pub values: Vec<String>,
}

/// `boolean_attribute`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BooleanAttributeConfig {
    pub key: String,
    pub value: bool,
    pub invert_match: bool,
}

/// `and`: sampled when every sub-policy samples.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AndConfig {
    pub and_sub_policy: Vec<PolicyConfig>,
}

/// `drop`: the trace is dropped (over every other policy) when every sub-policy samples.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DropConfig {
    pub drop_sub_policy: Vec<PolicyConfig>,
}

/// `not`: the opposite of its one sub-policy.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotConfig {
    pub not_sub_policy: Option<Box<PolicyConfig>>,
}

/// `composite`: sub-policies in order, each with a share of `max_total_spans_per_second`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CompositeConfig {
    pub max_total_spans_per_second: i64,
    /// Accepted and checked (every name a sub-policy); sub-policies are tried in their listed order, as in the
    /// Collector.
    pub policy_order: Vec<String>,
    pub composite_sub_policy: Vec<PolicyConfig>,
    pub rate_allocation: Vec<RateAllocationConfig>,
}

/// One `composite.rate_allocation` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateAllocationConfig {
    pub policy: String,
    pub percent: i64,
}

/// `genai_usage` (spanpipe): the trace's total tokens or cost, summed over every GenAI convention.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GenaiUsageConfig {
    /// Sampled when the trace's input + output tokens are at least this.
    pub min_total_tokens: Option<u64>,
    /// Sampled when the trace's cost (as the spans carry it) is at least this.
    pub min_total_cost: Option<f64>,
}

/// `span_type` (spanpipe): the trace holds a span of one of these MLflow span types.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SpanTypeConfig {
    pub span_types: Vec<String>,
    /// When set, the matching span must also have one of these statuses (`OK`, `ERROR`, `UNSET`).
    pub status_codes: Vec<String>,
}

/// `finish_reason` (spanpipe): a span's `gen_ai.response.finish_reasons` holds one of these.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FinishReasonConfig {
    pub finish_reasons: Vec<String>,
}

/// The policy types this build knows.
pub const POLICY_TYPES: &[&str] = &[
    "always_sample",
    "latency",
    "numeric_attribute",
    "probabilistic",
    "status_code",
    "string_attribute",
    "rate_limiting",
    "span_count",
    "trace_state",
    "boolean_attribute",
    "and",
    "drop",
    "not",
    "composite",
    "genai_usage",
    "span_type",
    "finish_reason",
];

/// A status code name as the Collector spells it: 0 unset, 1 ok, 2 error.
pub fn status_code(name: &str) -> Option<u64> {
    match name {
        "UNSET" => Some(0),
        "OK" => Some(1),
        "ERROR" => Some(2),
        _ => None,
    }
}

fn status_codes(codes: &[String], at: &[Key], key: &'static str) -> Result<(), Invalid> {
    for (i, c) in codes.iter().enumerate() {
        if status_code(c).is_none() {
            let keys = [at, &[Key::Name(key), Key::Index(i)]].concat();
            return Err(Invalid::new(
                keys,
                format!("unknown status code {c:?}: use OK, ERROR or UNSET"),
            ));
        }
    }
    Ok(())
}

impl TailSamplingConfig {
    /// What serde cannot check, located at the offending key.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.decision_wait.0.is_zero() {
            return Err(Invalid::new(
                vec![Key::Name("decision_wait")],
                "must be greater than 0",
            ));
        }
        if self.num_traces == 0 {
            return Err(Invalid::new(
                vec![Key::Name("num_traces")],
                "must be greater than 0",
            ));
        }
        if self.policies.is_empty() {
            return Err(Invalid::new(
                vec![Key::Name("policies")],
                "at least one policy is required",
            ));
        }
        validate_list(&self.policies, &[Key::Name("policies")], 1)
    }
}

/// Names unique and non-empty within one list; each entry valid.
fn validate_list(list: &[PolicyConfig], at: &[Key], depth: usize) -> Result<(), Invalid> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in list.iter().enumerate() {
        let here = [at, &[Key::Index(i)]].concat();
        if p.name.is_empty() {
            let keys = [here.as_slice(), &[Key::Name("name")]].concat();
            return Err(Invalid::new(keys, "policy name cannot be empty"));
        }
        if !seen.insert(p.name.as_str()) {
            let keys = [here.as_slice(), &[Key::Name("name")]].concat();
            return Err(Invalid::new(
                keys,
                format!("duplicate policy name {:?}", p.name),
            ));
        }
        p.validate(&here, depth)?;
    }
    Ok(())
}

impl PolicyConfig {
    /// Checks the section `type` names; `at` is this policy's key path, `depth` its nesting (top level 1).
    pub fn validate(&self, at: &[Key], depth: usize) -> Result<(), Invalid> {
        let key = |k: &'static str| [at, &[Key::Name(k)]].concat();
        let sub = |k: &'static str, f: &'static str| [at, &[Key::Name(k), Key::Name(f)]].concat();
        let err = |keys: Vec<Key>, m: &str| Err(Invalid::new(keys, m.to_string()));
        match self.kind.as_str() {
            "always_sample" => {}
            "latency" => {
                let l = &self.latency;
                if l.threshold_ms < 0 || l.upper_threshold_ms < 0 {
                    return err(key("latency"), "thresholds must not be negative");
                }
                if l.upper_threshold_ms != 0 && l.upper_threshold_ms < l.threshold_ms {
                    return err(
                        sub("latency", "upper_threshold_ms"),
                        "must be at least threshold_ms (or 0: no upper bound)",
                    );
                }
            }
            "numeric_attribute" => {
                let n = &self.numeric_attribute;
                if n.key.is_empty() {
                    return err(sub("numeric_attribute", "key"), "must not be empty");
                }
                if let (Some(a), Some(b)) = (n.min_value, n.max_value)
                    && a != 0
                    && b != 0
                    && b < a
                {
                    return err(
                        sub("numeric_attribute", "max_value"),
                        "must be at least min_value",
                    );
                }
            }
            "probabilistic" => {
                let p = self.probabilistic.sampling_percentage;
                if !p.is_finite() || p < 0.0 {
                    return err(
                        sub("probabilistic", "sampling_percentage"),
                        "must be a number from 0 (values of 100 and above sample every trace)",
                    );
                }
            }
            "status_code" => {
                let codes = &self.status_code.status_codes;
                if codes.is_empty() {
                    return err(
                        sub("status_code", "status_codes"),
                        "list at least one of OK, ERROR, UNSET",
                    );
                }
                status_codes(codes, &key("status_code"), "status_codes")?;
            }
            "string_attribute" => {
                let s = &self.string_attribute;
                if s.key.is_empty() {
                    return err(sub("string_attribute", "key"), "must not be empty");
                }
                if s.values.is_empty() {
                    return err(sub("string_attribute", "values"), "list at least one value");
                }
                if s.enabled_regex_matching {
                    for (i, v) in s.values.iter().enumerate() {
                        if let Err(e) = regex::Regex::new(v) {
                            let keys = [
                                at,
                                &[
                                    Key::Name("string_attribute"),
                                    Key::Name("values"),
                                    Key::Index(i),
                                ],
                            ]
                            .concat();
                            return Err(Invalid::new(
                                keys,
                                format!("invalid regular expression: {e}"),
                            ));
                        }
                    }
                }
            }
            "rate_limiting" => {
                if self.rate_limiting.spans_per_second <= 0 {
                    return err(
                        sub("rate_limiting", "spans_per_second"),
                        "must be greater than 0",
                    );
                }
            }
            "span_count" => {
                let s = &self.span_count;
                if s.min_spans < 0 || s.max_spans < 0 {
                    return err(key("span_count"), "counts must not be negative");
                }
                if s.max_spans != 0 && s.max_spans < s.min_spans {
                    return err(
                        sub("span_count", "max_spans"),
                        "must be at least min_spans (or 0: no upper bound)",
                    );
                }
            }
            "trace_state" => {
                let t = &self.trace_state;
                if t.key.is_empty() {
                    return err(sub("trace_state", "key"), "must not be empty");
                }
                if t.values.is_empty() {
                    return err(sub("trace_state", "values"), "list at least one value");
                }
                if t.values.iter().any(|v| t.key.len() + v.len() >= 256) {
                    return err(
                        sub("trace_state", "values"),
                        "a key=value pair must be shorter than 256 characters",
                    );
                }
            }
            "boolean_attribute" => {
                if self.boolean_attribute.key.is_empty() {
                    return err(sub("boolean_attribute", "key"), "must not be empty");
                }
            }
            "and" | "drop" | "composite" | "not" if depth >= MAX_POLICY_DEPTH => {
                return err(
                    key("type"),
                    &format!("policies nest at most {MAX_POLICY_DEPTH} levels deep"),
                );
            }
            "and" => {
                self.validate_subs(&self.and.and_sub_policy, at, "and", "and_sub_policy", depth)?
            }
            "drop" => self.validate_subs(
                &self.drop.drop_sub_policy,
                at,
                "drop",
                "drop_sub_policy",
                depth,
            )?,
            "not" => match &self.not.not_sub_policy {
                Some(p) => p.validate(&sub("not", "not_sub_policy"), depth + 1)?,
                None => return err(sub("not", "not_sub_policy"), "a sub-policy is required"),
            },
            "composite" => self.validate_composite(at, depth)?,
            "genai_usage" => {
                let g = &self.genai_usage;
                if g.min_total_tokens.is_none() && g.min_total_cost.is_none() {
                    return err(
                        key("genai_usage"),
                        "set min_total_tokens or min_total_cost (or both)",
                    );
                }
                if g.min_total_cost.is_some_and(|c| !c.is_finite() || c < 0.0) {
                    return err(
                        sub("genai_usage", "min_total_cost"),
                        "must be a number from 0",
                    );
                }
            }
            "span_type" => {
                if self.span_type.span_types.is_empty() {
                    return err(
                        sub("span_type", "span_types"),
                        "list at least one MLflow span type (e.g. LLM, TOOL, AGENT)",
                    );
                }
                status_codes(
                    &self.span_type.status_codes,
                    &key("span_type"),
                    "status_codes",
                )?;
            }
            "finish_reason" => {
                if self.finish_reason.finish_reasons.is_empty() {
                    return err(
                        sub("finish_reason", "finish_reasons"),
                        "list at least one finish reason (e.g. length, content_filter)",
                    );
                }
            }
            "" => return err(key("type"), "a policy type is required"),
            other => {
                return err(
                    key("type"),
                    &format!(
                        "unknown policy type {other:?}; known: {}",
                        POLICY_TYPES.join(", ")
                    ),
                );
            }
        }
        Ok(())
    }

    fn validate_subs(
        &self,
        subs: &[PolicyConfig],
        at: &[Key],
        section: &'static str,
        list: &'static str,
        depth: usize,
    ) -> Result<(), Invalid> {
        let here = [at, &[Key::Name(section), Key::Name(list)]].concat();
        if subs.is_empty() {
            return Err(Invalid::new(here, "list at least one sub-policy"));
        }
        validate_list(subs, &here, depth + 1)
    }

    fn validate_composite(&self, at: &[Key], depth: usize) -> Result<(), Invalid> {
        let c = &self.composite;
        let key = |f: &'static str| [at, &[Key::Name("composite"), Key::Name(f)]].concat();
        if c.max_total_spans_per_second <= 0 {
            return Err(Invalid::new(
                key("max_total_spans_per_second"),
                "must be greater than 0",
            ));
        }
        self.validate_subs(
            &c.composite_sub_policy,
            at,
            "composite",
            "composite_sub_policy",
            depth,
        )?;
        let known = |n: &str| c.composite_sub_policy.iter().any(|p| p.name == n);
        for (i, n) in c.policy_order.iter().enumerate() {
            if !known(n) {
                let keys = [key("policy_order"), vec![Key::Index(i)]].concat();
                return Err(Invalid::new(keys, format!("{n:?} is not a sub-policy")));
            }
        }
        let mut total = 0;
        for (i, r) in c.rate_allocation.iter().enumerate() {
            let keys = [key("rate_allocation"), vec![Key::Index(i)]].concat();
            if !known(&r.policy) {
                let keys = [keys, vec![Key::Name("policy")]].concat();
                let m = format!("{:?} is not a sub-policy", r.policy);
                return Err(Invalid::new(keys, m));
            }
            if !(0..=100).contains(&r.percent) {
                let keys = [keys, vec![Key::Name("percent")]].concat();
                return Err(Invalid::new(keys, "must be from 0 to 100"));
            }
            total += r.percent;
        }
        if total > 100 {
            return Err(Invalid::new(
                key("rate_allocation"),
                format!("percentages add up to {total}, more than 100"),
            ));
        }
        Ok(())
    }
}
