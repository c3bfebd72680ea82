//! spanpipe's processors and pass-through connectors.
//!
//! Processors sit between a pipeline's receivers and its fan-out and wrap the next consumer. Those here keep the
//! data encoded: `batch` appends protobuf bytes and cuts at span boundaries, `forward` hands batches on unchanged.

pub mod batch;
pub mod forward;
pub mod memory_limiter;
pub mod probabilistic_sampler;

use spanpipe_core::Registry;

/// Registers every component of this crate.
pub fn register(registry: &mut Registry) {
    registry.processor(batch::BatchProcessorFactory);
    registry.connector(forward::ForwardConnectorFactory);
    registry.processor(memory_limiter::MemoryLimiterFactory);
    registry.processor(probabilistic_sampler::ProbabilisticSamplerFactory);
}
