//! Unit tests: config validation, every policy, how verdicts combine, the trace table's bounds and decision
//! caches, the processor end to end over a collecting consumer, and hostile input. Shared span builders here.

mod policies;
mod processor;
mod table;

use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use spanpipe_core::Metadata;
use spanpipe_core::budget::Held;

use crate::config::{PolicyConfig, TailSamplingConfig};
use crate::policy::{Decision, Policy};
use crate::trace::{Piece, TraceData};

// ---------- building spans ----------

pub(super) fn v_str(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.into())
}

pub(super) fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

pub(super) fn tid(n: u64) -> Vec<u8> {
    let mut id = vec![0xab; 8];
    id.extend_from_slice(&n.to_be_bytes());
    id
}

/// A span of trace `t`: id `s`, parent `p` (0: root), status code, attributes.
pub(super) fn span(t: u64, s: u64, p: u64, code: i32, attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: tid(t),
        span_id: (s + 1).to_be_bytes().to_vec(),
        parent_span_id: if p == 0 {
            vec![]
        } else {
            (p + 1).to_be_bytes().to_vec()
        },
        name: format!("s{s}"),
        start_time_unix_nano: 1_000_000_000 + s * 1_000_000,
        end_time_unix_nano: 1_000_000_000 + s * 1_000_000 + 5_000_000,
        attributes: attrs,
        status: Some(Status {
            code,
            message: String::new(),
        }),
        ..Default::default()
    }
}

pub(super) fn request(resource: Vec<KeyValue>, spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

pub(super) fn piece(bytes: Vec<u8>) -> Piece {
    let spans = spanpipe_core::wire::scan_traces(&bytes, |_, _| {})
        .map(|s| s.spans)
        .unwrap_or(1);
    Piece {
        bytes: bytes.into(),
        spans,
        metadata: Metadata::default(),
        held: Held::none(),
    }
}

pub(super) fn policy(yaml: &str) -> PolicyConfig {
    let node = spanpipe_config::load_str("p.yaml", yaml).expect("yaml");
    node.deserialize::<PolicyConfig>("p")
        .expect("policy config")
}

pub(super) fn config(yaml: &str) -> Result<TailSamplingConfig, String> {
    let node = spanpipe_config::load_str("c.yaml", yaml).map_err(|e| e.to_string())?;
    let cfg: TailSamplingConfig = node.deserialize("c").map_err(|e| e.to_string())?;
    cfg.validate().map_err(|e| {
        let keys: Vec<String> = e.keys.iter().map(|k| format!("{k:?}")).collect();
        format!("{} at {}", e.message, keys.join("."))
    })?;
    Ok(cfg)
}

/// The decision of policy `yaml` on one trace made of `pieces`.
pub(super) fn decide(yaml: &str, pieces: &[Vec<u8>]) -> Decision {
    let cfg = policy(yaml);
    cfg.validate(&[], 1).expect("valid policy");
    let pieces: Vec<Piece> = pieces.iter().cloned().map(piece).collect();
    let spans = pieces.iter().map(|p| p.spans).sum();
    let id = tid(1);
    let t = TraceData::new(&id, &pieces, spans);
    Policy::build(&cfg, Instant::now())
        .evaluate(&t, Instant::now())
        .expect("readable")
}
