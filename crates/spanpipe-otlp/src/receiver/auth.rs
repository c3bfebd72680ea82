//! `protocols.<grpc|http>.auth`: the receiver side of authentication. The authenticator is an extension
//! (e.g. `bearertokenauth`) found by id at build time; every request is checked before its body is read, and a
//! failure is answered HTTP 401 / gRPC UNAUTHENTICATED. Credentials are never logged, and never passed on as
//! batch metadata (`include_metadata`), so no exporter or debug output can show them.

use std::sync::Arc;

use http::HeaderMap;
use serde::Deserialize;
use spanpipe_core::{BuildContext, ConfigError, Node, ServerAuth};

use super::status::ReceiveError;

/// `auth:` (the OTel Collector's `configauth.Config`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Id of the authenticator extension, e.g. `bearertokenauth` or `bearertokenauth/clients`.
    pub authenticator: String,
}

/// Headers that carry credentials: dropped from batch metadata.
const CREDENTIAL_HEADERS: [&str; 2] = ["authorization", "proxy-authorization"];

/// Resolves `protocols.<protocol>.auth.authenticator` to the extension's [`ServerAuth`].
pub fn resolve(
    settings: Option<&AuthSettings>,
    protocol: &str,
    ctx: &BuildContext,
    node: &Node,
) -> Result<Option<Arc<dyn ServerAuth>>, ConfigError> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let keys = ["protocols", protocol, "auth", "authenticator"];
    if settings.authenticator.trim().is_empty() {
        return Err(ctx.invalid(node, &keys, "name an authenticator extension"));
    }
    let ext = ctx.extension(node, &keys, &settings.authenticator)?;
    ext.server_auth().map(Some).ok_or_else(|| {
        ctx.invalid(
            node,
            &keys,
            format!(
                "extension \"{}\" cannot authenticate requests",
                settings.authenticator
            ),
        )
    })
}

/// Checks a request's headers (HTTP headers or gRPC metadata, which arrive as HTTP/2 headers).
pub fn check(auth: Option<&Arc<dyn ServerAuth>>, headers: &HeaderMap) -> Result<(), ReceiveError> {
    let Some(auth) = auth else {
        return Ok(());
    };
    auth.authenticate(&|name| headers.get(name).and_then(|v| v.to_str().ok()))
        .map_err(|e| ReceiveError::Unauthenticated(e.0))
}

/// Removes credentials before headers become batch metadata.
pub fn strip_credentials(headers: &mut HeaderMap) {
    for name in CREDENTIAL_HEADERS {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanpipe_core::AuthError;

    struct Fixed;
    impl ServerAuth for Fixed {
        fn authenticate<'h>(
            &self,
            header: &dyn Fn(&str) -> Option<&'h str>,
        ) -> Result<(), AuthError> {
            match header("authorization") {
                Some("Bearer ok") => Ok(()),
                _ => Err(AuthError("no".into())),
            }
        }
    }

    #[test]
    fn check_and_strip() {
        let auth: Arc<dyn ServerAuth> = Arc::new(Fixed);
        let mut h = HeaderMap::new();
        assert!(check(None, &h).is_ok());
        assert_eq!(
            check(Some(&auth), &h),
            Err(ReceiveError::Unauthenticated("no".into()))
        );
        h.insert("authorization", "Bearer ok".parse().unwrap());
        h.insert("proxy-authorization", "x".parse().unwrap());
        h.insert("x-tenant", "t".parse().unwrap());
        assert!(check(Some(&auth), &h).is_ok());
        strip_credentials(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-tenant"));
    }
}
