//! The `otlp` receiver's configuration, with the OTel Collector's names and defaults.

use serde::{Deserialize, Deserializer};
use spanpipe_config::{ByteSize, Duration};
use spanpipe_core::{BuildContext, ConfigError, Node};

pub use super::auth::AuthSettings;
pub use spanpipe_net::TlsServerSettings;

/// `receivers.otlp`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpReceiverConfig {
    pub protocols: Protocols,
    /// Deepest `AnyValue` nesting accepted in any attribute (a scalar is 1), 1 to
    /// [`spanpipe_core::wire::MAX_DEPTH`]: deeper values are invalid spans. Keeps every decoder downstream far from
    /// prost's recursion limit and any stack.
    pub max_attribute_depth: usize,
    /// What an invalid span (not UTF-8 where OTLP says `string`, too deep, wrong id length) does to its request.
    pub on_invalid_span: OnInvalidSpan,
}

impl Default for OtlpReceiverConfig {
    fn default() -> Self {
        OtlpReceiverConfig {
            protocols: Protocols::default(),
            max_attribute_depth: 32,
            on_invalid_span: OnInvalidSpan::Reject,
        }
    }
}

/// `on_invalid_span`: refuse the whole request (HTTP 400 / INVALID_ARGUMENT, the default), or keep its valid spans
/// and answer an OTLP partial success naming how many were rejected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalidSpan {
    #[default]
    Reject,
    Drop,
}

/// Which protocols to serve. A protocol key that is present (even `grpc:` with nothing after it) enables it
/// with its defaults, as in the OTel Collector; an absent key disables it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    #[serde(default, deserialize_with = "present_means_enabled")]
    pub grpc: Option<GrpcConfig>,
    #[serde(default, deserialize_with = "present_means_enabled")]
    pub http: Option<HttpConfig>,
}

/// `protocols.grpc`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// Largest accepted request message (after decompression), in MiB.
    pub max_recv_msg_size_mib: u64,
    /// Pass the request's metadata on with each batch (for exporters that route by it). Credentials
    /// (`authorization`) are never passed on.
    pub include_metadata: bool,
    /// Serve TLS (mTLS with `client_ca_file`).
    pub tls: Option<TlsServerSettings>,
    /// Check every call with an authenticator extension.
    pub auth: Option<AuthSettings>,
    /// Concurrent calls (HTTP/2 streams) per connection (default 200); 0 means no limit.
    pub max_concurrent_streams: u32,
    /// Concurrent connections; 0 means no limit. Beyond it, new connections wait in the listen backlog.
    pub max_connections: u32,
    /// HTTP/2 keepalive and connection lifetime (`keepalive.server_parameters`).
    pub keepalive: Keepalive,
    /// Accepted for Collector configs; socket buffers are the system's.
    pub read_buffer_size: Option<ByteSize>,
    /// Accepted; see `read_buffer_size`.
    pub write_buffer_size: Option<ByteSize>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            endpoint: "127.0.0.1:4317".into(),
            max_recv_msg_size_mib: 4,
            include_metadata: false,
            tls: None,
            auth: None,
            max_concurrent_streams: 200,
            max_connections: 0,
            keepalive: Keepalive::default(),
            read_buffer_size: None,
            write_buffer_size: None,
        }
    }
}

/// `protocols.grpc.keepalive`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Keepalive {
    pub server_parameters: KeepaliveServerParameters,
    /// Accepted for Collector configs; clients' pings are not policed.
    pub enforcement_policy: EnforcementPolicy,
}

/// `protocols.grpc.keepalive.enforcement_policy` (accepted, no effect).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnforcementPolicy {
    pub min_time: Duration,
    pub permit_without_stream: bool,
}

/// `protocols.grpc.keepalive.server_parameters` (gRPC's names; `0s` means unset).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveServerParameters {
    /// Close a connection with no call in flight for this long (GOAWAY, then close).
    pub max_connection_idle: Duration,
    /// Close a connection this old (GOAWAY), spreading clients over restarted or scaled instances.
    pub max_connection_age: Duration,
    /// After `max_connection_age`, how long calls in flight may finish before the connection is cut.
    pub max_connection_age_grace: Duration,
    /// Ping an otherwise quiet client this often, to find dead connections.
    pub time: Duration,
    /// Close the connection when a ping is not answered within this (default 20s when `time` is set).
    pub timeout: Duration,
}

