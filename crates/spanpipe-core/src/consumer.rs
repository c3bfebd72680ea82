//! The one interface data moves through: receivers push into a [`Consumer`], processors are consumers wrapping the
//! next one, and a pipeline ends in a fan-out consumer.

use std::time::Duration;

use async_trait::async_trait;

use crate::Batch;

/// Why a consumer did not take a batch. Either way nothing of the batch was kept, so the sender may retry
/// without duplicating data.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsumeError {
    /// Temporarily saturated (a full queue, a memory limit): the client should retry after `retry_after`.
    /// Receivers answer HTTP 503 with `Retry-After` or gRPC UNAVAILABLE with RetryInfo.
    #[error("{reason}")]
    Refused {
        reason: String,
        retry_after: Duration,
    },
    /// The data itself is unacceptable; retrying will not help (HTTP 400 / gRPC INVALID_ARGUMENT).
    #[error("{reason}")]
    Rejected { reason: String },
}

impl ConsumeError {
    /// A traces payload the wire layer could not read: only a component that broke the bytes after the receiver's
    /// door can cause it, and resending the same bytes will not help.
    pub fn malformed_traces(e: impl std::fmt::Display) -> Self {
        ConsumeError::Rejected {
            reason: format!("malformed traces: {e}"),
        }
    }
}

/// Takes batches. `Ok` means the batch is now this consumer's responsibility.
#[async_trait]
pub trait Consumer: Send + Sync {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError>;
}
