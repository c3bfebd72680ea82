//! Helpers for this crate's unit tests.

use std::sync::Arc;

use spanpipe_core::{BuildContext, ComponentId, Node};

use crate::balancer::Balancer;
use crate::config::LoadBalancingConfig;
use crate::exporter::validate;

pub fn node(yaml: &str) -> Node {
    spanpipe_config::load_str("test.yaml", yaml).expect("yaml")
}

pub fn ctx() -> BuildContext {
    BuildContext::new(
        ComponentId::new("loadbalancing", None),
        "exporters.loadbalancing".into(),
    )
}

/// A balancer built from a config (not started: nothing connects until an export).
pub fn balancer(yaml: &str) -> Arc<Balancer> {
    let n = node(yaml);
    let cfg: LoadBalancingConfig = ctx().config(&n).expect("config");
    let v = validate(&ctx(), &n, &cfg).expect("valid");
    Balancer::new("loadbalancing".into(), v.routing, v.template)
}
