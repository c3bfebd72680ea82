//! Server-side authentication as a capability of an extension: a receiver names an authenticator extension
//! (`auth: { authenticator: bearertokenauth }`) and asks it about every request before reading the body.
//!
//! The core knows only this trait; authenticators live in their own crates. Credentials never appear in an
//! [`AuthError`]: its message goes back to the client and may be logged.

/// Why a request was not authenticated. Receivers answer HTTP 401 / gRPC UNAUTHENTICATED with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Checks the credentials of incoming requests. Synchronous and cheap: it is called for every request on the
/// receiver's hot path, so an authenticator keeps what it needs (tokens, keys) in memory and refreshes it in the
/// background.
pub trait ServerAuth: Send + Sync {
    /// `header(name)` gives the first value of a request header (`name` in lower case) or gRPC metadata entry.
    fn authenticate<'h>(&self, header: &dyn Fn(&str) -> Option<&'h str>) -> Result<(), AuthError>;

    /// The request headers (lower case) this authenticator reads credentials from. Receivers strip them, with
    /// `authorization`, `proxy-authorization` and `cookie`, before headers become batch metadata, so a token in a
    /// custom header cannot reach a span through `include_metadata` and `from_context`.
    fn credential_headers(&self) -> Vec<String> {
        Vec::new()
    }
}
