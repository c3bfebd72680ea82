//! Sampling policies built from their config, and how their decisions combine into the trace's decision (the
//! Collector contrib's rules: `drop` wins, then an inverted "not sampled", then any "sampled", then an inverted
//! "sampled" when no policy said "not sampled"; otherwise the trace is not sampled).

mod combine;
mod genai;
mod leaf;

use std::time::Instant;

use spanpipe_core::wire::WireError;

use crate::config::PolicyConfig;
use crate::trace::TraceData;

pub use combine::{Composite, TokenBucket};
pub use genai::{FinishReason, GenaiUsage, SpanType, trace_usage};
pub use leaf::{
    AttrMatch, DEFAULT_HASH_SALT, Latency, NumericRange, Probabilistic, StatusCodes, TraceState,
    fnv1a64, threshold,
};

/// One policy's verdict on one trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    Sampled,
    NotSampled,
    /// From an `invert_match` policy whose key/value did not occur (deprecated in the Collector, kept).
    InvertSampled,
    /// From an `invert_match` policy whose key/value occurred: not sampled, over other policies' "sampled".
    InvertNotSampled,
    /// From a `drop` policy: not sampled, over everything.
    Dropped,
}

impl Decision {
    /// The Collector's metric labels: `sampled` and `decision`.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Decision::Sampled | Decision::InvertSampled => ("true", "sampled"),
            Decision::NotSampled | Decision::InvertNotSampled => ("false", "not_sampled"),
            Decision::Dropped => ("false", "dropped"),
        }
    }

    fn sampled_if(yes: bool) -> Decision {
        if yes {
            Decision::Sampled
        } else {
            Decision::NotSampled
        }
    }

    /// Whether a sub-policy of `and` / `drop` / `composite` counts this as a match.
    fn is_sampled(self) -> bool {
        matches!(self, Decision::Sampled | Decision::InvertSampled)
    }
}

/// A built policy.
#[derive(Debug)]
pub enum Policy {
    AlwaysSample,
    Latency(Latency),
    Numeric(NumericRange),
    Probabilistic(Probabilistic),
    StatusCode(StatusCodes),
    StringAttribute(AttrMatch),
    BooleanAttribute(AttrMatch),
    RateLimiting(TokenBucket),
    SpanCount { min: usize, max: Option<usize> },
    TraceState(TraceState),
    And(Vec<Policy>),
    Drop(Vec<Policy>),
    Not(Box<Policy>),
    Composite(Composite),
    GenaiUsage(GenaiUsage),
    SpanType(SpanType),
    FinishReason(FinishReason),
}

impl Policy {
    /// Builds a validated config ([`crate::config::TailSamplingConfig::validate`]); `now` starts the clocks of
    /// rate-based policies.
    pub fn build(cfg: &PolicyConfig, now: Instant) -> Policy {
        match cfg.kind.as_str() {
            "latency" => Policy::Latency(Latency::new(&cfg.latency)),
            "numeric_attribute" => Policy::Numeric(NumericRange::new(&cfg.numeric_attribute)),
            "probabilistic" => Policy::Probabilistic(Probabilistic::new(&cfg.probabilistic)),
            "status_code" => Policy::StatusCode(StatusCodes::new(&cfg.status_code.status_codes)),
            "string_attribute" => Policy::StringAttribute(AttrMatch::string(&cfg.string_attribute)),
            "boolean_attribute" => {
                Policy::BooleanAttribute(AttrMatch::boolean(&cfg.boolean_attribute))
            }
            "rate_limiting" => Policy::RateLimiting(TokenBucket::new(
                cfg.rate_limiting.spans_per_second.max(0) as f64,
                now,
            )),
            "span_count" => Policy::SpanCount {
                min: cfg.span_count.min_spans.max(0) as usize,
                max: (cfg.span_count.max_spans > 0).then_some(cfg.span_count.max_spans as usize),
            },
            "trace_state" => Policy::TraceState(TraceState::new(&cfg.trace_state)),
            "and" => Policy::And(build_all(&cfg.and.and_sub_policy, now)),
            "drop" => Policy::Drop(build_all(&cfg.drop.drop_sub_policy, now)),
            "not" => Policy::Not(Box::new(match &cfg.not.not_sub_policy {
                Some(p) => Policy::build(p, now),
                None => Policy::AlwaysSample,
            })),
            "composite" => Policy::Composite(Composite::new(&cfg.composite, now)),
            "genai_usage" => Policy::GenaiUsage(GenaiUsage::new(&cfg.genai_usage)),
            "span_type" => Policy::SpanType(SpanType::new(&cfg.span_type)),
            "finish_reason" => Policy::FinishReason(FinishReason::new(&cfg.finish_reason)),
            // "always_sample"; validation refuses unknown types.
            _ => Policy::AlwaysSample,
        }
    }

