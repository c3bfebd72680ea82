//! The metrics the connector emits — the OTel GenAI semantic-convention client metrics plus the cost counter —
//! their units, buckets and which span-level labels each carries.

use crate::extract::{
    AGENT_NAME, ERROR_TYPE, EXPERIMENT, OPERATION, PROVIDER, REQUEST_MODEL, RESPONSE_MODEL,
    SERVER_ADDRESS, SERVER_PORT, TOOL_NAME,
};

/// `gen_ai.client.token.usage` buckets (semantic conventions).
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// `gen_ai.client.operation.duration` and `gen_ai.execute_tool.duration` buckets, seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// `gen_ai.invoke_agent.duration` buckets, seconds: 0.1 doubling to 409.6.
pub const AGENT_BUCKETS: [f64; 13] = [
    0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6,
];

/// The instrumentation scope of the emitted metrics.
pub const SCOPE_NAME: &str = "spanpipe.genai_metrics";

/// The emitted metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    TokenUsage = 0,
    OperationDuration = 1,
    ToolDuration = 2,
    AgentDuration = 3,
    Cost = 4,
}

/// Number of [`Metric`]s.
pub const METRICS: usize = 5;

/// What a metric is.
pub struct MetricDef {
    pub name: &'static str,
    pub description: &'static str,
    /// The unit; for [`Metric::Cost`] the price table's currency replaces it.
    pub unit: &'static str,
    /// Histogram bounds; `None`: a monotonic sum.
    pub bounds: Option<&'static [f64]>,
    /// The span-level label slots it carries (`experiment_id` and `gen_ai.agent.name` only when configured).
    pub slots: &'static [usize],
}

const CLIENT: &[usize] = &[
    OPERATION,
    PROVIDER,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    SERVER_ADDRESS,
    SERVER_PORT,
    AGENT_NAME,
    EXPERIMENT,
];
const CLIENT_ERR: &[usize] = &[
    OPERATION,
    PROVIDER,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    SERVER_ADDRESS,
    SERVER_PORT,
    ERROR_TYPE,
    AGENT_NAME,
    EXPERIMENT,
];

const DEFS: [MetricDef; METRICS] = [
    MetricDef {
        name: "gen_ai.client.token.usage",
        description: "Number of input and output tokens used.",
        unit: "{token}",
        bounds: Some(&TOKEN_BUCKETS),
        slots: CLIENT,
    },
    MetricDef {
        name: "gen_ai.client.operation.duration",
        description: "GenAI operation duration.",
        unit: "s",
        bounds: Some(&DURATION_BUCKETS),
        slots: CLIENT_ERR,
    },
    MetricDef {
        name: "gen_ai.execute_tool.duration",
        description: "Duration of tool executions.",
        unit: "s",
        bounds: Some(&DURATION_BUCKETS),
        slots: &[OPERATION, TOOL_NAME, ERROR_TYPE, AGENT_NAME, EXPERIMENT],
    },
    MetricDef {
        name: "gen_ai.invoke_agent.duration",
        description: "Duration of agent invocations.",
        unit: "s",
        bounds: Some(&AGENT_BUCKETS),
        slots: &[
            OPERATION,
            PROVIDER,
            REQUEST_MODEL,
            ERROR_TYPE,
            AGENT_NAME,
            EXPERIMENT,
        ],
    },
    MetricDef {
        name: "gen_ai.client.cost",
        description: "Cost of GenAI operations, from the spans' own cost or the operator's price table.",
        unit: "USD",
        bounds: None,
        slots: CLIENT,
    },
];

impl Metric {
    pub const ALL: [Metric; METRICS] = [
        Metric::TokenUsage,
        Metric::OperationDuration,
        Metric::ToolDuration,
        Metric::AgentDuration,
        Metric::Cost,
    ];

    pub fn def(self) -> &'static MetricDef {
        &DEFS[self as usize]
    }
}

/// The OTel attribute name of each label slot.
pub const SLOT_NAMES: [&str; crate::extract::SLOTS] = [
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "server.address",
    "server.port",
    "error.type",
    "gen_ai.tool.name",
    "gen_ai.agent.name",
    "experiment_id",
];

/// `gen_ai.token.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// Not a token metric.
    None = 0,
    Input = 1,
    Output = 2,
    CacheRead = 3,
    CacheCreation = 4,
    Reasoning = 5,
}

impl TokenType {
    pub fn as_str(self) -> Option<&'static str> {
        Some(match self {
            TokenType::None => return None,
            TokenType::Input => "input",
            TokenType::Output => "output",
            TokenType::CacheRead => "cache_read",
            TokenType::CacheCreation => "cache_creation",
            TokenType::Reasoning => "reasoning",
        })
    }
}
