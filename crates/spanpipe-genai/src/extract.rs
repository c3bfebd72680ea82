//! One pass over an encoded `ExportTraceServiceRequest` (through `spanpipe_core::wire`): per span its ids, its
//! GenAI facts (operation, provider, models, server, error, tool, agent, experiment, token usage, cost it
//! carries, duration) and, for root spans, its trace's tag labels. Runs outside the connector's lock; values are
//! borrowed from the request.

use std::borrow::Cow;

use spanpipe_core::wire::{AnyValueRef, RawValue, SpanView, WireError, walk_spans};
use spanpipe_core::{Metadata, WireParts};
use spanpipe_spanmetrics::config::MAX_EXPERIMENT_SOURCES;
use spanpipe_spanmetrics::extract::{
    ResourceFacts, RootAttrs, experiment, offer_experiment, root_labels,
};
use spanpipe_spanmetrics::labels::TraceLabels;
use spanpipe_spanmetrics::span_type::TypeHints;
use spanpipe_spanmetrics::text::{cap_len, json_str, tag_text};

use crate::config::Settings;
use crate::usage::{Usage, UsageHints};

/// The span-level label slots, in this order (see [`crate::labels`] for which metric uses which).
pub const SLOTS: usize = 10;
pub const OPERATION: usize = 0;
pub const PROVIDER: usize = 1;
pub const REQUEST_MODEL: usize = 2;
pub const RESPONSE_MODEL: usize = 3;
pub const SERVER_ADDRESS: usize = 4;
pub const SERVER_PORT: usize = 5;
pub const ERROR_TYPE: usize = 6;
pub const TOOL_NAME: usize = 7;
pub const AGENT_NAME: usize = 8;
pub const EXPERIMENT: usize = 9;

/// What kind of GenAI operation a span is, by its (possibly inferred) `gen_ai.operation.name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A client call (chat, text_completion, embeddings, ...): `gen_ai.client.operation.duration`.
    Client,
    /// `execute_tool`: `gen_ai.execute_tool.duration` (when the tool name is known).
    Tool,
    /// `invoke_agent`: `gen_ai.invoke_agent.duration`.
    Agent,
}

/// A cost the span already carries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CarriedCost {
    pub amount: f64,
}

/// What one span contributes, borrowed from the request.
#[derive(Clone, Debug)]
pub struct SpanFacts<'a> {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// `None` for a root span.
    pub parent_id: Option<[u8; 8]>,
    pub start_unix_nano: u64,
    pub duration_s: f64,
    /// `None`: the span is no GenAI operation and carries no usage or cost (it still links its trace's tree).
    pub genai: Option<GenaiFacts<'a>>,
}

/// The GenAI part of a span.
#[derive(Clone, Debug)]
pub struct GenaiFacts<'a> {
    pub op: Option<OpKind>,
    pub labels: [Option<Cow<'a, str>>; SLOTS],
    /// The model a price is looked up by (MLflow's resolution order).
    pub price_model: Option<Cow<'a, str>>,
    pub usage: Option<Usage>,
    pub carried_cost: Option<CarriedCost>,
    /// The currency the carried cost says it is in (`gen_ai.usage.cost.currency`), if any.
    pub carried_currency: Option<Cow<'a, str>>,
}

/// Every span of a request and the tag labels of each root span's trace.
#[derive(Debug, Default)]
pub struct BatchFacts<'a> {
    pub spans: Vec<SpanFacts<'a>>,
    pub roots: Vec<([u8; 16], TraceLabels)>,
    /// Label values cut to `max_label_value_length`.
    pub truncated: usize,
}

