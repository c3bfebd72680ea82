//! TLS for the receiver's servers (rustls): `protocols.<grpc|http>.tls` with the OTel Collector's
//! `configtls.ServerConfig` names. With `client_ca_file`, clients must present a certificate signed by one of
//! those CAs (mTLS). Certificates are re-read when their files change (checked at most every `reload_interval`,
//! on the next connection), so a renewed certificate takes effect without a restart; a change that does not load
//! keeps the previous certificate and is logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::version::{TLS12, TLS13};
use serde::Deserialize;
use spanpipe_config::Duration;
use tokio_rustls::TlsAcceptor;

use crate::ensure_crypto_provider;

/// `protocols.<grpc|http>.tls`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsServerSettings {
    /// PEM certificate chain the server presents (leaf first).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CAs that client certificates must chain to; set it to require client certificates (mTLS).
    pub client_ca_file: Option<PathBuf>,
    /// Oldest TLS version accepted: `"1.2"` or `"1.3"`.
    pub min_version: String,
    /// Newest TLS version accepted (empty: the newest supported, 1.3).
    pub max_version: String,
    /// How often, at most, the files are checked for a change (`0s`: never reloaded).
    pub reload_interval: Duration,
}

impl Default for TlsServerSettings {
    fn default() -> Self {
        TlsServerSettings {
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            min_version: "1.2".into(),
            max_version: String::new(),
            reload_interval: Duration(std::time::Duration::from_secs(10)),
        }
    }
}

/// TLS versions rustls speaks, oldest first.
fn version_rank(v: &str) -> Option<u8> {
    match v.trim() {
        "1.2" => Some(2),
        "1.3" => Some(3),
        _ => None,
    }
}

impl TlsServerSettings {
    /// What serde cannot check: both files named, known versions. Returns the offending key and a message.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.cert_file.is_none() {
            return Err(("cert_file", "is required when tls is set".into()));
        }
        if self.key_file.is_none() {
            return Err(("key_file", "is required when tls is set".into()));
        }
        let unsupported = |v: &str| {
            format!("{v:?} is not supported; use \"1.2\" or \"1.3\" (TLS 1.0 and 1.1 are insecure)")
        };
        let min = version_rank(&self.min_version)
            .ok_or_else(|| ("min_version", unsupported(&self.min_version)))?;
        if !self.max_version.trim().is_empty() {
            let max = version_rank(&self.max_version)
                .ok_or_else(|| ("max_version", unsupported(&self.max_version)))?;
            if max < min {
                return Err(("max_version", "must not be older than min_version".into()));
            }
        }
        Ok(())
    }

    fn files(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.cert_file, &self.key_file, &self.client_ca_file]
            .into_iter()
            .flatten()
    }

    /// The files' contents, to notice a change (however the file was replaced).
    fn snapshot(&self) -> Result<Vec<Vec<u8>>, String> {
        self.files()
            .map(|p| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display())))
            .collect()
    }

    /// A rustls server config from the files, offering `alpn` protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, String> {
        ensure_crypto_provider();
        let (Some(cert_file), Some(key_file)) = (&self.cert_file, &self.key_file) else {
            return Err("tls needs cert_file and key_file".into());
        };
        let certs = read_certs(cert_file, "cert_file")?;
        let key = PrivateKeyDer::from_pem_file(key_file)
            .map_err(|e| format!("key_file {}: {e}", key_file.display()))?;
        let min = version_rank(&self.min_version).unwrap_or(2);
        let max = version_rank(&self.max_version).unwrap_or(3);
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = [(2, &TLS12), (3, &TLS13)]
            .into_iter()
            .filter(|(rank, _)| (min..=max).contains(rank))
            .map(|(_, v)| v)
            .collect();
        let builder = ServerConfig::builder_with_protocol_versions(&versions);
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(ca_file) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(ca_file, "client_ca_file")? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("client_ca_file {}: {e}", ca_file.display()))?;
                }
                let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .map_err(|e| format!("client_ca_file {}: {e}", ca_file.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("cert_file/key_file: {e}"))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{key} {}: no PEM certificate found",
            path.display()
        ));
    }
    Ok(certs)
}

/// A server's TLS state: the current acceptor, reloaded when the files change.
pub struct TlsServer {
    settings: TlsServerSettings,
    alpn: Vec<&'static [u8]>,
    current: Mutex<Loaded>,
}

struct Loaded {
    acceptor: TlsAcceptor,
    files: Vec<Vec<u8>>,
    checked: Instant,
}

impl TlsServer {
    /// Loads the files (at `start`: an error there fails the start).
    pub fn load(settings: &TlsServerSettings, alpn: &[&'static [u8]]) -> Result<Self, String> {
        let files = settings.snapshot()?;
        let config = settings.server_config(alpn)?;
        Ok(TlsServer {
            settings: settings.clone(),
            alpn: alpn.to_vec(),
            current: Mutex::new(Loaded {
                acceptor: TlsAcceptor::from(config),
                files,
                checked: Instant::now(),
            }),
        })
    }

    /// The acceptor for a new connection, after reloading the files if they changed and a check is due. Reads
    /// small files, so call it off the accept loop (in the connection's task).
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let every = self.settings.reload_interval.0;
        if every.is_zero() || cur.checked.elapsed() < every {
            return cur.acceptor.clone();
        }
        cur.checked = Instant::now();
        match self.settings.snapshot() {
            Ok(files) if files != cur.files => {
                match self.settings.server_config(&self.alpn) {
                    Ok(config) => {
                        tracing::info!("TLS certificate files changed; new connections use them");
                        cur.acceptor = TlsAcceptor::from(config);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS files changed but do not load; keeping the previous certificate")
                    }
                }
                // Either way, do not retry the same content on every connection.
                cur.files = files;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the TLS files; keeping the previous certificate")
            }
        }
        cur.acceptor.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let ok = TlsServerSettings {
            cert_file: Some("c".into()),
            key_file: Some("k".into()),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        let cases = [
            (TlsServerSettings::default(), "cert_file"),
            (
                TlsServerSettings {
                    key_file: None,
                    ..ok.clone()
                },
                "key_file",
            ),
            (
                TlsServerSettings {
                    min_version: "1.1".into(),
                    ..ok.clone()
                },
                "min_version",
            ),
            (
                TlsServerSettings {
                    min_version: "1.3".into(),
                    max_version: "1.2".into(),
                    ..ok.clone()
                },
                "max_version",
            ),
        ];
        for (s, key) in cases {
            assert_eq!(s.validate().unwrap_err().0, key, "{s:?}");
        }
    }

    #[test]
    fn missing_files_are_named() {
        let s = TlsServerSettings {
            cert_file: Some("/nonexistent/cert.pem".into()),
            key_file: Some("/nonexistent/key.pem".into()),
            ..Default::default()
        };
        let err = TlsServer::load(&s, &[b"h2"]).err().unwrap();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
