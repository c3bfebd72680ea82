//! `exporters.loadbalancing`: the OTel Collector contrib `loadbalancing` exporter's option names and defaults,
//! parsed here and validated separately ([`LoadBalancingConfig::validate`]).

use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use spanpipe_config::Duration as ConfigDuration;
use spanpipe_core::{QueueSettings, RetrySettings};
use spanpipe_otlp::exporter::otlp_grpc::OtlpGrpcConfig;

/// The port a backend without one gets, and the default of `resolver.dns.port` / `resolver.k8s.ports`.
pub const DEFAULT_PORT: u16 = 4317;

/// `exporters.loadbalancing`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LoadBalancingConfig {
    /// `traceID` (default), `service`, `resource` or `attributes` (with `routing_attributes`).
    pub routing_key: String,
    /// With `routing_key: attributes`: the attributes whose values make the key (span, then resource
    /// attributes; `span.kind` and `span.name` are the span's own fields).
    pub routing_attributes: Vec<String>,
    pub protocol: Protocol,
    pub resolver: ResolverSettings,
    /// Per attempt of the exporter as a whole (routing into the backends' queues); zero: none. Each backend's
    /// `protocol.otlp` settings govern the actual exports.
    pub timeout: ConfigDuration,
    pub sending_queue: QueueSettings,
    pub retry_on_failure: RetrySettings,
}

impl Default for LoadBalancingConfig {
    fn default() -> Self {
        LoadBalancingConfig {
            routing_key: "traceID".into(),
            routing_attributes: Vec::new(),
            protocol: Protocol::default(),
            resolver: ResolverSettings::default(),
            timeout: ConfigDuration(Duration::ZERO),
            // On by default, unlike the Collector (which turns the exporter-level options off): with the queue
            // off, a batch that cannot be routed (every backend's queue full, no backend yet) after the client was
            // answered could only be counted as failed; with it, it waits and is retried, and a full queue refuses
            // new requests (503 / UNAVAILABLE) instead.
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
        }
    }
}

/// `protocol`: how every backend is reached. Only OTLP (gRPC) exists, as in the Collector.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Protocol {
    /// The whole `otlp` exporter config, used for every backend (its `endpoint` is replaced by the backend's).
    pub otlp: OtlpGrpcConfig,
}

/// `resolver`: where the backends come from; exactly one must be set.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverSettings {
    #[serde(rename = "static")]
    pub static_: Option<StaticResolver>,
    pub dns: Option<DnsResolver>,
    pub k8s: Option<K8sResolver>,
    /// Accepted so a Collector config gets a located error instead of "unknown field".
    pub aws_cloud_map: Option<IgnoredAny>,
}

/// `resolver.static`: a fixed list of backends.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StaticResolver {
    /// `host:port` (the port defaults to 4317).
    pub hostnames: Vec<String>,
}

/// `resolver.dns`: the A/AAAA records of a name (a headless Service), re-resolved every `interval`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsResolver {
    pub hostname: String,
    /// A string in the Collector's schema; must be a port number.
    pub port: String,
    pub interval: ConfigDuration,
    pub timeout: ConfigDuration,
    /// spanpipe only: ask this DNS server (`ip:port`, UDP then TCP) instead of the system resolver.
    pub nameserver: Option<String>,
}

impl Default for DnsResolver {
    fn default() -> Self {
        DnsResolver {
            hostname: String::new(),
            port: DEFAULT_PORT.to_string(),
            interval: ConfigDuration(Duration::from_secs(5)),
            timeout: ConfigDuration(Duration::from_secs(1)),
            nameserver: None,
        }
    }
}

/// `resolver.k8s`: the ready endpoints of a Service, from its EndpointSlices (list, then watch).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct K8sResolver {
    /// `name.namespace` (`name` alone: the pod's own namespace).
    pub service: String,
    pub ports: Vec<u16>,
    /// Per API request (the list; a watch runs until the server ends it).
    pub timeout: ConfigDuration,
    /// Backends as `<pod hostname>.<service>.<namespace>:<port>` instead of pod IPs (StatefulSets with TLS).
    pub return_hostnames: bool,
}

impl Default for K8sResolver {
    fn default() -> Self {
        K8sResolver {
            service: String::new(),
            ports: vec![DEFAULT_PORT],
            timeout: ConfigDuration(Duration::from_secs(1)),
            return_hostnames: false,
        }
    }
}

/// What the spans are routed by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoutingKey {
    TraceId,
    /// The resource's `service.name`.
    Service,
    /// All resource attributes.
    Resource,
    /// The values of these attributes (span first, then resource; `span.kind`, `span.name` pseudo attributes).
    Attributes(Vec<String>),
}

/// Which of the three resolvers, validated.
#[derive(Clone, Debug, PartialEq)]
pub enum ResolverKind {
    Static(Vec<String>),
    Dns(DnsResolver),
    K8s {
        name: String,
        namespace: Option<String>,
        ports: Vec<u16>,
        timeout: Duration,
        return_hostnames: bool,
    },
}

