//! `auth:` of an exporter (the OTel Collector's `configauth.Config` on a client): the id of an authenticator
//! extension (e.g. `bearertokenauth/upstream`) whose [`ClientAuth`] gives the credential header of every request.
//! Shared by `otlp`, `otlp_http` and `mlflow`.

use std::sync::Arc;

use serde::Deserialize;
use spanpipe_core::auth::{ClientAuth, ClientCredential};
use spanpipe_core::{BuildContext, ConfigError, ExportError, Node};

/// `auth:` of an exporter.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClientAuthSettings {
    /// Id of the authenticator extension, e.g. `bearertokenauth` or `bearertokenauth/upstream`.
    pub authenticator: String,
}

/// Resolves `auth.authenticator` to the extension's [`ClientAuth`] (errors located at that key).
pub fn resolve(
    settings: Option<&ClientAuthSettings>,
    ctx: &BuildContext,
    node: &Node,
) -> Result<Option<Arc<dyn ClientAuth>>, ConfigError> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let keys = ["auth", "authenticator"];
    let name = settings.authenticator.trim();
    if name.is_empty() {
        return Err(ctx.invalid(node, &keys, "name an authenticator extension"));
    }
    let ext = ctx.extension(node, &keys, name)?;
    ext.client_auth().map(Some).ok_or_else(|| {
        ctx.invalid(
            node,
            &keys,
            format!("extension \"{name}\" cannot authenticate outgoing requests"),
        )
    })
}

/// The credential as an HTTP header (marked sensitive, so it is never printed by the HTTP stack). No credential
/// yet (an unreadable token file) is retryable: the spans wait in the queue until the file is fixed.
pub fn http_header(
    auth: &dyn ClientAuth,
) -> Result<(http::HeaderName, http::HeaderValue), ExportError> {
    let ClientCredential { header, value } = auth
        .credential()
        .map_err(|e| ExportError::retryable(format!("client auth: {e}")))?;
    let name = http::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
        ExportError::permanent(format!("client auth: {header:?} is not a header name"))
    })?;
    let mut value = http::HeaderValue::from_str(value.expose()).map_err(|_| {
        ExportError::retryable(format!(
            "client auth: the credential for {header} is not a valid header value"
        ))
    })?;
    value.set_sensitive(true);
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanpipe_core::AuthError;

    struct Fixed(Result<(&'static str, &'static str), &'static str>);
    impl ClientAuth for Fixed {
        fn credential(&self) -> Result<ClientCredential, AuthError> {
            self.0
                .map(|(h, v)| ClientCredential {
                    header: h.into(),
                    value: v.into(),
                })
                .map_err(|e| AuthError(e.into()))
        }
    }

    #[test]
    fn credential_becomes_a_sensitive_header() {
        let (n, v) = http_header(&Fixed(Ok(("x-api-key", "Token abc")))).unwrap();
        assert_eq!(n.as_str(), "x-api-key");
        assert_eq!(v.to_str().unwrap(), "Token abc");
        assert!(v.is_sensitive());
        assert!(!format!("{v:?}").contains("abc"));
        let e = http_header(&Fixed(Err("token file /t is empty"))).unwrap_err();
        assert!(matches!(e, ExportError::Retryable { .. }), "{e:?}");
        let e = http_header(&Fixed(Ok(("x", "bad\nvalue")))).unwrap_err();
        assert!(!e.to_string().contains("bad"), "{e}");
    }
}
