//! `protocols.<grpc|http>.auth`: the receiver side of authentication. The authenticator is an extension
//! (e.g. `bearertokenauth`) found by id at build time; every request is checked before its body is read, and a
//! failure is answered HTTP 401 / gRPC UNAUTHENTICATED. Credentials are never logged, and never passed on as
//! batch metadata (`include_metadata`), so no exporter or debug output can show them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Headers that carry credentials whatever the authenticator: dropped from batch metadata.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

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

/// Removes credentials before headers become batch metadata: the usual credential headers and whatever header
/// the configured authenticator reads.
pub fn strip_credentials(headers: &mut HeaderMap, auth: Option<&Arc<dyn ServerAuth>>) {
    for name in CREDENTIAL_HEADERS {
        headers.remove(name);
    }
    for name in auth.map(|a| a.credential_headers()).unwrap_or_default() {
        headers.remove(name.as_str());
    }
}

/// Refused logins, counted in `spanpipe_receiver_auth_failures_total{receiver,transport}` and logged at most once
/// per client address per minute (the reason only: an [`spanpipe_core::AuthError`] never holds a credential).
pub struct AuthFailures {
    receiver: String,
    transport: &'static str,
    counter: metrics::Counter,
    last_logged: Mutex<HashMap<Option<IpAddr>, Instant>>,
}

/// Clients remembered for log rate limiting; past it the memory is cleared (a flood of addresses logs more, but
/// memory stays bounded).
const MAX_REMEMBERED_CLIENTS: usize = 4096;
const LOG_EVERY: Duration = Duration::from_secs(60);

impl AuthFailures {
    pub fn new(receiver: &str, transport: &'static str) -> Self {
        metrics::describe_counter!(
            "spanpipe_receiver_auth_failures_total",
            metrics::Unit::Count,
            "Requests refused because their credentials were missing or wrong."
        );
        let counter = metrics::counter!("spanpipe_receiver_auth_failures_total",
            "receiver" => receiver.to_owned(), "transport" => transport);
        AuthFailures {
            receiver: receiver.to_owned(),
            transport,
            counter,
            last_logged: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one refused request from `peer`; logs it unless this client was logged within the last minute.
    pub fn record(&self, peer: Option<SocketAddr>, reason: &ReceiveError) {
        self.counter.increment(1);
        let ip = peer.map(|p| p.ip());
        let now = Instant::now();
        let log = {
            let mut seen = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() >= MAX_REMEMBERED_CLIENTS {
                seen.retain(|_, t| now.duration_since(*t) < LOG_EVERY);
                if seen.len() >= MAX_REMEMBERED_CLIENTS {
                    seen.clear();
                }
            }
            match seen.get(&ip) {
                Some(t) if now.duration_since(*t) < LOG_EVERY => false,
                _ => {
                    seen.insert(ip, now);
                    true
                }
            }
        };
        if log {
            let client = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
            tracing::warn!(receiver = %self.receiver, transport = self.transport, client = %client,
                reason = ?reason, "request refused: authentication failed (logged once a minute per client)");
        }
    }
}

/// A receiver transport's authenticator with its failure accounting.
pub struct ReceiverAuth {
    auth: Arc<dyn ServerAuth>,
    failures: AuthFailures,
}

impl ReceiverAuth {
    pub fn new(auth: Arc<dyn ServerAuth>, receiver: &str, transport: &'static str) -> Arc<Self> {
        Arc::new(ReceiverAuth {
            auth,
            failures: AuthFailures::new(receiver, transport),
        })
    }

    /// [`check`], counting and logging a refusal (the client address comes from the request's [`PeerAddr`]).
    pub fn check(&self, headers: &HeaderMap, peer: Option<&PeerAddr>) -> Result<(), ReceiveError> {
        check(Some(&self.auth), headers).inspect_err(|e| self.failures.record(peer.map(|p| p.0), e))
    }

    /// [`strip_credentials`] for this authenticator.
    pub fn strip(auth: Option<&Arc<ReceiverAuth>>, headers: &mut HeaderMap) {
        strip_credentials(headers, auth.map(|a| &a.auth));
    }
}

pub use spanpipe_net::PeerAddr;

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
        fn credential_headers(&self) -> Vec<String> {
            vec!["x-api-token".into()]
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
        h.insert("X-Api-Token", "secret".parse().unwrap());
        h.insert("cookie", "session=1".parse().unwrap());
        assert!(check(Some(&auth), &h).is_ok());
        strip_credentials(&mut h, Some(&auth));
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-tenant"));
    }

    #[test]
    fn auth_failures_are_logged_once_a_minute_per_client() {
        let f = AuthFailures::new("otlp/test", "http");
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:1000".parse().unwrap();
        let e = ReceiveError::Unauthenticated("no".into());
        f.record(Some(a), &e);
        f.record(Some(a), &e);
        f.record(Some(b), &e);
        f.record(None, &e);
        assert_eq!(f.last_logged.lock().unwrap().len(), 3);
    }
}
