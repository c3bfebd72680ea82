//! Token counts of one span, normalised from every convention in use, in the order MLflow's server reads them
//! (`mlflow/tracing/otel/translation/__init__.py`, `_get_token_usage`, MLflow 3.17): MLflow's own
//! `mlflow.chat.tokenUsage` JSON wins; else the first convention that has an input, output or total count —
//! OpenInference (`llm.token_count.*`), then the OTel GenAI conventions (`gen_ai.usage.input_tokens` /
//! `output_tokens`), then Traceloop (`gen_ai.usage.prompt_tokens` / `completion_tokens`, `llm.usage.total_tokens`).
//! A span carrying two conventions (PydanticAI with OpenInference writes both) is counted once.

use spanpipe_core::wire::{AnyValueRef, RawValue};

/// One span's token counts; `None` is "not reported" (not zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub total: Option<u64>,
    /// Input tokens read from a prompt cache (a part of `input`).
    pub cache_read: Option<u64>,
    /// Input tokens written to a prompt cache (a part of `input`).
    pub cache_write: Option<u64>,
    /// Output tokens spent reasoning (a part of `output`).
    pub reasoning: Option<u64>,
}

impl Usage {
    /// True when MLflow would see token usage on the span (any of input, output, total).
    pub fn is_present(&self) -> bool {
        self.input.is_some() || self.output.is_some() || self.total.is_some()
    }
}

/// The token attributes of one convention.
#[derive(Clone, Copy, Debug, Default)]
struct Convention<'a> {
    input: Option<RawValue<'a>>,
    output: Option<RawValue<'a>>,
    total: Option<RawValue<'a>>,
    cache_read: Option<RawValue<'a>>,
    cache_write: Option<RawValue<'a>>,
    /// The legacy name of `cache_write` (OTel `gen_ai.usage.cache_creation.input_tokens`), read when it is absent.
    cache_write_legacy: Option<RawValue<'a>>,
    reasoning: Option<RawValue<'a>>,
}

impl Convention<'_> {
    fn usage(&self) -> Option<Usage> {
        let u = Usage {
            input: self.input.and_then(count),
            output: self.output.and_then(count),
            total: self.total.and_then(count),
            cache_read: self.cache_read.and_then(count),
            cache_write: self
                .cache_write
                .and_then(count)
                .or_else(|| self.cache_write_legacy.and_then(count)),
            reasoning: self.reasoning.and_then(count),
        };
        u.is_present().then_some(u)
    }
}

/// The token attributes of a span, gathered in the one pass over its attributes.
#[derive(Clone, Copy, Debug, Default)]
pub struct UsageHints<'a> {
    mlflow: Option<RawValue<'a>>,
    openinference: Convention<'a>,
    genai: Convention<'a>,
    traceloop: Convention<'a>,
}

impl<'a> UsageHints<'a> {
    /// Looks at one attribute; false when it is not a token count.
    #[inline]
    pub fn offer(&mut self, key: &[u8], v: RawValue<'a>) -> bool {
        let slot = match key {
            b"mlflow.chat.tokenUsage" => &mut self.mlflow,
            b"llm.token_count.prompt" => &mut self.openinference.input,
            b"llm.token_count.completion" => &mut self.openinference.output,
            b"llm.token_count.total" => &mut self.openinference.total,
            b"llm.token_count.prompt_details.cache_read" => &mut self.openinference.cache_read,
            b"llm.token_count.prompt_details.cache_write" => &mut self.openinference.cache_write,
            b"llm.token_count.completion_details.reasoning" => &mut self.openinference.reasoning,
            b"gen_ai.usage.input_tokens" => &mut self.genai.input,
            b"gen_ai.usage.output_tokens" => &mut self.genai.output,
            b"gen_ai.usage.cache_read.input_tokens" => &mut self.genai.cache_read,
            b"gen_ai.usage.cache_write.input_tokens" => &mut self.genai.cache_write,
            b"gen_ai.usage.cache_creation.input_tokens" => &mut self.genai.cache_write_legacy,
            b"gen_ai.usage.reasoning.output_tokens" => &mut self.genai.reasoning,
            b"gen_ai.usage.prompt_tokens" => &mut self.traceloop.input,
            b"gen_ai.usage.completion_tokens" => &mut self.traceloop.output,
            b"llm.usage.total_tokens" => &mut self.traceloop.total,
            _ => return false,
        };
        *slot = Some(v);
        true
    }

    /// The span's usage as MLflow would record it, `None` when it has none. A total missing next to input and
    /// output is their sum, as in MLflow.
    pub fn resolve(&self) -> Option<Usage> {
        let mut u = match self.mlflow.and_then(mlflow_json) {
            Some(u) => u,
            None => [self.openinference, self.genai, self.traceloop]
                .iter()
                .find_map(Convention::usage)?,
        };
        if u.total.is_none()
            && let (Some(i), Some(o)) = (u.input, u.output)
        {
            u.total = Some(i.saturating_add(o));
        }
        Some(u)
    }
}

/// A token count as MLflow's `_parse_int_attribute` reads one: an integer, or a string holding one (possibly
/// JSON-quoted); a whole double is accepted too. Negative or fractional values are not counts.
pub fn count(v: RawValue<'_>) -> Option<u64> {
    match v.get() {
        AnyValueRef::Int(i) => u64::try_from(i).ok(),
        AnyValueRef::Double(d) if d.is_finite() && d >= 0.0 && d.fract() == 0.0 && d < 1e18 => {
            Some(d as u64)
        }
        AnyValueRef::Str(s) => {
            let s = s.trim();
            let s = s
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(s);
            s.parse::<u64>().ok()
        }
        _ => None,
    }
}

/// MLflow's `mlflow.chat.tokenUsage`: a JSON object (as a string attribute) with `input_tokens`,
/// `output_tokens`, `total_tokens` and optionally `cache_read_input_tokens` / `cache_creation_input_tokens`.
fn mlflow_json(v: RawValue<'_>) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct Json {
        input_tokens: Option<serde_json::Value>,
        output_tokens: Option<serde_json::Value>,
        total_tokens: Option<serde_json::Value>,
        cache_read_input_tokens: Option<serde_json::Value>,
        cache_creation_input_tokens: Option<serde_json::Value>,
    }
    let AnyValueRef::Str(s) = v.get() else {
        return None;
    };
    // A JSON object, or (rarely) a JSON string holding one.
    let j: Json = serde_json::from_str(s).ok().or_else(|| {
        serde_json::from_str::<String>(s)
            .ok()
            .and_then(|inner| serde_json::from_str(&inner).ok())
    })?;
    let n = |v: &Option<serde_json::Value>| -> Option<u64> {
        match v.as_ref()? {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let u = Usage {
        input: n(&j.input_tokens),
        output: n(&j.output_tokens),
        total: n(&j.total_tokens),
        cache_read: n(&j.cache_read_input_tokens),
        cache_write: n(&j.cache_creation_input_tokens),
        reasoning: None,
    };
    u.is_present().then_some(u)
}

#[cfg(test)]
mod tests;
