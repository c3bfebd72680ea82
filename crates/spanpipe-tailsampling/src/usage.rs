//! A span's GenAI token usage and cost, read from every convention in use, normalised. Kept apart (and free of
//! sampling logic) so other components can share it.
//!
//! Tokens, first convention present wins (a span carrying several is counted once):
//! 1. OTel GenAI: `gen_ai.usage.input_tokens` / `gen_ai.usage.output_tokens`;
//! 2. OpenInference: `llm.token_count.prompt` / `llm.token_count.completion` (`llm.token_count.total` when the
//!    parts are absent);
//! 3. Traceloop (OpenLLMetry): `gen_ai.usage.prompt_tokens` / `gen_ai.usage.completion_tokens`;
//! 4. MLflow: `mlflow.chat.tokenUsage`, a JSON object `{"input_tokens", "output_tokens", "total_tokens"}`.
//!
//! Cost: `gen_ai.usage.cost.amount`, OpenInference `llm.cost.total`, or MLflow's `mlflow.llm.cost` JSON
//! (`total_cost`). Numbers may be ints, doubles or numeric strings (MLflow stores every value JSON-encoded);
//! negative or non-finite numbers are ignored.

use spanpipe_core::wire::{AnyValueRef, RawValue};

/// Which convention a count came from, in precedence order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Convention {
    OtelGenAi = 0,
    OpenInference = 1,
    Traceloop = 2,
    Mlflow = 3,
}

/// Counts of one convention.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counts {
    input: Option<u64>,
    output: Option<u64>,
    total: Option<u64>,
}

impl Counts {
    fn total(&self) -> Option<u64> {
        match (self.input, self.output) {
            (None, None) => self.total,
            (i, o) => Some(i.unwrap_or(0).saturating_add(o.unwrap_or(0))),
        }
    }
}

/// Usage attributes of one span, gathered in the one pass over its attributes ([`SpanUsage::offer`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanUsage {
    by_convention: [Counts; 4],
    cost: [Option<f64>; 3],
}

/// What a span used, normalised.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input + output, or the convention's own total when it gives only that.
    pub total_tokens: u64,
    /// The convention the counts came from; `None` when the span carries no token counts.
    pub convention: Option<Convention>,
    /// The span's own cost, when it carries one.
    pub cost: Option<f64>,
}

impl Usage {
    /// Whether the span carries token counts or a cost.
    pub fn is_present(&self) -> bool {
        self.convention.is_some() || self.cost.is_some()
    }
}

/// A non-negative integer count from an attribute value (int, integral double or numeric string).
pub fn count(value: AnyValueRef<'_>) -> Option<u64> {
    match value {
        AnyValueRef::Int(i) => u64::try_from(i).ok(),
        AnyValueRef::Double(d) if d.is_finite() && d >= 0.0 => Some(d as u64),
        AnyValueRef::Str(s) => {
            let s = s.trim().trim_matches('"');
            s.parse::<u64>()
                .ok()
                .or_else(|| amount(AnyValueRef::Str(s)).map(|d| d as u64))
        }
        _ => None,
    }
}

/// A non-negative finite number from an attribute value.
pub fn amount(value: AnyValueRef<'_>) -> Option<f64> {
    let d = match value {
        AnyValueRef::Int(i) => i as f64,
        AnyValueRef::Double(d) => d,
        AnyValueRef::Str(s) => s.trim().trim_matches('"').parse::<f64>().ok()?,
        _ => return None,
    };
    (d.is_finite() && d >= 0.0).then_some(d)
}

/// A non-negative integer field of a JSON object.
fn json_count(obj: &serde_json::Value, key: &str) -> Option<u64> {
    let v = obj.get(key)?;
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(|d| d as u64)
    })
}

/// The JSON object an MLflow attribute holds (itself possibly JSON-encoded once more).
fn json_object(value: AnyValueRef<'_>) -> Option<serde_json::Value> {
    let s = value.as_str()?;
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    match v {
        serde_json::Value::String(inner) => serde_json::from_str(&inner).ok(),
        v @ serde_json::Value::Object(_) => Some(v),
        _ => None,
    }
}

impl SpanUsage {
    /// Looks at one attribute; returns whether it was a usage attribute.
    pub fn offer(&mut self, key: &[u8], value: RawValue<'_>) -> bool {
        let c = &mut self.by_convention;
        let v = || count(value.get());
        match key {
            b"gen_ai.usage.input_tokens" => c[0].input = v(),
            b"gen_ai.usage.output_tokens" => c[0].output = v(),
            b"llm.token_count.prompt" => c[1].input = v(),
            b"llm.token_count.completion" => c[1].output = v(),
            b"llm.token_count.total" => c[1].total = v(),
            b"gen_ai.usage.prompt_tokens" => c[2].input = v(),
            b"gen_ai.usage.completion_tokens" => c[2].output = v(),
            b"mlflow.chat.tokenUsage" => {
                if let Some(obj) = json_object(value.get()) {
                    c[3] = Counts {
                        input: json_count(&obj, "input_tokens"),
                        output: json_count(&obj, "output_tokens"),
                        total: json_count(&obj, "total_tokens"),
                    };
                }
            }
            b"gen_ai.usage.cost.amount" => self.cost[0] = amount(value.get()),
            b"llm.cost.total" => self.cost[1] = amount(value.get()),
            b"mlflow.llm.cost" => {
                self.cost[2] = json_object(value.get())
                    .and_then(|o| o.get("total_cost")?.as_f64())
                    .filter(|d| d.is_finite() && *d >= 0.0);
            }
            _ => return false,
        }
        true
    }

    /// The span's usage: the first convention with any count, and the first cost present.
    pub fn finish(&self) -> Usage {
        const ORDER: [Convention; 4] = [
            Convention::OtelGenAi,
            Convention::OpenInference,
            Convention::Traceloop,
            Convention::Mlflow,
        ];
        let mut u = Usage {
            cost: self.cost.iter().find_map(|c| *c),
            ..Usage::default()
        };
        for (counts, conv) in self.by_convention.iter().zip(ORDER) {
            if let Some(total) = counts.total() {
                u.input_tokens = counts.input.unwrap_or(0);
                u.output_tokens = counts.output.unwrap_or(0);
                u.total_tokens = total;
                u.convention = Some(conv);
                break;
            }
        }
        u
    }
}
