//! Reloading the configuration of a running collector (SIGHUP) without losing data.
//!
//! The new configuration is built next to the running graph ([`crate::graph::Graph::rebuild`]): building is
//! validating, so an invalid file is rejected before anything running is touched. Unchanged components ([`Diff`])
//! are carried over as the same instances — an unchanged exporter keeps its queue, its queued data and its
//! workers; an unchanged pipeline keeps its processors and their state; an unchanged receiver keeps its listeners
//! and is switched to the new pipeline heads through its [`crate::swap::SwapConsumer`]. What changed is replaced:
//! the new instance starts, the old one stops the way a shutdown stops it (receivers finish their requests,
//! processors flush into their old downstream, queues drain within `service.shutdown_timeout`, leftovers counted
//! as failed). [`apply`] does the switch-over; the order is explained there.

mod apply;
mod diff;

pub use apply::{Retiring, Summary, apply};
pub use diff::Diff;

use crate::{ComponentError, ConfigError};

/// Why a reload did not happen. Either way the running pipelines keep running as they were.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is invalid (`file:line:col: key: message`).
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// A new component failed to start; what had started of the new configuration was stopped again.
    #[error("{0}")]
    Start(#[from] ComponentError),
}

#[cfg(test)]
mod tests;
