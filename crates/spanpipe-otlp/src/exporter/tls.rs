//! The exporters' `tls:` settings and client builders now live in spanpipe-net's client layer
//! (`spanpipe_net::client::tls`); this old path stays for the crates that import it from here.

pub use spanpipe_net::client::tls::{AcceptAnyServerCert, TlsSettings};
pub use spanpipe_net::ensure_crypto_provider;
