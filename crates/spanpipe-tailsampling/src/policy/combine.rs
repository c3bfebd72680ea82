//! Rate-based policies: `rate_limiting` (a token bucket of spans) and `composite` (sub-policies in order, each
//! with a per-second span allocation), as the Collector contrib has them.

use std::time::Instant;

use spanpipe_core::wire::WireError;

use super::{Decision, Policy};
use crate::config::CompositeConfig;
use crate::trace::TraceData;

/// Spans per second with a burst of twice that (golang.org/x/time/rate as contrib uses it): a trace is sampled
/// when the bucket holds at least its span count.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn new(per_second: f64, now: Instant) -> Self {
        TokenBucket {
            rate: per_second,
            capacity: per_second * 2.0,
            tokens: per_second * 2.0,
            at: now,
        }
    }

    /// Takes `n` tokens if the bucket holds them.
    pub fn take(&mut self, n: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if n <= self.tokens {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// One `composite` sub-policy and its share.
#[derive(Debug)]
struct Share {
    policy: Policy,
    allocated: f64,
    used: f64,
}

/// `composite`: the first sub-policy (in listed order) that samples decides; the trace is kept when that
/// sub-policy's spans this second, with this trace, stay within its allocation and the total. Allocations are
/// `percent` of `max_total_spans_per_second` (`percent: 0`: an equal share); a sub-policy without an allocation
/// gets none, as in the Collector.
#[derive(Debug)]
pub struct Composite {
    subs: Vec<Share>,
    max_total: f64,
    epoch: Instant,
    second: u64,
}

impl Composite {
    pub fn new(c: &CompositeConfig, now: Instant) -> Self {
        let total = c.max_total_spans_per_second.max(0) as f64;
        let equal = total / c.composite_sub_policy.len().max(1) as f64;
        let subs = c
            .composite_sub_policy
            .iter()
            .map(|p| {
                let allocated = c
                    .rate_allocation
                    .iter()
                    .find(|r| r.policy == p.name)
                    .map_or(0.0, |r| {
                        if r.percent > 0 {
                            r.percent as f64 / 100.0 * total
                        } else {
                            equal
                        }
                    });
                Share {
                    policy: Policy::build(p, now),
                    allocated,
                    used: 0.0,
                }
            })
            .collect();
        Composite {
            subs,
            max_total: total,
            epoch: now,
            second: 0,
        }
    }

    pub fn evaluate(&mut self, t: &TraceData<'_>, now: Instant) -> Result<Decision, WireError> {
        let second = now.saturating_duration_since(self.epoch).as_secs();
        if second != self.second {
            self.second = second;
            for s in &mut self.subs {
                s.used = 0.0;
            }
        }
        let spans = t.span_count as f64;
        for s in &mut self.subs {
            if s.policy.evaluate(t, now)?.is_sampled() {
                let would = s.used + spans;
                if would <= s.allocated && would <= self.max_total {
                    s.used = would;
                    return Ok(Decision::Sampled);
                }
                return Ok(Decision::NotSampled);
            }
        }
        Ok(Decision::NotSampled)
    }
}
