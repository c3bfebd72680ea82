//! The per-span decision, following the collector contrib's sampler modes: where the randomness comes from, the
//! threshold it is compared with, and the `tracestate` a kept span leaves with.

use spanpipe_core::wire::{Reader, WireError, put_bytes_field};

use super::config::{ProbabilisticSamplerConfig, SamplerMode};
use super::threshold::{
    MAX_ADJUSTED, NEVER, from_probability, hash_randomness, hash_threshold, probability,
    trace_id_randomness,
};
use super::tracestate::{OtState, parse_ot, serialize, split};

/// Where a decision's randomness came from (the collector's `policy` metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    TraceIdW3c = 0,
    SamplingRandomness = 1,
    TraceIdHash = 2,
    MissingRandomness = 3,
    SamplingPriority = 4,
}

impl Policy {
    pub const ALL: [Policy; 5] = [
        Policy::TraceIdW3c,
        Policy::SamplingRandomness,
        Policy::TraceIdHash,
        Policy::MissingRandomness,
        Policy::SamplingPriority,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::TraceIdW3c => "trace_id_w3c",
            Policy::SamplingRandomness => "sampling_randomness",
            Policy::TraceIdHash => "trace_id_hash",
            Policy::MissingRandomness => "missing_randomness",
            Policy::SamplingPriority => "sampling_priority",
        }
    }
}

/// What to do with one span.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    pub policy: Policy,
    /// The span's sampling information was missing or inconsistent.
    pub error: bool,
    /// The kept span re-encoded with its new `tracestate`; `None` when its bytes stay as they are.
    pub new_span: Option<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Proportional { ratio: f64 },
    Equalizing { threshold: u64 },
    HashSeed { seed: u32, threshold: u64 },
    Never,
}

/// The OpenTracing `sampling.priority` attribute: 0 forces a drop, a positive value a keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Priority {
    Defer,
    Must,
    Not,
}

/// A configured sampler.
#[derive(Clone, Debug)]
pub struct Sampler {
    kind: Kind,
    precision: u32,
    fail_closed: bool,
}

struct SpanFields<'a> {
    trace_id: &'a [u8],
    tracestate: &'a [u8],
    priority: Priority,
}

fn priority_of(kv: &[u8]) -> Result<Option<Priority>, WireError> {
    let mut r = Reader::new(kv);
    let mut is_key = false;
    let mut value = None;
    while let Some((n, f)) = r.next_field()? {
        match n {
            1 => {
                is_key = f.bytes("key")? == b"sampling.priority";
                if !is_key {
                    // The common case: another attribute; its value is not read.
                    return Ok(None);
                }
            }
            2 => value = Some(f.bytes("value")?),
            _ => {}
        }
    }
    let (true, Some(value)) = (is_key, value) else {
        return Ok(None);
    };
    let mut number = None;
    let mut r = Reader::new(value);
    while let Some((n, f)) = r.next_field()? {
        number = match n {
            1 => std::str::from_utf8(f.bytes("string_value")?)
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok()),
            3 => Some(f.varint("int_value")? as i64 as f64),
            4 => Some(f64::from_bits(f.fixed64("double_value")?)),
            _ => number,
        };
    }
    Ok(Some(match number {
        Some(0.0) => Priority::Not,
        Some(v) if v > 0.0 => Priority::Must,
        _ => Priority::Defer,
    }))
}

