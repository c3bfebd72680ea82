//! A span's MLflow span type: the JSON-decoded `mlflow.spanType` attribute or, when it is missing or `UNKNOWN`,
//! the type MLflow's server infers from other instrumentations' attributes.
//!
//! The inference mirrors `mlflow/tracing/otel/translation/` (MLflow 3.17): translators are tried in MLflow's
//! order and the first one that yields a type wins, even when that type is `UNKNOWN`. Attribute values are
//! JSON-decoded first, as the server does after storing every value JSON-encoded. Only string values can match
//! (MLflow looks them up in string-keyed tables). Spring AI's table is a subset of the GenAI one that precedes it,
//! and Google ADK has none, so neither appears here.

use std::borrow::Cow;

use spanpipe_core::wire::RawValue;

use crate::text::json_str;

/// The type of a span that says nothing about it.
pub const UNKNOWN: &str = "UNKNOWN";

/// The attributes that decide a span's type, gathered in the one pass over a span's attributes.
#[derive(Clone, Copy, Debug, Default)]
pub struct TypeHints<'a> {
    pub mlflow_span_type: Option<&'a str>,
    pub openinference_kind: Option<&'a str>,
    pub gen_ai_operation: Option<&'a str>,
    pub gen_ai_agent_name: Option<&'a str>,
    /// `span.type` (Claude Code, VoltAgent).
    pub span_type: Option<&'a str>,
    /// `entity.type` (VoltAgent).
    pub entity_type: Option<&'a str>,
    pub traceloop_kind: Option<&'a str>,
    /// `ai.operationId` (Vercel AI SDK).
    pub vercel_operation: Option<&'a str>,
    pub laminar_type: Option<&'a str>,
    pub langfuse_type: Option<&'a str>,
    /// `gen_ai.request.model` is present (LiveKit treats such spans as LLM calls).
    pub has_request_model: bool,
    /// The type LiveKit's translator gives the first `lk.*` key it recognises, in attribute order.
    pub livekit_key_type: Option<&'static str>,
}

impl<'a> TypeHints<'a> {
    /// Looks at one attribute; returns false when the key is none of the hints (the caller may use it).
    #[inline]
    pub fn offer(&mut self, key: &[u8], value: RawValue<'a>) -> bool {
        let s = || value.get().as_str();
        match key {
            b"mlflow.spanType" => self.mlflow_span_type = s(),
            b"openinference.span.kind" => self.openinference_kind = s(),
            b"gen_ai.operation.name" => self.gen_ai_operation = s(),
            b"gen_ai.agent.name" => self.gen_ai_agent_name = s(),
            b"gen_ai.request.model" => self.has_request_model = true,
            b"span.type" => self.span_type = s(),
            b"entity.type" => self.entity_type = s(),
            b"traceloop.span.kind" => self.traceloop_kind = s(),
            b"ai.operationId" => self.vercel_operation = s(),
            b"lmnr.span.type" => self.laminar_type = s(),
            b"langfuse.observation.type" => self.langfuse_type = s(),
            _ if key.starts_with(b"lk.") => {
                if self.livekit_key_type.is_none() {
                    self.livekit_key_type = livekit_key(key);
                }
            }
            _ => return false,
        }
        true
    }

    /// The span's type: `mlflow.spanType` unless missing or `UNKNOWN`, else inferred, else `UNKNOWN`.
    pub fn resolve(&self) -> Cow<'a, str> {
        if let Some(raw) = self.mlflow_span_type {
            let t = json_str(raw);
            if !t.is_empty() && t != UNKNOWN {
                return t;
            }
        }
        Cow::Borrowed(self.infer().unwrap_or(UNKNOWN))
    }

    /// MLflow's `translate_span_type_from_otel`.
    pub fn infer(&self) -> Option<&'static str> {
        let get = |v: Option<&'a str>| v.filter(|s| !s.is_empty()).map(json_str);
        if let Some(k) = get(self.openinference_kind)
            && let Some(t) = lookup(OPENINFERENCE, &k)
        {
            return Some(t);
        }
        if get(self.gen_ai_agent_name).is_some_and(|n| n == "gemini-cli")
            && let Some(op) = get(self.gen_ai_operation)
            && let Some(t) = lookup(GEMINI_CLI, &op)
        {
            return Some(t);
        }
        if let Some(t) = get(self.span_type).and_then(|s| claude_code(&s)) {
            return Some(t);
        }
        if let Some(op) = get(self.gen_ai_operation)
            && let Some(t) = lookup(GEN_AI, &op)
        {
            return Some(t);
        }
        for (value, table) in [
            (self.traceloop_kind, TRACELOOP),
            (self.vercel_operation, VERCEL_AI),
            (self.span_type, VOLTAGENT),
            (self.entity_type, VOLTAGENT),
        ] {
            if let Some(v) = get(value)
                && let Some(t) = lookup(table, &v)
            {
                return Some(t);
            }
        }
        if let Some(t) = self.livekit() {
            return Some(t);
        }
        for (value, table) in [(self.laminar_type, LAMINAR), (self.langfuse_type, LANGFUSE)] {
            if let Some(v) = get(value)
                && let Some(t) = lookup(table, &v)
            {
                return Some(t);
            }
        }
        None
    }

    fn livekit(&self) -> Option<&'static str> {
        if self.has_request_model {
            return Some("LLM");
        }
        if let Some(op) = self.gen_ai_operation.filter(|s| !s.is_empty()) {
            let op = json_str(op).to_lowercase();
            if let Some(t) = lookup(GEN_AI, &op) {
                return Some(t);
            }
        }
        self.livekit_key_type
    }
}

