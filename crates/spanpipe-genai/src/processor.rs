//! The `genai_cost` processor: writes each span's cost onto the span, from the operator's price table —
//! `gen_ai.usage.cost.amount` (double) and `gen_ai.usage.cost.currency`, and MLflow's `mlflow.llm.cost` JSON
//! (`{"input_cost": …, "output_cost": …, "total_cost": …}`, the form MLflow's SDK writes) so MLflow's UI shows
//! it. A span that already carries a cost (`gen_ai.usage.cost.amount` or OpenInference `llm.cost.total`) keeps
//! it; `mlflow.llm.cost` is only added when absent. Spans without token usage or with an unpriced model pass
//! unchanged (counted in `spanpipe_genai_unpriced_spans_total{processor, model}`).
//!
//! Put it before the exporters and before `genai_metrics`: the connector then counts the written cost as the
//! span's own. Edits go through the shared copy-on-write rewriter (`spanpipe_core::wire::rewrite_payload`, part by part).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use metrics::Counter;
use spanpipe_core::wire::{
    SpanCtx, SpanEdit, SpanEditor, WireError, put_bytes_field, put_varint, rewrite_payload,
};
use spanpipe_core::{
    Batch, BuildContext, ComponentError, ConfigError, ConsumeError, Consumer, Node, Processor,
    ProcessorFactory, Signal,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::GenaiCostConfig;
use crate::extract::cost_inputs;
use crate::price::{PriceTable, day_of};
use crate::price_source::PriceSource;

/// `Span.attributes`.
const SPAN_ATTRIBUTES: u32 = spanpipe_core::wire::fields::span::ATTRIBUTES;
/// Distinct `model` label values of the unpriced counter.
const MAX_UNPRICED_MODELS: usize = 256;

/// Builds `genai_cost` processors.
pub struct GenaiCostFactory;

impl ProcessorFactory for GenaiCostFactory {
    fn type_name(&self) -> &'static str {
        "genai_cost"
    }

    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }

    fn build(
        &self,
        ctx: &BuildContext,
        node: &Node,
        _signal: Signal,
        next: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Processor>, ConfigError> {
        let cfg: GenaiCostConfig = ctx.config(node)?;
        cfg.validate()
            .map_err(|(k, m)| ctx.invalid(node, &[k], m))?;
        let id = ctx.id.to_string();
        let prices = PriceSource::open(cfg.price_table.clone().into(), &id)
            .map_err(|e| ctx.invalid(node, &["price_table"], e))?;
        Ok(Arc::new(GenaiCost {
            id,
            prices: Arc::new(prices),
            every: cfg.reload_interval.0,
            mlflow_cost: cfg.mlflow_cost,
            next,
            unpriced: Mutex::new(HashMap::new()),
            cancel: CancellationToken::new(),
            task: Mutex::new(None),
        }))
    }
}

/// One `genai_cost` processor.
pub struct GenaiCost {
    id: String,
    prices: Arc<PriceSource>,
    every: std::time::Duration,
    mlflow_cost: bool,
    next: Arc<dyn Consumer>,
    unpriced: Mutex<HashMap<String, Counter>>,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Appends one `KeyValue` attribute (string or double value) to an encoded span.
fn push_attr(span: &mut Vec<u8>, key: &str, value: AttrValue<'_>) {
    let mut any = Vec::with_capacity(24);
    match value {
        AttrValue::Str(s) => put_bytes_field(&mut any, 1, s.as_bytes()),
        AttrValue::Double(d) => {
            put_varint(&mut any, (4 << 3) | 1);
            any.extend_from_slice(&d.to_le_bytes());
        }
    }
    let mut kv = Vec::with_capacity(key.len() + any.len() + 8);
    put_bytes_field(&mut kv, 1, key.as_bytes());
    put_bytes_field(&mut kv, 2, &any);
    put_bytes_field(span, SPAN_ATTRIBUTES, &kv);
}

enum AttrValue<'a> {
    Str(&'a str),
    Double(f64),
}

/// The rewriter's view: prices every span it can.
pub struct CostEditor<'t> {
    pub table: &'t PriceTable,
    pub mlflow_cost: bool,
    /// Models without a price, in the order met (for the unpriced counter).
    pub unpriced: Vec<String>,
    pub priced: usize,
}

impl SpanEditor for CostEditor<'_> {
    fn span(&mut self, ctx: &SpanCtx<'_>) -> Result<SpanEdit, WireError> {
        let c = cost_inputs(ctx.raw)?;
        let Some(usage) = c.usage.filter(|u| u.input.is_some() || u.output.is_some()) else {
            return Ok(SpanEdit::Keep);
        };
        if c.has_cost && (c.has_mlflow_cost || !self.mlflow_cost) {
            return Ok(SpanEdit::Keep);
        }
        let model = c.price_model.as_deref().unwrap_or("");
        let Some(cost) = self.table.cost(
            model,
            c.provider.as_deref(),
            day_of(c.start_unix_nano),
            &usage,
        ) else {
            if !c.has_cost {
                self.unpriced
                    .push(if model.is_empty() { "unknown" } else { model }.to_string());
            }
            return Ok(SpanEdit::Keep);
        };
        let mut out = Vec::with_capacity(ctx.raw.len() + 160);
        out.extend_from_slice(ctx.raw);
        if !c.has_cost {
            push_attr(
                &mut out,
                "gen_ai.usage.cost.amount",
                AttrValue::Double(cost.total()),
            );
            push_attr(
                &mut out,
                "gen_ai.usage.cost.currency",
                AttrValue::Str(&self.table.currency),
            );
        }
        if self.mlflow_cost && !c.has_mlflow_cost {
            // Finite numbers (prices and counts are): Rust prints them as plain JSON decimals.
            let json = format!(
                "{{\"input_cost\": {}, \"output_cost\": {}, \"total_cost\": {}}}",
                cost.input,
                cost.output,
                cost.total()
            );
            push_attr(&mut out, "mlflow.llm.cost", AttrValue::Str(&json));
        }
        self.priced += 1;
        Ok(SpanEdit::Replace(out))
    }
}

impl GenaiCost {
    fn count_unpriced(&self, models: &[String]) {
        let mut map = self.unpriced.lock().unwrap_or_else(|p| p.into_inner());
        for m in models {
            let key = if map.contains_key(m) || map.len() < MAX_UNPRICED_MODELS {
                m.as_str()
            } else {
                "_other"
            };
            let c = map.entry(key.to_string()).or_insert_with(|| {
                metrics::counter!("spanpipe_genai_unpriced_spans_total",
                    "processor" => self.id.clone(), "model" => key.to_string())
            });
            c.increment(1);
        }
    }
}

#[async_trait]
impl Consumer for GenaiCost {
    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        if batch.signal != Signal::Traces {
            return self.next.consume(batch).await;
        }
        let table = self.prices.table();
        let mut editor = CostEditor {
            table: &table,
            mlflow_cost: self.mlflow_cost,
            unpriced: Vec::new(),
            priced: 0,
        };
        let outcome =
            rewrite_payload(&batch.payload, &mut editor).map_err(ConsumeError::malformed_traces)?;
        if !editor.unpriced.is_empty() {
            self.count_unpriced(&editor.unpriced);
        }
        if let Some(p) = outcome.payload {
            batch.payload = p;
        }
        self.next.consume(batch).await
    }
}

#[async_trait]
impl Processor for GenaiCost {
    async fn start(&self) -> Result<(), ComponentError> {
        let h = self.prices.watch(self.every, self.cancel.clone());
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
        Ok(())
    }

    async fn shutdown(&self) {
        self.cancel.cancel();
        let t = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = t {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests;
