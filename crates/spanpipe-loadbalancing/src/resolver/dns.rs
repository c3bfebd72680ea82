//! `resolver.dns`: the A and AAAA records of `hostname` every `interval`, through the system resolver or, with
//! `nameserver`, by asking that server directly (hickory). An error or a timeout keeps the last answer; an
//! answer without addresses empties the ring (the Collector's behaviour).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};

use super::endpoint;
use crate::balancer::Balancer;
use crate::config::DnsResolver;

/// One configured DNS lookup.
pub(crate) struct DnsLookup {
    hostname: String,
    port: u16,
    interval: Duration,
    timeout: Duration,
    /// Set with `nameserver`.
    direct: Option<TokioResolver>,
}

impl DnsLookup {
    pub fn new(cfg: &DnsResolver) -> Result<Self, String> {
        let port = cfg
            .port
            .parse::<u16>()
            .map_err(|_| format!("resolver.dns.port {:?} is not a port", cfg.port))?;
        let direct = match &cfg.nameserver {
            None => None,
            Some(ns) => {
                let addr: SocketAddr = ns
                    .parse()
                    .map_err(|_| format!("resolver.dns.nameserver {ns:?} is not ip:port"))?;
                Some(direct_resolver(addr, cfg.timeout.0)?)
            }
        };
        Ok(DnsLookup {
            hostname: cfg.hostname.clone(),
            port,
            interval: cfg.interval.0,
            timeout: cfg.timeout.0,
            direct,
        })
    }

    /// The addresses `hostname` resolves to now, sorted.
    pub async fn lookup(&self) -> Result<Vec<IpAddr>, String> {
        let found = tokio::time::timeout(self.timeout, async {
            match &self.direct {
                Some(r) => r
                    .lookup_ip(self.hostname.as_str())
                    .await
                    .map(|l| l.iter().collect::<Vec<IpAddr>>())
                    .map_err(|e| e.to_string()),
                None => tokio::net::lookup_host((self.hostname.as_str(), self.port))
                    .await
                    .map(|it| it.map(|a| a.ip()).collect())
                    .map_err(|e| e.to_string()),
            }
        })
        .await
        .map_err(|_| format!("no answer within {:?}", self.timeout))??;
        let mut ips = found;
        ips.sort();
        ips.dedup();
        Ok(ips)
    }

    /// Resolves once and hands the answer to the balancer (an error keeps the last answer).
    pub async fn refresh(&self, balancer: &Balancer) {
        match self.lookup().await {
            Ok(ips) => {
                let endpoints = ips.into_iter().map(|ip| endpoint(ip, self.port)).collect();
                balancer.set_resolved(endpoints).await;
            }
            Err(e) => {
                tracing::warn!(exporter = %balancer.id, hostname = %self.hostname, error = %e,
                    "loadbalancing: DNS resolution failed; keeping the last backends");
            }
        }
    }

    /// Refreshes every `interval` until the balancer stops.
    pub async fn run(self, balancer: Arc<Balancer>) {
        let stop = balancer.stop.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.cancelled() => return,
            }
            tokio::select! {
                _ = self.refresh(&balancer) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// A resolver asking only `addr` (UDP, then TCP for truncated answers), without caching, so every refresh sees
/// the server's current records.
fn direct_resolver(addr: SocketAddr, timeout: Duration) -> Result<TokioResolver, String> {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
    ns.connections = vec![udp, tcp];
    let config = ResolverConfig::from_name_servers(vec![ns]);
    let mut b = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    let opts = b.options_mut();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.cache_size = 0;
    opts.ndots = 0;
    opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    b.build().map_err(|e| format!("DNS resolver: {e}"))
}