fn lookup(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
}

/// Claude Code's `span.type`: `claude_code.<kind>`, or the bare kind from other Claude Code versions.
fn claude_code(value: &str) -> Option<&'static str> {
    let kind = value.strip_prefix("claude_code.").unwrap_or(value);
    lookup(CLAUDE_CODE, kind)
}

/// LiveKit's per-key rules, for a key starting with `lk.`.
fn livekit_key(key: &[u8]) -> Option<&'static str> {
    match key {
        b"lk.retry_count" => Some("LLM"),
        b"lk.agent_name" | b"lk.instructions" | b"lk.generation_id" => Some("AGENT"),
        b"lk.input_text"
        | b"lk.user_transcript"
        | b"lk.transcript_confidence"
        | b"lk.transcription_delay" => Some(UNKNOWN),
        _ if key.starts_with(b"lk.function_tool") => Some("TOOL"),
        _ if key.starts_with(b"lk.tts") => Some(UNKNOWN),
        _ => None,
    }
}

const OPENINFERENCE: &[(&str, &str)] = &[
    ("TOOL", "TOOL"),
    ("CHAIN", "CHAIN"),
    ("LLM", "LLM"),
    ("RETRIEVER", "RETRIEVER"),
    ("EMBEDDING", "EMBEDDING"),
    ("AGENT", "AGENT"),
    ("RERANKER", "RERANKER"),
    ("UNKNOWN", UNKNOWN),
    ("GUARDRAIL", "GUARDRAIL"),
    ("EVALUATOR", "EVALUATOR"),
];

const GEMINI_CLI: &[(&str, &str)] = &[
    ("llm_call", "LLM"),
    ("tool_call", "TOOL"),
    ("agent_call", "AGENT"),
];

const CLAUDE_CODE: &[(&str, &str)] = &[
    ("interaction", "AGENT"),
    ("llm_request", "LLM"),
    ("tool", "TOOL"),
];

const GEN_AI: &[(&str, &str)] = &[
    ("chat", "CHAT_MODEL"),
    ("create_agent", "AGENT"),
    ("embeddings", "EMBEDDING"),
    ("execute_tool", "TOOL"),
    ("generate_content", "LLM"),
    ("invoke_agent", "AGENT"),
    ("text_completion", "LLM"),
    ("response", "LLM"),
];

const TRACELOOP: &[(&str, &str)] = &[
    ("workflow", "WORKFLOW"),
    ("task", "TASK"),
    ("agent", "AGENT"),
    ("tool", "TOOL"),
    ("unknown", UNKNOWN),
];

const VERCEL_AI: &[(&str, &str)] = &[
    ("ai.generateText", "LLM"),
    ("ai.generateText.doGenerate", "LLM"),
    ("ai.toolCall", "TOOL"),
    ("ai.streamText", "LLM"),
    ("ai.streamText.doStream", "LLM"),
    ("ai.generateObject", "LLM"),
    ("ai.generateObject.doGenerate", "LLM"),
    ("ai.streamObject", "LLM"),
    ("ai.streamObject.doStream", "LLM"),
    ("ai.embed", "EMBEDDING"),
    ("ai.embed.doEmbed", "EMBEDDING"),
    ("ai.embedMany", "EMBEDDING"),
];

const VOLTAGENT: &[(&str, &str)] = &[
    ("agent", "AGENT"),
    ("llm", "LLM"),
    ("tool", "TOOL"),
    ("memory", "MEMORY"),
];

const LAMINAR: &[(&str, &str)] = &[
    ("LLM", "LLM"),
    ("TOOL", "TOOL"),
    ("DEFAULT", "CHAIN"),
    ("PIPELINE", "CHAIN"),
    ("EXECUTOR", "AGENT"),
    ("EVALUATOR", "EVALUATOR"),
    ("HUMAN_EVALUATOR", "EVALUATOR"),
    ("EVALUATION", "EVALUATOR"),
    ("CACHED", "LLM"),
];

const LANGFUSE: &[(&str, &str)] = &[
    ("generation", "LLM"),
    ("embedding", "EMBEDDING"),
    ("tool", "TOOL"),
    ("retriever", "RETRIEVER"),
    ("agent", "AGENT"),
    ("chain", "CHAIN"),
    ("evaluator", "EVALUATOR"),
    ("guardrail", "GUARDRAIL"),
    ("span", UNKNOWN),
];

#[cfg(test)]
mod tests;
