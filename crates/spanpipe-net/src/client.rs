//! The client side of the network layer: how every exporter (`otlp`, `otlp_http`, `mlflow`,
//! `prometheusremotewrite`, …) reaches its backend. Endpoints and headers are checked at build time
//! ([`endpoint`]); clients are built in `start()` from the exporter's `tls:` settings ([`tls::TlsSettings`]:
//! [`TlsSettings::http_client`] for HTTP, [`TlsSettings::grpc_channel`] for gRPC), so every exporter has the same
//! user agent, connect timeout, CA handling and `insecure_skip_verify` behaviour. Bodies are compressed with
//! [`crate::compression`] and sent without a copy as [`PartsBody`] chunks; failed answers are classified by [`crate::status`].

pub mod endpoint;
pub mod parts_body;
pub mod tls;

pub use endpoint::{GrpcTarget, check_http_url, grpc_target, http_headers};
pub use parts_body::PartsBody;
pub use tls::{AcceptAnyServerCert, TlsSettings};
