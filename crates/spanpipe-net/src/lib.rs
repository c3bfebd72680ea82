//! spanpipe's one network layer, the analogue of the OTel Collector's `confighttp` / `configtls` /
//! `configgrpc`: everything spanpipe does on the wire below the OTLP protocol.
//!
//! - **Serving.** Every endpoint spanpipe listens on — the OTLP receivers, `health_check`, the `prometheus`
//!   scrape endpoint and the internal metrics — serves through [`server::serve`]: a cap on concurrent
//!   connections, a bound from accept to the first request's headers (slowloris), idle and age limits, back-off
//!   when `accept` fails (out of file descriptors) instead of spinning, TLS with certificate reload ([`tls`]), and
//!   a drain on shutdown.
//! - **Clients.** Every exporter builds its HTTP client or gRPC channel here ([`client`]): the `tls:` settings of
//!   an exporter, endpoint and header checks done at build time, one user agent and connect timeout.
//! - **Bodies.** gzip / zstd / deflate with a cap on the decompressed size ([`compression`]).
//! - **Answers.** Which failed HTTP statuses and gRPC codes are worth another attempt ([`status`]).
//!
//! Only `status` is built without the default `transport` feature: spanpipe-core uses it (and nothing else of
//! this crate), so the dependency runs core → net and this crate never depends on the core.

pub mod status;

#[cfg(feature = "transport")]
mod admin;
#[cfg(feature = "transport")]
pub mod client;
#[cfg(feature = "transport")]
pub mod compression;
#[cfg(feature = "transport")]
pub mod server;
#[cfg(feature = "transport")]
pub mod tls;

#[cfg(feature = "transport")]
pub use admin::{admin_limits, ensure_crypto_provider, serve_admin};
#[cfg(feature = "transport")]
pub use server::{ConnLimits, PeerAddr, Server};
#[cfg(feature = "transport")]
pub use tls::{TlsServer, TlsServerSettings};
