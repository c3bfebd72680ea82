//! The `redaction` processor: keeps personal data and oversized payloads out of the backends.
//!
//! GenAI spans carry prompts and completions (`mlflow.spanInputs`, `gen_ai.input.messages`, `input.value`, ...)
//! that often hold e-mail addresses, keys or card numbers and can be megabytes long. This processor follows the
//! OTel Collector contrib `redaction` processor (`allow_all_keys`, `allowed_keys`, `ignored_keys`,
//! `blocked_key_patterns`, `blocked_values`, `allowed_values`, `hash_function`, `summary`) and adds what GenAI
//! traffic needs: named masking presets, masking *inside* JSON-encoded strings (decoded leaves, re-encoded, so the
//! value stays valid JSON) and truncation of named attributes that keeps JSON valid.
//!
//! It works on the encoded request: spans whose attributes need no change keep their bytes; only the attribute
//! fields that change are re-encoded (through `spanpipe_core::wire::rewrite_fields`).

pub mod config;
pub mod json;
pub mod mask;
pub mod processor;
pub mod truncate;

pub use config::RedactionConfig;
pub use processor::{RedactionProcessorFactory, Redactor, Stats};

use spanpipe_core::Registry;

/// Registers the `redaction` processor.
pub fn register(registry: &mut Registry) {
    registry.processor(RedactionProcessorFactory);
}
