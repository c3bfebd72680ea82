//! The label values of one point: the span's own (`root`, `span_type`, `span_status`, `experiment_id`) and its
//! trace's (`tags.*`, `metadata.*`), which only the root span carries.

use std::sync::Arc;

use crate::config::{MetaKey, Settings};

/// A trace's tag and metadata label values in [`Settings::label_names`] order. Shared (not copied) by every
/// pending point and series of the trace; `None` is an absent label.
pub type TraceLabels = Arc<[Option<Box<str>>]>;

/// The `span_status` label: the OTLP status code's name, as MLflow's SDK writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Unset,
    Ok,
    Error,
}

impl Status {
    /// OTLP `Status.code`: 1 OK, 2 ERROR, anything else (0, or unknown future codes) UNSET.
    pub fn from_code(code: u64) -> Status {
        match code {
            1 => Status::Ok,
            2 => Status::Error,
            _ => Status::Unset,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unset => "UNSET",
            Status::Ok => "OK",
            Status::Error => "ERROR",
        }
    }
}

/// The labels of a trace whose root never came (or that was recorded without waiting): no tags, and only the
/// metadata that does not depend on the trace (`mlflow.trace_schema.version`).
pub fn untagged(s: &Settings) -> TraceLabels {
    let mut v: Vec<Option<Box<str>>> = vec![None; s.tag_keys.len()];
    v.extend(s.meta_keys.iter().map(|m| match m {
        MetaKey::SchemaVersion => Some(SCHEMA_VERSION.into()),
        MetaKey::User | MetaKey::Session => None,
    }));
    v.into()
}

/// The trace schema version MLflow's SDK records in every trace's metadata.
pub const SCHEMA_VERSION: &str = "3";

/// The label-independent parts of a point held while its trace waits for the root, or recorded at once.
#[derive(Clone, Debug)]
pub struct OwnedPoint {
    pub value_ms: f64,
    pub root: bool,
    pub status: Status,
    pub span_type: Arc<str>,
    pub experiment: Arc<str>,
}

/// Every label of one point, borrowed: what a series is looked up by.
#[derive(Clone, Copy, Debug)]
pub struct LabelsRef<'a> {
    pub root: bool,
    pub status: Status,
    pub span_type: &'a str,
    pub experiment: &'a str,
    pub trace: &'a TraceLabels,
}
