//! spanpipe's span-changing processors: `attributes`, `resource` and `filter`, with the OTel Collector's names and
//! semantics (traces only for now).
//!
//! A request stays encoded: [`rewrite`] walks an `ExportTraceServiceRequest` at the protobuf field level and
//! re-emits every resource, scope and span it does not change byte for byte. Only the attribute lists an action
//! really changes are re-encoded ([`attrs`]), matching and conditions read values straight from the wire
//! ([`value`], [`span`]), and a batch nothing changed in is handed on as the same buffer. Pipelines without these
//! processors never reach this crate.

pub mod actions;
pub mod attributes;
pub mod attrs;
pub mod config;
pub mod filter;
pub mod matching;
pub mod resource;
pub mod rewrite;
pub mod span;
pub mod value;

#[cfg(test)]
pub(crate) mod test_util;

use spanpipe_core::Registry;

/// Registers every component of this crate.
pub fn register(registry: &mut Registry) {
    registry.processor(attributes::AttributesProcessorFactory);
    registry.processor(resource::ResourceProcessorFactory);
    registry.processor(filter::FilterProcessorFactory);
}