/// The GenAI attributes of one span, gathered in one pass.
#[derive(Default)]
struct Hints<'a> {
    types: TypeHints<'a>,
    usage: UsageHints<'a>,
    // Provider, in MLflow's order: its own attribute, OpenInference, OTel, Traceloop (`gen_ai.system`).
    mlflow_provider: Option<RawValue<'a>>,
    llm_provider: Option<RawValue<'a>>,
    provider_name: Option<RawValue<'a>>,
    system: Option<RawValue<'a>>,
    request_model: Option<RawValue<'a>>,
    response_model: Option<RawValue<'a>>,
    mlflow_model: Option<RawValue<'a>>,
    oi_response_model: Option<RawValue<'a>>,
    oi_model: Option<RawValue<'a>>,
    oi_request_model: Option<RawValue<'a>>,
    oi_embedding_model: Option<RawValue<'a>>,
    server_address: Option<RawValue<'a>>,
    server_port: Option<RawValue<'a>>,
    error_type: Option<RawValue<'a>>,
    tool_name: Option<RawValue<'a>>,
    oi_tool_name: Option<RawValue<'a>>,
    cost: CostHints<'a>,
}

/// The cost attributes of a span, gathered in the one pass over its attributes: the one reading of a carried
/// cost (`genai_metrics`, `genai_cost` and `tail_sampling`'s `genai_usage` policy share it).
#[derive(Clone, Copy, Debug, Default)]
pub struct CostHints<'a> {
    amount: Option<RawValue<'a>>,
    currency: Option<RawValue<'a>>,
    oi_total: Option<RawValue<'a>>,
    mlflow: Option<RawValue<'a>>,
}

impl<'a> CostHints<'a> {
    /// Looks at one attribute; false when it is not a cost attribute.
    #[inline]
    pub fn offer(&mut self, key: &[u8], v: RawValue<'a>) -> bool {
        let slot = match key {
            b"gen_ai.usage.cost.amount" => &mut self.amount,
            b"gen_ai.usage.cost.currency" => &mut self.currency,
            b"llm.cost.total" => &mut self.oi_total,
            b"mlflow.llm.cost" => &mut self.mlflow,
            _ => return false,
        };
        *slot = Some(v);
        true
    }

    /// A carried cost: `gen_ai.usage.cost.amount`, else OpenInference `llm.cost.total`, else MLflow's
    /// `mlflow.llm.cost` `total_cost`. Negative or non-finite amounts are no cost.
    pub fn carried(&self) -> Option<CarriedCost> {
        let num = |v: Option<RawValue<'_>>| -> Option<f64> {
            match v?.get() {
                AnyValueRef::Double(d) => Some(d),
                AnyValueRef::Int(i) => Some(i as f64),
                AnyValueRef::Str(s) => json_str(s).trim().parse().ok(),
                _ => None,
            }
            .filter(|d| d.is_finite() && *d >= 0.0)
        };
        let mlflow = || -> Option<f64> {
            let AnyValueRef::Str(s) = self.mlflow?.get() else {
                return None;
            };
            let j: serde_json::Value = serde_json::from_str(s).ok()?;
            j.get("total_cost")?
                .as_f64()
                .filter(|d| d.is_finite() && *d >= 0.0)
        };
        num(self.amount)
            .or_else(|| num(self.oi_total))
            .or_else(mlflow)
            .map(|amount| CarriedCost { amount })
    }

    /// The currency the carried cost says it is in (`gen_ai.usage.cost.currency`), if any.
    pub fn currency(&self) -> Option<Cow<'a, str>> {
        text(self.currency)
    }
}

impl<'a> Hints<'a> {
    #[inline]
    fn offer(&mut self, k: &[u8], v: RawValue<'a>) -> bool {
        if self.usage.offer(k, v) || self.cost.offer(k, v) {
            return true;
        }
        let slot = match k {
            b"mlflow.llm.provider" => &mut self.mlflow_provider,
            b"llm.provider" => &mut self.llm_provider,
            b"gen_ai.provider.name" => &mut self.provider_name,
            b"gen_ai.system" => &mut self.system,
            b"gen_ai.response.model" => &mut self.response_model,
            b"mlflow.llm.model" => &mut self.mlflow_model,
            b"llm.response.model_name" => &mut self.oi_response_model,
            b"llm.model_name" => &mut self.oi_model,
            b"llm.request.model_name" => &mut self.oi_request_model,
            b"embedding.model_name" => &mut self.oi_embedding_model,
            b"server.address" => &mut self.server_address,
            b"server.port" => &mut self.server_port,
            b"error.type" => &mut self.error_type,
            b"gen_ai.tool.name" => &mut self.tool_name,
            b"tool.name" => &mut self.oi_tool_name,
            b"gen_ai.request.model" => {
                // Also a span-type hint (LiveKit).
                self.types.offer(k, v);
                &mut self.request_model
            }
            _ => return self.types.offer(k, v),
        };
        *slot = Some(v);
        true
    }
}