/// A validation failure: the key path below the exporter and why.
pub type Invalid = (Vec<&'static str>, String);

impl LoadBalancingConfig {
    /// The routing key, or the offending key and why.
    pub fn routing(&self) -> Result<RoutingKey, Invalid> {
        let key = match self.routing_key.as_str() {
            "traceID" | "" => RoutingKey::TraceId,
            "service" => RoutingKey::Service,
            "resource" => RoutingKey::Resource,
            "attributes" => {
                if self.routing_attributes.is_empty() {
                    return Err((
                        vec!["routing_attributes"],
                        "routing_key: attributes needs at least one attribute name".into(),
                    ));
                }
                if self.routing_attributes.iter().any(|a| a.is_empty()) {
                    return Err((vec!["routing_attributes"], "names must not be empty".into()));
                }
                RoutingKey::Attributes(self.routing_attributes.clone())
            }
            "metric" | "streamID" => {
                return Err((
                    vec!["routing_key"],
                    format!(
                        "{:?} routes metrics; this exporter handles traces (use traceID, service, resource or \
                         attributes)",
                        self.routing_key
                    ),
                ));
            }
            other => {
                return Err((
                    vec!["routing_key"],
                    format!(
                        "unknown routing key {other:?}: use traceID, service, resource or attributes"
                    ),
                ));
            }
        };
        if !matches!(key, RoutingKey::Attributes(_)) && !self.routing_attributes.is_empty() {
            return Err((
                vec!["routing_attributes"],
                "is used only with routing_key: attributes".into(),
            ));
        }
        Ok(key)
    }

    /// The one resolver, validated, or the offending key and why.
    pub fn resolver(&self) -> Result<ResolverKind, Invalid> {
        let r = &self.resolver;
        if r.aws_cloud_map.is_some() {
            return Err((
                vec!["resolver", "aws_cloud_map"],
                "is not available in spanpipe: use resolver.dns (a headless Service) or resolver.k8s".into(),
            ));
        }
        let set = [r.static_.is_some(), r.dns.is_some(), r.k8s.is_some()]
            .iter()
            .filter(|s| **s)
            .count();
        if set == 0 {
            return Err((
                vec!["resolver"],
                "set one resolver: static, dns or k8s".into(),
            ));
        }
        if set > 1 {
            return Err((
                vec!["resolver"],
                "set only one resolver of static, dns and k8s".into(),
            ));
        }
        if let Some(s) = &r.static_ {
            if s.hostnames.is_empty() {
                return Err((
                    vec!["resolver", "static", "hostnames"],
                    "list at least one backend".into(),
                ));
            }
            let mut out = Vec::with_capacity(s.hostnames.len());
            for h in &s.hostnames {
                let e = with_port(h).map_err(|m| (vec!["resolver", "static", "hostnames"], m))?;
                if !out.contains(&e) {
                    out.push(e);
                }
            }
            return Ok(ResolverKind::Static(out));
        }
        if let Some(d) = &r.dns {
            let at = |k: &'static str| vec!["resolver", "dns", k];
            if d.hostname.trim().is_empty() {
                return Err((at("hostname"), "is required".into()));
            }
            match d.port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err((at("port"), format!("{:?} is not a port number", d.port))),
            }
            if d.interval.0.is_zero() {
                return Err((at("interval"), "must be greater than 0".into()));
            }
            if d.timeout.0.is_zero() {
                return Err((at("timeout"), "must be greater than 0".into()));
            }
            if let Some(ns) = &d.nameserver
                && ns.parse::<std::net::SocketAddr>().is_err()
            {
                return Err((
                    at("nameserver"),
                    format!("{ns:?} is not an ip:port address"),
                ));
            }
            return Ok(ResolverKind::Dns(d.clone()));
        }
        let Some(k) = &r.k8s else {
            return Err((vec!["resolver"], "set one resolver".into()));
        };
        let at = |key: &'static str| vec!["resolver", "k8s", key];
        let (name, namespace) = match k.service.split_once('.') {
            Some((n, ns)) => (n.to_string(), Some(ns.to_string())),
            None => (k.service.clone(), None),
        };
        let dns_label = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !dns_label(&name) || namespace.as_deref().is_some_and(|ns| !dns_label(ns)) {
            return Err((
                at("service"),
                format!(
                    "{:?} is not `name` or `name.namespace` of a Service (lower-case DNS labels)",
                    k.service
                ),
            ));
        }
        if k.ports.is_empty() || k.ports.contains(&0) {
            return Err((at("ports"), "list at least one port (1-65535)".into()));
        }
        if k.timeout.0.is_zero() {
            return Err((at("timeout"), "must be greater than 0".into()));
        }
        Ok(ResolverKind::K8s {
            name,
            namespace,
            ports: k.ports.clone(),
            timeout: k.timeout.0,
            return_hostnames: k.return_hostnames,
        })
    }
}

/// `host:port` as given, or with the default port when it has none (as the Collector's `endpointWithPort`).
pub fn with_port(host: &str) -> Result<String, String> {
    let h = host.trim();
    if h.is_empty() {
        return Err("a backend must not be empty".into());
    }
    if h.contains("://") || h.contains('/') {
        return Err(format!("{h:?}: give host:port, not a URL"));
    }
    // [v6]:port, v6 without brackets, host:port, host.
    if let Some(rest) = h.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((_, "")) => Ok(format!("{h}:{DEFAULT_PORT}")),
            Some((_, p)) => check_port(h, p.strip_prefix(':').unwrap_or("x")),
            None => Err(format!("{h:?}: unclosed '['")),
        };
    }
    match h.matches(':').count() {
        0 => Ok(format!("{h}:{DEFAULT_PORT}")),
        1 => {
            let (_, p) = h.split_once(':').unwrap_or((h, ""));
            check_port(h, p)
        }
        _ => Ok(format!("[{h}]:{DEFAULT_PORT}")),
    }
}

fn check_port(h: &str, p: &str) -> Result<String, String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(h.to_string()),
        _ => Err(format!("{h:?}: {p:?} is not a port number")),
    }
}

#[cfg(test)]
mod tests;