/// `protocols.http`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// Largest accepted body, both as sent and after decompression.
    pub max_request_body_size: ByteSize,
    /// Pass the request's headers on with each batch (for exporters that route by them). Credentials
    /// (`authorization`) are never passed on.
    pub include_metadata: bool,
    pub traces_url_path: String,
    pub metrics_url_path: String,
    pub logs_url_path: String,
    /// Serve HTTPS (mTLS with `client_ca_file`).
    pub tls: Option<TlsServerSettings>,
    /// Check every request with an authenticator extension.
    pub auth: Option<AuthSettings>,
    /// Time a client has to send a request's headers (and to finish the TLS handshake); slower clients are
    /// disconnected.
    pub read_header_timeout: Duration,
    /// Close a connection that has had no request in flight for this long; `0s` means never.
    pub idle_timeout: Duration,
    /// Concurrent requests (HTTP/2 streams) per connection (default 200); 0 means no limit.
    pub max_concurrent_streams: u32,
    /// Concurrent connections; 0 means no limit. Beyond it, new connections wait in the listen backlog.
    pub max_connections: u32,
    /// Cross-origin requests from browsers (off unless `allowed_origins` lists something).
    pub cors: super::cors::CorsConfig,
    /// The `Content-Encoding`s accepted (`""` for none); unset: every one spanpipe decodes.
    pub compression_algorithms: Option<Vec<String>>,
}

/// The names `compression_algorithms` takes (the Collector's); spanpipe decodes `gzip`, `zstd`, `deflate`/`zlib`.
pub const COMPRESSION_NAMES: [&str; 7] = ["", "gzip", "zstd", "zlib", "deflate", "snappy", "lz4"];

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: "127.0.0.1:4318".into(),
            max_request_body_size: ByteSize(20 << 20),
            include_metadata: false,
            traces_url_path: "/v1/traces".into(),
            metrics_url_path: "/v1/metrics".into(),
            logs_url_path: "/v1/logs".into(),
            tls: None,
            auth: None,
            read_header_timeout: Duration(std::time::Duration::from_secs(30)),
            idle_timeout: Duration(std::time::Duration::from_secs(60)),
            max_concurrent_streams: 200,
            max_connections: 0,
            cors: Default::default(),
            compression_algorithms: None,
        }
    }
}

/// Maps a present `null` to the defaults (absence is handled by `#[serde(default)]`, giving `None`).
fn present_means_enabled<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

/// Checks a listen endpoint as the OTel Collector takes it: `ip:port`, `localhost:port`, `:port` (every
/// interface) or `host:port` (resolved when the receiver starts); see [`spanpipe_core::listen::Endpoint`].
pub fn parse_endpoint(endpoint: &str) -> Result<spanpipe_core::listen::Endpoint, String> {
    spanpipe_core::listen::Endpoint::parse(endpoint)
}

