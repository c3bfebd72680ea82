//! Realistic GenAI agent spans for benchmarks and load tests: traces of an AGENT root with LLM, TOOL and
//! RETRIEVER children, `mlflow.*` (JSON-encoded) and `gen_ai.*` attributes, about 500 bytes a span in protobuf,
//! a few errors.

pub mod grpc_sink;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(k: &str, v: &str) -> KeyValue {
    kv(k, any_value::Value::StringValue(v.into()))
}

const TYPES: [&str; 4] = ["\"LLM\"", "\"TOOL\"", "\"RETRIEVER\"", "\"CHAT_MODEL\""];

/// One span: trace `t` (unique per call site), index `i` in the trace (0 = root).
pub fn agent_span(seed: u64, t: u64, i: u64) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&seed.to_be_bytes());
    trace_id[8..].copy_from_slice(&t.to_be_bytes());
    let span_id = (t.wrapping_mul(1 << 12) + i + 1) ^ seed.rotate_left(32);
    let root_id = (t.wrapping_mul(1 << 12) + 1) ^ seed.rotate_left(32);
    let start = 1_760_000_000_000_000_000 + t * 1_000_000_000 + i * 3_000_000;
    let ty = if i == 0 {
        "\"AGENT\""
    } else {
        TYPES[(i % 4) as usize]
    };
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_be_bytes().to_vec(),
        parent_span_id: if i == 0 {
            vec![]
        } else {
            root_id.to_be_bytes().to_vec()
        },
        name: if i == 0 {
            "invoke_agent travel_planner".into()
        } else {
            format!("chat gpt-4o step {i}")
        },
        kind: 1,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000 * (5 + (i * 37) % 900),
        attributes: vec![
            s("mlflow.spanType", ty),
            s("mlflow.traceRequestId", &format!("\"tr-{t:032x}\"")),
            s(
                "mlflow.spanInputs",
                "{\"messages\": [{\"role\": \"user\", \"content\": \"Plan a trip to Lisbon\"}]}",
            ),
            s(
                "mlflow.spanOutputs",
                "{\"choices\": [{\"message\": {\"content\": \"Day 1: Alfama\"}}]}",
            ),
            s(
                "gen_ai.operation.name",
                if i == 0 { "invoke_agent" } else { "chat" },
            ),
            s("gen_ai.system", "openai"),
            s("gen_ai.request.model", "gpt-4o-mini"),
            kv("gen_ai.usage.input_tokens", any_value::Value::IntValue(412)),
            kv("gen_ai.usage.output_tokens", any_value::Value::IntValue(96)),
            s("session.id", "sess-42"),
        ],
        status: Some(Status {
            message: String::new(),
            code: if i % 23 == 7 { 2 } else { 1 },
        }),
        ..Default::default()
    }
}

/// `traces` traces of `spans_per_trace` spans under one resource; `seed` makes ids unique across calls.
pub fn agent_request(seed: u64, traces: u64, spans_per_trace: u64) -> ExportTraceServiceRequest {
    let spans = (0..traces)
        .flat_map(|t| (0..spans_per_trace).map(move |i| (t, i)))
        .map(|(t, i)| agent_span(seed, t, i))
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    s("service.name", "travel-agent"),
                    s("telemetry.sdk.name", "opentelemetry"),
                    s("deployment.environment", "staging"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "mlflow.tracing.provider".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}