/// Reads every span of `payload`. A malformed request structure is an error; a malformed attribute reads as
/// absent.
pub fn extract<'a>(
    s: &'a Settings,
    payload: &'a (impl WireParts + ?Sized),
    metadata: &'a Metadata,
    items_hint: usize,
) -> Result<BatchFacts<'a>, WireError> {
    let mut out = BatchFacts {
        spans: Vec::with_capacity(items_hint),
        roots: Vec::new(),
        truncated: 0,
    };
    let mut res: Option<ResourceFacts<'a>> = None;
    walk_spans(payload, |ctx| {
        let r = ResourceFacts::cached(&mut res, &s.labels, ctx.resource);
        let facts = span_facts(s, ctx.raw, r, metadata, &mut out)?;
        out.spans.push(facts);
        Ok(())
    })?;
    Ok(out)
}

/// A string label value: JSON-decoded strings (MLflow writes its attributes JSON-encoded), scalars as text.
fn text(v: Option<RawValue<'_>>) -> Option<Cow<'_, str>> {
    let v = v?.get();
    let t = match v {
        AnyValueRef::Str(s) => json_str(s),
        other => tag_text(other)?,
    };
    (!t.is_empty()).then_some(t)
}

/// The operation name MLflow's span type stands for, when the span does not say.
fn operation_of_type(span_type: &str) -> Option<&'static str> {
    Some(match span_type {
        "LLM" | "CHAT_MODEL" => "chat",
        "EMBEDDING" => "embeddings",
        "TOOL" => "execute_tool",
        "AGENT" => "invoke_agent",
        _ => return None,
    })
}

fn op_kind(op: &str) -> OpKind {
    match op {
        "execute_tool" => OpKind::Tool,
        "invoke_agent" => OpKind::Agent,
        _ => OpKind::Client,
    }
}

