//! `tls:` of an exporter (the OTel Collector's `configtls.ClientConfig` subset spanpipe supports) and the one
//! builder of every exporter's HTTP client ([`TlsSettings::http_client`]) and gRPC channel
//! ([`TlsSettings::grpc_channel`]).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Deserialize;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::endpoint::GrpcTarget;
use crate::ensure_crypto_provider;

/// `tls:` of an exporter (the OTel Collector's `configtls.ClientConfig` subset we support).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// gRPC only: a `host:port` endpoint without scheme uses plaintext instead of TLS.
    pub insecure: bool,
    /// PEM file of the CAs that sign the server certificate (replaces the built-in roots).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. For tests and self-signed lab setups only.
    pub insecure_skip_verify: bool,
}

impl TlsSettings {
    /// Reads `ca_file` (called from `start()`, never from a build, which must have no side effects).
    pub fn read_ca(&self) -> Result<Option<Vec<u8>>, String> {
        match &self.ca_file {
            None => Ok(None),
            Some(p) => std::fs::read(p)
                .map(Some)
                .map_err(|e| format!("cannot read tls.ca_file {}: {e}", p.display())),
        }
    }

    /// The one way every HTTP exporter builds its pooled reqwest client: these TLS settings, default headers,
    /// a per-request `timeout` (zero: none) and a 10 s connect timeout. Called from `start()` (reads `ca_file`).
    pub fn http_client(
        &self,
        headers: http::HeaderMap,
        timeout: std::time::Duration,
    ) -> Result<reqwest::Client, String> {
        ensure_crypto_provider();
        let mut b = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("spanpipe/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10));
        if !timeout.is_zero() {
            b = b.timeout(timeout);
        }
        if self.insecure_skip_verify {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        if let Some(pem) = self.read_ca()? {
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls.ca_file: {e}"))?;
            b = b.tls_certs_only(certs);
        }
        b.build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    }
}

impl TlsSettings {
    /// The one way every gRPC exporter builds its channel to `target`: these TLS settings (when the target is
    /// TLS), one user agent, a 10 s connect timeout, `TCP_NODELAY`. Connects lazily: a backend that is down at
    /// startup only makes the first exports retry. Called from `start()` (reads `ca_file`).
    pub fn grpc_channel(&self, target: &GrpcTarget) -> Result<Channel, String> {
        let mut ep = Endpoint::from_shared(target.uri.clone())
            .map_err(|e| format!("invalid endpoint {}: {e}", target.uri))?
            .user_agent(concat!("spanpipe/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| e.to_string())?
            .connect_timeout(std::time::Duration::from_secs(10))
            .tcp_nodelay(true);
        if target.tls {
            ensure_crypto_provider();
            let config = ClientTlsConfig::new().assume_http2(true);
            ep = if self.insecure_skip_verify {
                ep.tls_config_with_verifier(config, AcceptAnyServerCert::new())
            } else if let Some(pem) = self.read_ca()? {
                ep.tls_config(config.ca_certificate(Certificate::from_pem(pem)))
            } else {
                ep.tls_config(config.with_enabled_roots())
            }
            .map_err(|e| format!("TLS setup: {e}"))?;
        }
        Ok(ep.connect_lazy())
    }
}

/// A verifier that accepts every certificate but still checks handshake signatures, for
/// `insecure_skip_verify: true` on gRPC (reqwest has its own switch).
#[derive(Debug)]
pub struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AcceptAnyServerCert {
    pub fn new() -> Arc<Self> {
        let provider: CryptoProvider = rustls::crypto::ring::default_provider();
        Arc::new(AcceptAnyServerCert {
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_install_is_idempotent_and_missing_ca_is_an_error() {
        ensure_crypto_provider();
        ensure_crypto_provider();
        assert!(CryptoProvider::get_default().is_some());
        let t = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        assert!(t.read_ca().unwrap_err().contains("/nonexistent/ca.pem"));
        assert_eq!(TlsSettings::default().read_ca().unwrap(), None);
        assert!(
            !AcceptAnyServerCert::new()
                .supported_verify_schemes()
                .is_empty()
        );
    }
}
