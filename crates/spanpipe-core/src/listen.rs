//! Listen endpoints as the OTel Collector takes them (`confignet`): `ip:port`, `[v6]:port`, `localhost:port`,
//! `:port` (every interface, as Go's `net.Listen`) or `host:port` with a host name, resolved when the component
//! starts (so `validate` does not need the name to resolve where it runs).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::TcpListener;

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// An address known without resolving anything.
    Addr(SocketAddr),
    /// `:port`: every interface, IPv6 and IPv4 (IPv4 only where the system has no IPv6).
    Any(u16),
    /// A host name, resolved at [`Endpoint::bind`].
    Host { host: String, port: u16 },
}

impl Endpoint {
    /// Parses `text`; the error says what a listen endpoint looks like.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let bad = || {
            format!(
                "{text:?} is not a listen endpoint: expected host:port (127.0.0.1:4317, 0.0.0.0:4317, [::]:4317, \
                 localhost:4317, collector:4317) or :port for every interface"
            )
        };
        let t = text.trim();
        if let Ok(addr) = t.parse::<SocketAddr>() {
            return Ok(Endpoint::Addr(addr));
        }
        let (host, port) = t.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        match host {
            "" => Ok(Endpoint::Any(port)),
            "localhost" => Ok(Endpoint::Addr(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                port,
            )))),
            h if is_host_name(h) => Ok(Endpoint::Host {
                host: h.to_string(),
                port,
            }),
            _ => Err(bad()),
        }
    }

    /// The address, when it is known without resolving (`:port` as `0.0.0.0:port`).
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Endpoint::Addr(a) => Some(*a),
            Endpoint::Any(port) => Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, *port))),
            Endpoint::Host { .. } => None,
        }
    }

    /// Binds: the address, or the first address the host name resolves to that can be bound.
    pub async fn bind(&self) -> std::io::Result<TcpListener> {
        match self {
            Endpoint::Addr(a) => TcpListener::bind(a).await,
            Endpoint::Any(port) => {
                let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, *port));
                match TcpListener::bind(v6).await {
                    Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => {
                        TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, *port))).await
                    }
                    bound => bound,
                }
            }
            Endpoint::Host { host, port } => TcpListener::bind((host.as_str(), *port)).await,
        }
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and `-`, not starting or ending with `-`.
fn is_host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Addr(a) => a.fmt(f),
            Endpoint::Any(port) => write!(f, ":{port}"),
            Endpoint::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_collectors_forms() {
        let addr = |s: &str| Endpoint::parse(s).unwrap().addr();
        assert_eq!(
            addr("127.0.0.1:8889"),
            Some(SocketAddr::from(([127, 0, 0, 1], 8889)))
        );
        assert_eq!(addr(":8889"), Some(SocketAddr::from(([0, 0, 0, 0], 8889))));
        assert_eq!(
            addr("localhost:1"),
            Some(SocketAddr::from(([127, 0, 0, 1], 1)))
        );
        assert_eq!(addr("[::]:1").map(|a| a.port()), Some(1));
        assert_eq!(
            Endpoint::parse("collector:6666").unwrap(),
            Endpoint::Host {
                host: "collector".into(),
                port: 6666
            }
        );
        assert_eq!(
            Endpoint::parse("collector:6666").unwrap().to_string(),
            "collector:6666"
        );
        for bad in ["localhost", "x:99999", "bad host:1", "-x:1", "a..b:1", ""] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn binds_a_resolved_host_name() {
        let l = Endpoint::parse("localhost:0")
            .unwrap()
            .bind()
            .await
            .unwrap();
        assert!(l.local_addr().unwrap().ip().is_loopback());
    }
}