fn span_facts<'a>(
    s: &'a Settings,
    raw: &'a [u8],
    r: &ResourceFacts<'a>,
    md: &'a Metadata,
    out: &mut BatchFacts<'a>,
) -> Result<SpanFacts<'a>, WireError> {
    let mut h = Hints::default();
    let mut exp: [Option<AnyValueRef<'a>>; MAX_EXPERIMENT_SOURCES] = [None; MAX_EXPERIMENT_SOURCES];
    let mut ra = RootAttrs::default();
    let tagged = !s.labels.label_names.is_empty();
    let span = SpanView::read(raw, |k, v| {
        if h.offer(k, v) {
            return;
        }
        if s.experiment_id {
            offer_experiment(&s.labels, k, v, &mut exp);
        }
        if tagged {
            ra.offer(&s.labels, k, v);
        }
    })?;
    let root = span.parent_span_id.is_empty();
    let mut trace_id = [0u8; 16];
    if let Ok(t) = <[u8; 16]>::try_from(span.trace_id) {
        trace_id = t;
    }
    let span_id = <[u8; 8]>::try_from(span.span_id).unwrap_or_default();
    let parent_id = (!root).then(|| <[u8; 8]>::try_from(span.parent_span_id).unwrap_or_default());
    if root && tagged {
        let labels = root_labels(&s.labels, &ra, r, &mut out.truncated);
        out.roots.push((trace_id, labels));
    }
    let duration_s = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano) as f64
        / 1e9;
    let mut facts = SpanFacts {
        trace_id,
        span_id,
        parent_id,
        start_unix_nano: span.start_time_unix_nano,
        duration_s,
        genai: None,
    };
    let usage = h.usage.resolve();
    let carried = h.cost.carried();
    let op: Option<Cow<'a, str>> = h
        .types
        .gen_ai_operation
        .map(json_str)
        .filter(|o| !o.is_empty());
    let op = op.or_else(|| {
        let t = h.types.resolve();
        operation_of_type(&t).map(Cow::Borrowed)
    });
    if op.is_none() && usage.is_none() && carried.is_none() {
        return Ok(facts);
    }
    let provider = provider(&h);
    let request_model = text(h.request_model)
        .or_else(|| text(h.oi_request_model))
        .or_else(|| text(h.oi_model))
        .or_else(|| text(h.mlflow_model))
        .or_else(|| text(h.oi_embedding_model));
    let response_model = text(h.response_model).or_else(|| text(h.oi_response_model));
    let price_model = price_model(&h);
    let error =
        (span.status_code == 2).then(|| text(h.error_type).unwrap_or(Cow::Borrowed("_OTHER")));
    let tool = text(h.tool_name).or_else(|| text(h.oi_tool_name));
    let agent = if s.agent_name {
        h.types
            .gen_ai_agent_name
            .map(json_str)
            .filter(|a| !a.is_empty())
    } else {
        None
    };
    let experiment = s.experiment_id.then(|| experiment(&s.labels, &exp, r, md));
    let kind = op.as_deref().map(op_kind);
    let mut labels: [Option<Cow<'a, str>>; SLOTS] = [
        op,
        provider,
        request_model,
        response_model,
        text(h.server_address),
        text(h.server_port),
        error,
        tool,
        agent,
        experiment,
    ];
    for l in labels.iter_mut() {
        if let Some(v) = l.take() {
            let (v, cut) = cap_len(v, s.max_label_len);
            out.truncated += usize::from(cut);
            *l = Some(v);
        }
    }
    facts.genai = Some(GenaiFacts {
        op: kind,
        labels,
        price_model,
        usage,
        carried_cost: carried,
        carried_currency: h.cost.currency(),
    });
    Ok(facts)
}

/// What the `genai_cost` processor needs of a span.
#[derive(Debug)]
pub struct CostInputs<'a> {
    pub usage: Option<Usage>,
    pub price_model: Option<Cow<'a, str>>,
    pub provider: Option<Cow<'a, str>>,
    pub start_unix_nano: u64,
    /// `gen_ai.usage.cost.amount` or `llm.cost.total` is present: the span keeps its cost.
    pub has_cost: bool,
    /// `mlflow.llm.cost` is present.
    pub has_mlflow_cost: bool,
}

/// Reads the cost inputs of one encoded span.
pub fn cost_inputs(raw: &[u8]) -> Result<CostInputs<'_>, WireError> {
    let mut h = Hints::default();
    let span = SpanView::read(raw, |k, v| {
        h.offer(k, v);
    })?;
    Ok(CostInputs {
        usage: h.usage.resolve(),
        price_model: price_model(&h),
        provider: provider(&h),
        start_unix_nano: span.start_time_unix_nano,
        has_cost: h.cost.amount.is_some() || h.cost.oi_total.is_some(),
        has_mlflow_cost: h.cost.mlflow.is_some(),
    })
}

/// The model a price is looked up by, in MLflow's order: `mlflow.llm.model`, OpenInference's model names,
/// then OTel's response and request model.
fn price_model<'a>(h: &Hints<'a>) -> Option<Cow<'a, str>> {
    text(h.mlflow_model)
        .or_else(|| text(h.oi_response_model))
        .or_else(|| text(h.oi_model))
        .or_else(|| text(h.oi_request_model))
        .or_else(|| text(h.oi_embedding_model))
        .or_else(|| text(h.response_model))
        .or_else(|| text(h.request_model))
}

/// The provider, in MLflow's order: its own `mlflow.llm.provider`, OpenInference `llm.provider`, OTel
/// `gen_ai.provider.name`, then the deprecated `gen_ai.system`.
fn provider<'a>(h: &Hints<'a>) -> Option<Cow<'a, str>> {
    text(h.mlflow_provider)
        .or_else(|| text(h.llm_provider))
        .or_else(|| text(h.provider_name))
        .or_else(|| text(h.system))
}

#[cfg(test)]
mod tests;
