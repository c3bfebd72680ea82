//! Where the backends come from: `static` (the list, once), `dns` (A/AAAA records, re-resolved every
//! `interval`) and `k8s` (a Service's EndpointSlices, listed then watched). Each hands its answer to
//! [`Balancer::set_resolved`]; an error keeps the last answer.

pub(crate) mod dns;
pub(crate) mod k8s;

use std::net::IpAddr;
use std::sync::Arc;

use crate::balancer::Balancer;
use crate::config::ResolverKind;

/// `ip:port`, with brackets for IPv6.
pub(crate) fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// Starts the resolver: the static list and the first DNS answer are in place when this returns; DNS refreshes
/// and the Kubernetes watch run as the balancer's tasks.
pub(crate) async fn start(kind: &ResolverKind, balancer: &Arc<Balancer>) -> Result<(), String> {
    match kind {
        ResolverKind::Static(list) => {
            balancer.set_resolved(list.clone()).await;
            Ok(())
        }
        ResolverKind::Dns(cfg) => {
            let resolver = dns::DnsLookup::new(cfg)?;
            resolver.refresh(balancer).await;
            let b = balancer.clone();
            balancer.spawn(async move { resolver.run(b).await });
            Ok(())
        }
        ResolverKind::K8s {
            name,
            namespace,
            ports,
            timeout,
            return_hostnames,
        } => {
            let api = k8s::ApiClient::in_cluster()?;
            let namespace = match namespace {
                Some(ns) => ns.clone(),
                None => k8s::pod_namespace(),
            };
            let watch = k8s::EndpointSliceWatch {
                api,
                service: name.clone(),
                namespace,
                ports: ports.clone(),
                timeout: *timeout,
                return_hostnames: *return_hostnames,
            };
            let b = balancer.clone();
            balancer.spawn(async move { watch.run(b).await });
            Ok(())
        }
    }
}
