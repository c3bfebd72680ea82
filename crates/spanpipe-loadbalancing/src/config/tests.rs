use std::time::Duration;

use super::*;
use crate::exporter::LoadBalancingExporterFactory;
use crate::test_util::{ctx, node};
use spanpipe_core::{ExporterFactory, Sizer};

fn build_err(yaml: &str) -> String {
    match LoadBalancingExporterFactory.build(&ctx(), &node(yaml)) {
        Ok(_) => panic!("{yaml}: built"),
        Err(e) => e.to_string(),
    }
}

fn built(yaml: &str) -> spanpipe_core::BuiltExporter {
    LoadBalancingExporterFactory
        .build(&ctx(), &node(yaml))
        .unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

#[test]
fn defaults_are_the_collectors() {
    let cfg: LoadBalancingConfig = ctx()
        .config(&node("resolver: { static: { hostnames: [a:4317] } }"))
        .unwrap();
    assert_eq!(cfg.routing_key, "traceID");
    assert_eq!(cfg.routing().unwrap(), RoutingKey::TraceId);
    // spanpipe's defaults: the exporter-level queue and retries on (the Collector turns them off).
    assert_eq!(cfg.sending_queue, QueueSettings::default());
    assert_eq!(cfg.retry_on_failure, RetrySettings::default());
    assert_eq!(cfg.timeout.0, Duration::ZERO);
    // protocol.otlp is the otlp exporter's config with its defaults: a queue and retries per backend.
    assert!(cfg.protocol.otlp.sending_queue.enabled);
    assert!(cfg.protocol.otlp.retry_on_failure.enabled);
    assert_eq!(cfg.protocol.otlp.timeout.0, Duration::from_secs(5));
    let dns: LoadBalancingConfig = ctx()
        .config(&node("resolver: { dns: { hostname: back } }"))
        .unwrap();
    let d = dns.resolver.dns.clone().unwrap();
    assert_eq!(d.port, "4317");
    assert_eq!(d.interval.0, Duration::from_secs(5));
    assert_eq!(d.timeout.0, Duration::from_secs(1));
    let k8s: LoadBalancingConfig = ctx()
        .config(&node("resolver: { k8s: { service: back.obs } }"))
        .unwrap();
    let k = k8s.resolver.k8s.clone().unwrap();
    assert_eq!(k.ports, [4317]);
    assert_eq!(k.timeout.0, Duration::from_secs(1));
    assert!(!k.return_hostnames);
}

#[test]
fn a_collector_config_builds_with_every_resolver() {
    let b = built(
        "routing_key: service\nprotocol:\n  otlp:\n    endpoint: ignored:4317\n    tls: { insecure: true }\n    timeout: 2s\n    sending_queue: { queue_size: 50, sizer: items }\n    retry_on_failure: { initial_interval: 100ms }\nresolver:\n  static:\n    hostnames: [back-1:4317, back-2, 10.0.0.1:4317]\ntimeout: 3s\nsending_queue: { enabled: true }\nretry_on_failure: { enabled: true }",
    );
    assert_eq!(b.settings.timeout, Duration::from_secs(3));
    assert!(b.settings.sending_queue.enabled);
    built(
        "resolver: { dns: { hostname: back.obs.svc.cluster.local, port: 14317, interval: 1s, timeout: 500ms } }",
    );
    built("resolver: { dns: { hostname: back, nameserver: \"127.0.0.1:5353\" } }");
    built(
        "resolver: { k8s: { service: back, ports: [4317, 14317], timeout: 3s, return_hostnames: true } }",
    );
    built(
        "routing_key: attributes\nrouting_attributes: [tenant, span.name]\nresolver: { static: { hostnames: [a] } }",
    );
    built("routing_key: resource\nresolver: { static: { hostnames: [a] } }");
}

#[test]
fn the_static_list_gets_default_ports_and_no_duplicates() {
    let cfg: LoadBalancingConfig = ctx()
        .config(&node(
            "resolver: { static: { hostnames: [b, \"a:1\", \"a:1\", \"[::1]\", \"[::1]:9\", \"fd00::2\"] } }",
        ))
        .unwrap();
    assert_eq!(
        cfg.resolver().unwrap(),
        ResolverKind::Static(vec![
            "b:4317".into(),
            "a:1".into(),
            "[::1]:4317".into(),
            "[::1]:9".into(),
            "[fd00::2]:4317".into(),
        ])
    );
}

#[test]
fn wrong_configs_fail_at_the_key_that_is_wrong() {
    let cases = [
        (
            "resolver: {}",
            "exporters.loadbalancing.resolver: set one resolver",
        ),
        ("{}", "exporters.loadbalancing.resolver: set one resolver"),
        (
            "resolver: { static: { hostnames: [a] }, dns: { hostname: b } }",
            "only one resolver",
        ),
        (
            "resolver: { static: { hostnames: [] } }",
            "resolver.static.hostnames",
        ),
        (
            "resolver: { static: { hostnames: [\"a:x\"] } }",
            "not a port number",
        ),
        (
            "resolver: { static: { hostnames: [\"http://a:1\"] } }",
            "not a URL",
        ),
        (
            "resolver: { dns: { port: 1 } }",
            "resolver.dns.hostname: is required",
        ),
        (
            "resolver: { dns: { hostname: b, port: http } }",
            "resolver.dns.port",
        ),
        (
            "resolver: { dns: { hostname: b, interval: 0s } }",
            "resolver.dns.interval",
        ),
        (
            "resolver: { dns: { hostname: b, nameserver: dns.local } }",
            "resolver.dns.nameserver",
        ),
        (
            "resolver: { k8s: { service: \"\" } }",
            "resolver.k8s.service",
        ),
        (
            "resolver: { k8s: { service: Back.obs } }",
            "resolver.k8s.service",
        ),
        (
            "resolver: { k8s: { service: b, ports: [] } }",
            "resolver.k8s.ports",
        ),
        (
            "resolver: { aws_cloud_map: { namespace: x } }",
            "resolver.aws_cloud_map: is not available",
        ),
        (
            "routing_key: metric\nresolver: { static: { hostnames: [a] } }",
            "routes metrics",
        ),
        (
            "routing_key: traceid\nresolver: { static: { hostnames: [a] } }",
            "unknown routing key",
        ),
        (
            "routing_key: attributes\nresolver: { static: { hostnames: [a] } }",
            "routing_attributes",
        ),
        (
            "routing_attributes: [x]\nresolver: { static: { hostnames: [a] } }",
            "only with routing_key: attributes",
        ),
        (
            "resolver: { static: { hostnames: [a] } }\nprotocol: { otlp: { compression: lz4 } }",
            "compression",
        ),
        (
            "resolver: { static: { hostnames: [a] } }\nprotocol: { otlp: { sending_queue: { num_consumers: 0 } } }",
            "exporters.loadbalancing.protocol.otlp.sending_queue.num_consumers",
        ),
        (
            "resolver: { static: { hostnames: [a] } }\nprotocol: { grpc: {} }",
            "unknown field",
        ),
        (
            "resolver: { static: { hostnames: [a] } }\nrouting: x",
            "unknown field",
        ),
        (
            "resolver: { static: { hostnames: [a], x: 1 } }",
            "unknown field",
        ),
    ];
    for (yaml, want) in cases {
        let e = build_err(yaml);
        assert!(e.contains(want), "{yaml}: {e}");
    }
}

#[test]
fn protocol_otlp_settings_apply_to_every_backend() {
    let n = node(
        "resolver: { static: { hostnames: [a] } }\nprotocol: { otlp: { tls: { insecure: true }, timeout: 2s, sending_queue: { queue_size: 7, sizer: items, num_consumers: 3 } } }",
    );
    let cfg: LoadBalancingConfig = ctx().config(&n).unwrap();
    let v = crate::exporter::validate(&ctx(), &n, &cfg).unwrap();
    let s = &v.template.settings;
    assert_eq!(s.sending_queue.queue_size, 7);
    assert_eq!(s.sending_queue.sizer, Sizer::Items);
    assert_eq!(s.sending_queue.num_consumers, 3);
    assert_eq!(s.timeout, Duration::from_secs(2));
    assert!(v.template.exporter("127.0.0.1:4317").is_ok());
}