    /// This policy's verdict; an error when the trace's bytes cannot be read (the policy then has no say).
    pub fn evaluate(&mut self, t: &TraceData<'_>, now: Instant) -> Result<Decision, WireError> {
        Ok(match self {
            Policy::AlwaysSample => Decision::Sampled,
            Policy::Latency(p) => Decision::sampled_if(p.matches(t)?),
            Policy::Numeric(p) => p.evaluate(t)?,
            Policy::Probabilistic(p) => Decision::sampled_if(p.matches(t.trace_id)),
            Policy::StatusCode(p) => Decision::sampled_if(p.matches(t)?),
            Policy::StringAttribute(p) | Policy::BooleanAttribute(p) => p.evaluate(t)?,
            Policy::RateLimiting(b) => Decision::sampled_if(b.take(t.span_count as f64, now)),
            Policy::SpanCount { min, max } => {
                Decision::sampled_if(t.span_count >= *min && max.is_none_or(|m| t.span_count <= m))
            }
            Policy::TraceState(p) => Decision::sampled_if(p.matches(t)?),
            Policy::And(subs) => {
                let mut all = true;
                for s in subs.iter_mut() {
                    if !s.evaluate(t, now)?.is_sampled() {
                        all = false;
                        break;
                    }
                }
                Decision::sampled_if(all)
            }
            Policy::Drop(subs) => {
                let mut all = true;
                for s in subs.iter_mut() {
                    if !s.evaluate(t, now)?.is_sampled() {
                        all = false;
                        break;
                    }
                }
                if all {
                    Decision::Dropped
                } else {
                    Decision::NotSampled
                }
            }
            Policy::Not(sub) => match sub.evaluate(t, now)? {
                Decision::Sampled => Decision::NotSampled,
                Decision::NotSampled => Decision::Sampled,
                other => other,
            },
            Policy::Composite(c) => c.evaluate(t, now)?,
            Policy::GenaiUsage(p) => Decision::sampled_if(p.matches(t)?),
            Policy::SpanType(p) => Decision::sampled_if(p.matches(t)?),
            Policy::FinishReason(p) => Decision::sampled_if(p.matches(t)?),
        })
    }
}

fn build_all(cfgs: &[PolicyConfig], now: Instant) -> Vec<Policy> {
    cfgs.iter().map(|c| Policy::build(c, now)).collect()
}

/// The trace's decision from every policy's verdict (in the order evaluated): `drop` wins, then an inverted
/// "not sampled", then "sampled", then an inverted "sampled" if no policy said "not sampled".
pub fn final_decision(verdicts: impl IntoIterator<Item = Decision>) -> Decision {
    let (mut dropped, mut inv_not, mut sampled, mut inv_sampled, mut not) =
        (false, false, false, false, false);
    for d in verdicts {
        match d {
            Decision::Dropped => dropped = true,
            Decision::InvertNotSampled => inv_not = true,
            Decision::Sampled => sampled = true,
            Decision::InvertSampled => inv_sampled = true,
            Decision::NotSampled => not = true,
        }
    }
    if dropped {
        Decision::Dropped
    } else if inv_not {
        Decision::NotSampled
    } else if sampled || (inv_sampled && !not) {
        Decision::Sampled
    } else {
        Decision::NotSampled
    }
}
