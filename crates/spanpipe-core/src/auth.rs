//! Authentication as a capability of an extension. Server side: a receiver names an authenticator extension
//! (`auth: { authenticator: bearertokenauth }`) and asks it about every request before reading the body. Client
//! side: an exporter names one the same way and asks it for the credential header of every request it sends.
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

/// The credential header of an outgoing request. No `Debug`: the value is a credential (a [`Secret`], shown as
/// `[REDACTED]` wherever it is printed).
///
/// [`Secret`]: spanpipe_config::Secret
pub struct ClientCredential {
    /// Lower-case header (HTTP) or metadata key (gRPC), e.g. `authorization`.
    pub header: String,
    pub value: spanpipe_config::Secret,
}

/// Gives exporters the credentials of their requests (the OTel Collector's `ClientAuthenticator`). Synchronous and
/// cheap: it is called for every request, so an authenticator keeps the current credential in memory and refreshes
/// it in the background (a rotated token file takes effect without a restart). An [`AuthError`] (no usable
/// credential yet) is retryable for the exporter: the spans wait in its queue.
pub trait ClientAuth: Send + Sync {
    fn credential(&self) -> Result<ClientCredential, AuthError>;
}
