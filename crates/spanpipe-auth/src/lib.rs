//! Authenticator extensions: receivers name one in `protocols.<grpc|http>.auth.authenticator` and ask it, through
//! [`spanpipe_core::ServerAuth`], whether each request may come in.
//!
//! `bearertokenauth` compares the `Authorization` header with configured tokens (inline or from a file that is
//! re-read when it changes), as the OTel Collector's extension of the same name does.

pub mod bearertokenauth;

use spanpipe_core::Registry;

/// Registers every component of this crate.
pub fn register(registry: &mut Registry) {
    registry.extension(bearertokenauth::BearerTokenAuthFactory);
}
