//! The `tail_sampling` processor: the OTel Collector contrib's trace-aware sampling (every span of a trace held
//! until `decision_wait`, then one decision for the whole trace from its policies), working on the encoded
//! requests through `spanpipe_core::wire`, with policies for GenAI traces the Collector has not: a trace's total
//! tokens or cost (`genai_usage`), an MLflow span type in it (`span_type`), a model's finish reason
//! (`finish_reason`).
//!
//! - [`config`]: the Collector's options and validation; [`policy`]: the policies and how verdicts combine;
//! - [`trace`]: a buffered trace's pieces and span walks; [`facts`]: what most policies ask, in one walk; [`buffer`]: the trace table, its bounds and the
//!   decision caches; [`processor`]: the consumer, the decision task and the drain on shutdown;
//! - [`metrics`]: its telemetry. Token usage and cost are read and summed by `spanpipe_genai::rollup`, exactly
//!   as the `genai_metrics` connector counts them.

pub mod buffer;
pub mod config;
pub mod facts;
pub mod lru;
pub mod metrics;
pub mod policy;
pub mod processor;
pub mod trace;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use spanpipe_core::budget::MemoryBudget;
use spanpipe_core::{
    BuildContext, ConfigError, Consumer, Node, Processor, ProcessorFactory, Registry, Signal,
};

pub use config::TailSamplingConfig;
pub use processor::TailSampling;

use buffer::{Buffer, Limits, Sampler};
use metrics::Metrics;
use policy::Policy;

/// Registers every component of this crate.
pub fn register(registry: &mut Registry) {
    registry.processor(TailSamplingFactory);
}

/// Builds `tail_sampling` processors.
pub struct TailSamplingFactory;

impl ProcessorFactory for TailSamplingFactory {
    fn type_name(&self) -> &'static str {
        "tail_sampling"
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
        let cfg: TailSamplingConfig = ctx.config(node)?;
        cfg.validate().map_err(|e| e.locate(ctx, node))?;
        Ok(Arc::new(build(
            &ctx.id.to_string(),
            &cfg,
            next,
            MemoryBudget::global().clone(),
        )))
    }
}

/// A processor from a validated config (also the entry point of tests and benches).
pub fn build(
    id: &str,
    cfg: &TailSamplingConfig,
    next: Arc<dyn Consumer>,
    budget: Arc<MemoryBudget>,
) -> TailSampling {
    let names: Vec<String> = cfg.policies.iter().map(|p| p.name.clone()).collect();
    let metrics = Arc::new(Metrics::new(id, &names));
    let buffer = Buffer::new(
        limits(cfg),
        sampler(cfg, Instant::now()),
        metrics.clone(),
        cfg.expected_new_traces_per_sec
            .saturating_mul(cfg.decision_wait.0.as_secs().max(1)) as usize,
    );
    TailSampling::new(
        id.to_string(),
        buffer,
        metrics,
        next,
        budget,
        cfg.drop_pending_traces_on_shutdown,
    )
}

/// The table bounds of a config.
pub fn limits(cfg: &TailSamplingConfig) -> Limits {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Limits {
        decision_wait: cfg.decision_wait.0,
        num_traces: size(cfg.num_traces),
        max_trace_bytes: size(cfg.maximum_trace_size_bytes.0),
        max_buffered_bytes: size(cfg.max_buffered_bytes.0),
        sampled_cache: cfg.decision_cache.sampled_cache_size,
        non_sampled_cache: cfg.decision_cache.non_sampled_cache_size,
    }
}

/// The policies of a config, clocks started at `now`.
pub fn sampler(cfg: &TailSamplingConfig, now: Instant) -> Sampler {
    Sampler::new(
        cfg.policies
            .iter()
            .map(|p| (Policy::build(p, now), p.kind == "drop"))
            .collect(),
        cfg.sample_on_first_match,
    )
}