/// Checks what serde cannot: at least one protocol, endpoints that parse, sane sizes and paths.
pub fn validate(
    cfg: &OtlpReceiverConfig,
    ctx: &BuildContext,
    node: &Node,
) -> Result<(), ConfigError> {
    let p = &cfg.protocols;
    if p.grpc.is_none() && p.http.is_none() {
        return Err(ctx.invalid(
            node,
            &["protocols"],
            "enable at least one protocol (grpc or http)",
        ));
    }
    let max = spanpipe_core::wire::MAX_DEPTH;
    if !(1..=max).contains(&cfg.max_attribute_depth) {
        return Err(ctx.invalid(
            node,
            &["max_attribute_depth"],
            format!("must be between 1 and {max}"),
        ));
    }
    if let Some(g) = &p.grpc {
        parse_endpoint(&g.endpoint)
            .map_err(|m| ctx.invalid(node, &["protocols", "grpc", "endpoint"], m))?;
        if g.max_recv_msg_size_mib == 0 || g.max_recv_msg_size_mib > 4096 {
            let keys = ["protocols", "grpc", "max_recv_msg_size_mib"];
            return Err(ctx.invalid(node, &keys, "must be between 1 and 4096"));
        }
        validate_tls(g.tls.as_ref(), "grpc", ctx, node)?;
    }
    if let Some(h) = &p.http {
        parse_endpoint(&h.endpoint)
            .map_err(|m| ctx.invalid(node, &["protocols", "http", "endpoint"], m))?;
        validate_tls(h.tls.as_ref(), "http", ctx, node)?;
        for (i, name) in h.compression_algorithms.iter().flatten().enumerate() {
            if !COMPRESSION_NAMES.contains(&name.as_str()) {
                let at = format!("compression_algorithms[{i}]");
                let keys = ["protocols", "http", at.as_str()];
                let known = COMPRESSION_NAMES.map(|n| format!("{n:?}")).join(", ");
                return Err(ctx.invalid(node, &keys, format!("unknown {name:?}; one of {known}")));
            }
        }
        super::cors::Cors::new(&h.cors).map_err(|m| {
            let keys = ["protocols", "http", "cors", "allowed_origins"];
            ctx.invalid(node, &keys, m)
        })?;
        if h.read_header_timeout.0.is_zero() {
            let keys = ["protocols", "http", "read_header_timeout"];
            return Err(ctx.invalid(node, &keys, "must be greater than 0"));
        }
        if h.max_request_body_size.0 == 0 {
            let keys = ["protocols", "http", "max_request_body_size"];
            return Err(ctx.invalid(node, &keys, "must be greater than 0"));
        }
        let paths = [
            ("traces_url_path", &h.traces_url_path),
            ("metrics_url_path", &h.metrics_url_path),
            ("logs_url_path", &h.logs_url_path),
        ];
        for (i, (key, path)) in paths.iter().enumerate() {
            if !path.starts_with('/') {
                return Err(ctx.invalid(node, &["protocols", "http", key], "must start with '/'"));
            }
            if paths[..i].iter().any(|(_, other)| other == path) {
                let msg = format!("{path:?} is already used by another signal");
                return Err(ctx.invalid(node, &["protocols", "http", key], msg));
            }
        }
    }
    Ok(())
}

