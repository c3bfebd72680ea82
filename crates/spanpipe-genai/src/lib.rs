//! GenAI metrics and cost, computed centrally for every framework that reaches spanpipe.
//!
//! - The `genai_metrics` connector (traces → metrics): the OTel GenAI semantic-convention metrics
//!   `gen_ai.client.token.usage`, `gen_ai.client.operation.duration`, `gen_ai.execute_tool.duration`,
//!   `gen_ai.invoke_agent.duration`, and the cost counter `gen_ai.client.cost`, from spans of any convention
//!   (OTel GenAI, OpenInference, Traceloop, MLflow), with MLflow's rule against counting rolled-up usage twice.
//! - The `genai_cost` processor: writes each span's cost onto it (`gen_ai.usage.cost.*`, `mlflow.llm.cost`).
//!
//! Prices come only from the operator's price table file ([`price`]), reloaded when it changes and on SIGHUP.
//! Spans are read through `spanpipe_core::wire`; the series store, experiment and tag labels and the waiting
//! room are those of `mlflow_spanmetrics` (`spanpipe-spanmetrics`).
//!
//! ```yaml
//! connectors:
//!   genai_metrics:
//!     cost: { price_table: /etc/spanpipe/genai-prices.yaml }
//! service:
//!   pipelines:
//!     traces:  { receivers: [otlp], exporters: [mlflow, genai_metrics] }
//!     metrics: { receivers: [genai_metrics], exporters: [prometheus] }
//! ```

pub mod config;
pub mod connector;
pub mod emit;
pub mod extract;
pub mod labels;
pub mod price;
pub mod price_source;
pub mod processor;
pub mod rollup;
pub mod state;
pub mod store;
#[cfg(test)]
mod test_util;
pub mod tree;
pub mod usage;

pub use config::{GenaiCostConfig, GenaiMetricsConfig, Settings};
pub use connector::{GenaiMetricsConnector, GenaiMetricsFactory};
pub use processor::{GenaiCost, GenaiCostFactory};

use spanpipe_core::Registry;

/// Registers the `genai_metrics` connector and the `genai_cost` processor.
pub fn register(registry: &mut Registry) {
    registry.connector(GenaiMetricsFactory);
    registry.processor(GenaiCostFactory);
}