fn span_fields(span: &[u8]) -> Result<SpanFields<'_>, WireError> {
    let mut out = SpanFields {
        trace_id: &[],
        tracestate: &[],
        priority: Priority::Defer,
    };
    let mut r = Reader::new(span);
    while let Some((n, f)) = r.next_field()? {
        match n {
            1 => out.trace_id = f.bytes("trace_id")?,
            3 => out.tracestate = f.bytes("trace_state")?,
            9 => {
                if let Some(p) = priority_of(f.bytes("attribute")?)? {
                    out.priority = p;
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `span` with its `trace_state` (field 3) set to `ts`, other fields copied.
fn with_tracestate(span: &[u8], ts: &str) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(span.len() + ts.len() + 4);
    let mut r = Reader::new(span);
    let mut written = false;
    loop {
        let start = r.position();
        let Some((n, _)) = r.next_field()? else {
            break;
        };
        if n == 3 {
            if !written {
                put_bytes_field(&mut out, 3, ts.as_bytes());
                written = true;
            }
        } else {
            out.extend_from_slice(span.get(start..r.position()).unwrap_or_default());
        }
    }
    if !written {
        put_bytes_field(&mut out, 3, ts.as_bytes());
    }
    Ok(out)
}

impl Sampler {
    /// The sampler for a validated config (`pct` its percentage).
    pub fn new(cfg: &ProbabilisticSamplerConfig, pct: f32) -> Self {
        let pct = pct.min(100.0);
        let ratio = (f64::from(pct) / 100.0).max(1.0 / MAX_ADJUSTED as f64);
        let precision = cfg.sampling_precision;
        let kind = if pct == 0.0 {
            Kind::Never
        } else {
            match cfg.mode() {
                SamplerMode::Proportional => Kind::Proportional { ratio },
                SamplerMode::Equalizing => Kind::Equalizing {
                    threshold: from_probability(ratio, precision).unwrap_or(NEVER),
                },
                SamplerMode::HashSeed => match hash_threshold(pct) {
                    Some(threshold) => Kind::HashSeed {
                        seed: cfg.hash_seed,
                        threshold,
                    },
                    None => Kind::Never,
                },
            }
        };
        Sampler {
            kind,
            precision,
            fail_closed: cfg.fail_closed,
        }
    }

    /// Decides for one encoded span.
    pub fn decide(&self, span: &[u8]) -> Result<Decision, WireError> {
        let f = span_fields(span)?;
        if f.priority == Priority::Not {
            return Ok(Decision {
                keep: false,
                policy: Policy::SamplingPriority,
                error: false,
                new_span: None,
            });
        }
        let ts = std::str::from_utf8(f.tracestate).ok();
        let (ot_raw, others) = ts.map(split).unwrap_or((None, Vec::new()));
        let parsed = match ts {
            None => Err("tracestate is not UTF-8"),
            Some(_) => ot_raw
                .map(parse_ot)
                .transpose()
                .map(Option::unwrap_or_default),
        };
        let (mut ot, mut error) = match parsed {
            Ok(ot) => (ot, false),
            Err(_) => (OtState::default(), true),
        };
        let ot_usable = !error;
        let (rnd, mut policy) = match self.kind {
            Kind::HashSeed { seed, .. } => {
                if ot.rv.is_some() || ot.th.is_some() {
                    // Specified OTel sampling information is present: this mode must not overwrite it.
                    error = true;
                }
                (hash_randomness(f.trace_id, seed), Policy::TraceIdHash)
            }
            _ => match ot.rv {
                Some(rv) if !error => (rv, Policy::SamplingRandomness),
                _ if error || f.trace_id.iter().all(|&b| b == 0) => {
                    error = true;
                    (MAX_ADJUSTED - 1, Policy::MissingRandomness)
                }
                _ => (trace_id_randomness(f.trace_id), Policy::TraceIdW3c),
            },
        };
        if !error && ot.th.is_some_and(|th| rnd < th) {
            // A threshold the randomness contradicts: the span should not have been sampled upstream.
            ot.th = None;
            error = true;
        }
        let must = f.priority == Priority::Must;
        if must {
            policy = Policy::SamplingPriority;
        }
        if error && !must && !self.fail_closed {
            return Ok(Decision {
                keep: true,
                policy,
                error,
                new_span: None,
            });
        }
        let threshold = if must {
            0
        } else if error {
            NEVER
        } else {
            match self.kind {
                Kind::Proportional { ratio } => {
                    let incoming = ot.th.map_or(1.0, probability);
                    from_probability(incoming * ratio, self.precision).unwrap_or(NEVER)
                }
                Kind::Equalizing { threshold } | Kind::HashSeed { threshold, .. } => threshold,
                Kind::Never => NEVER,
            }
        };
        let keep = threshold < NEVER && rnd >= threshold;
        let mut decision = Decision {
            keep,
            policy,
            error,
            new_span: None,
        };
        if !keep || !ot_usable || (error && must) {
            return Ok(decision);
        }
        if matches!(self.kind, Kind::HashSeed { .. }) {
            ot.rv = Some(rnd);
        }
        // Never raise an upstream threshold's probability (equalizing with a harder upstream sampler).
        if ot.th.is_none_or(|old| old <= threshold) {
            ot.th = Some(threshold);
        }
        let new_ts = serialize(&ot, &others);
        if Some(new_ts.as_str()) != ts {
            decision.new_span = Some(with_tracestate(span, &new_ts)?);
        }
        Ok(decision)
    }
}