fn validate_tls(
    tls: Option<&TlsServerSettings>,
    protocol: &str,
    ctx: &BuildContext,
    node: &Node,
) -> Result<(), ConfigError> {
    match tls.map(TlsServerSettings::validate) {
        Some(Err((key, message))) => {
            Err(ctx.invalid(node, &["protocols", protocol, "tls", key], message))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanpipe_config::{ComponentId, load_str};
    use std::net::SocketAddr;

    fn ctx() -> BuildContext {
        BuildContext::new(
            "otlp".parse::<ComponentId>().unwrap(),
            "receivers.otlp".into(),
        )
    }

    fn parse(yaml: &str) -> Result<OtlpReceiverConfig, ConfigError> {
        let node = load_str("test.yaml", yaml).unwrap();
        let cfg: OtlpReceiverConfig = ctx().config(&node)?;
        validate(&cfg, &ctx(), &node)?;
        Ok(cfg)
    }

    #[test]
    fn null_protocol_means_enabled_with_defaults() {
        let cfg = parse("protocols:\n  grpc:\n").unwrap();
        assert_eq!(cfg.protocols.grpc, Some(GrpcConfig::default()));
        assert_eq!(cfg.protocols.http, None);

        let cfg = parse("protocols:\n  http: ~\n  grpc: {}\n").unwrap();
        assert_eq!(cfg.protocols.http, Some(HttpConfig::default()));
        assert!(cfg.protocols.grpc.is_some());
        assert_eq!(
            HttpConfig::default().max_request_body_size.0,
            20 * 1024 * 1024
        );
    }

    #[test]
    fn values_are_read() {
        let cfg = parse(
            "protocols:\n  http:\n    endpoint: 0.0.0.0:9999\n    max_request_body_size: 1KiB\n    \
             include_metadata: true\n    traces_url_path: /t\n  grpc:\n    max_recv_msg_size_mib: 16\n",
        )
        .unwrap();
        let h = cfg.protocols.http.unwrap();
        assert_eq!(
            (
                h.endpoint.as_str(),
                h.max_request_body_size.0,
                h.include_metadata
            ),
            ("0.0.0.0:9999", 1024, true)
        );
        assert_eq!(
            (h.traces_url_path.as_str(), h.logs_url_path.as_str()),
            ("/t", "/v1/logs")
        );
        assert_eq!(cfg.protocols.grpc.unwrap().max_recv_msg_size_mib, 16);
    }

    #[test]
    fn security_values_are_read() {
        let cfg = parse(
            "protocols:\n  grpc:\n    tls: { cert_file: c.pem, key_file: k.pem, client_ca_file: ca.pem }\n    \
             auth: { authenticator: bearertokenauth }\n    max_concurrent_streams: 8\n    max_connections: 3\n    \
             keepalive:\n      server_parameters: { max_connection_idle: 1m, time: 30s }\n  http:\n    \
             read_header_timeout: 2s\n    idle_timeout: 0s\n    max_connections: 5\n",
        )
        .unwrap();
        let g = cfg.protocols.grpc.unwrap();
        let tls = g.tls.unwrap();
        assert_eq!(tls.client_ca_file.unwrap().to_str(), Some("ca.pem"));
        assert_eq!(tls.min_version, "1.2");
        assert_eq!(g.auth.unwrap().authenticator, "bearertokenauth");
        assert_eq!((g.max_concurrent_streams, g.max_connections), (8, 3));
        let sp = g.keepalive.server_parameters;
        assert_eq!(sp.max_connection_idle.0.as_secs(), 60);
        assert_eq!((sp.time.0.as_secs(), sp.timeout.0.as_secs()), (30, 0));
        let h = cfg.protocols.http.unwrap();
        assert_eq!(h.read_header_timeout.0.as_secs(), 2);
        assert!(h.idle_timeout.0.is_zero());
        assert_eq!(h.max_connections, 5);
        assert!(h.tls.is_none() && h.auth.is_none());
    }

    #[test]
    fn invalid_configs_name_the_key() {
        let cases = [
            ("protocols:\n  grpc:\n    bogus: 1\n", "bogus"),
            ("protocols:\n  thrift:\n", "thrift"),
            ("", "protocols"),
            ("protocols:\n", "protocols"),
            (
                "protocols:\n  grpc:\n    endpoint: nope\n",
                "protocols.grpc.endpoint",
            ),
            (
                "protocols:\n  http:\n    endpoint: 1.2.3.4\n",
                "protocols.http.endpoint",
            ),
            (
                "protocols:\n  http:\n    max_request_body_size: 0\n",
                "max_request_body_size",
            ),
            (
                "protocols:\n  http:\n    logs_url_path: /v1/traces\n",
                "logs_url_path",
            ),
            (
                "protocols:\n  http:\n    traces_url_path: v1\n",
                "traces_url_path",
            ),
            (
                "protocols:\n  grpc:\n    max_recv_msg_size_mib: 0\n",
                "max_recv_msg_size_mib",
            ),
            (
                "protocols:\n  grpc:\n    tls: { cert_file: c.pem }\n",
                "protocols.grpc.tls.key_file",
            ),
            (
                "protocols:\n  http:\n    tls: { cert_file: c, key_file: k, min_version: \"1.0\" }\n",
                "protocols.http.tls.min_version",
            ),
            (
                "protocols:\n  http:\n    read_header_timeout: 0s\n",
                "read_header_timeout",
            ),
            (
                "protocols:\n  grpc:\n    keepalive: { server_parameters: { idle: 1s } }\n",
                "idle",
            ),
        ];
        for (yaml, key) in cases {
            let err = parse(yaml).expect_err(yaml).to_string();
            assert!(err.contains(key), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("localhost:4317").unwrap().addr(),
            Some(SocketAddr::from(([127, 0, 0, 1], 4317)))
        );
        assert_eq!(
            parse_endpoint("[::]:1").unwrap().addr().map(|a| a.port()),
            Some(1)
        );
        assert!(parse_endpoint("localhost").is_err());
        assert!(
            parse_endpoint("example.com:80").is_ok(),
            "resolved at start"
        );
        assert!(parse_endpoint(":4317").is_ok());
    }
}
