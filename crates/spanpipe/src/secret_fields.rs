//! The guard behind "secrets by type": walks every registered component's config type and fails when a field
//! named like a credential is not read as a [`spanpipe_config::Secret`].
//!
//! The walk asks each factory itself: a probe key `__probe__` at some level is refused by serde's unknown-field
//! error, which lists the fields of that level; each field is probed in turn (three levels deep). A field whose
//! name looks like a credential is then set to a marker value (as a string, a list and a map, whichever its type
//! takes) and built inside [`spanpipe_config::collect_secret_locations`]: the marker's node must be recorded.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use spanpipe_config::{Node, collect_secret_locations, load_str};
use spanpipe_core::{Batch, BuildContext, ComponentId, ConsumeError, Consumer, Registry, Signal};

use crate::registry::registry;

const PROBE: &str = "__probe__";
const MARKER: &str = "marker-credential-value";

struct Sink;

#[async_trait]
impl Consumer for Sink {
    async fn consume(&self, _batch: Batch) -> Result<(), ConsumeError> {
        Ok(())
    }
}

/// Builds component `kind`/`ty` from `yaml`; the error text (or empty on success).
fn build(r: &Registry, kind: &str, ty: &str, yaml: &str) -> String {
    let node = match load_str("probe.yaml", yaml) {
        Ok(n) => n,
        Err(e) => return e.to_string(),
    };
    let id: ComponentId = match ty.parse() {
        Ok(id) => id,
        Err(_) => return format!("bad id {ty}"),
    };
    let ctx = BuildContext::new(id, format!("{kind}.{ty}"));
    let next: Arc<dyn Consumer> = Arc::new(Sink);
    let res = match kind {
        "receivers" => r.receivers[ty].build(&ctx, &node).map(drop),
        "processors" => r.processors[ty]
            .build(&ctx, &node, Signal::Traces, next)
            .map(drop),
        "exporters" => r.exporters[ty].build(&ctx, &node).map(drop),
        "connectors" => r.connectors[ty]
            .build(&ctx, &node, Signal::Traces, Signal::Metrics, next)
            .map(drop),
        "extensions" => r.extensions[ty].build(&ctx, &node).map(drop),
        _ => return format!("unknown kind {kind}"),
    };
    res.err().map(|e| e.to_string()).unwrap_or_default()
}

/// `a.b` and a value as nested YAML.
fn nested(path: &[String], value: &str) -> String {
    let mut yaml = String::new();
    for (depth, key) in path.iter().enumerate() {
        yaml.push_str(&"  ".repeat(depth));
        yaml.push_str(key);
        yaml.push(':');
        if depth + 1 < path.len() {
            yaml.push('\n');
        }
    }
    let indent = "  ".repeat(path.len());
    let value = value.replace('\n', &format!("\n{indent}"));
    format!("{yaml} {value}\n")
}

/// The fields serde lists when `path.__probe__` is refused; `None` when the level is not a struct.
fn fields_at(r: &Registry, kind: &str, ty: &str, path: &[String]) -> Option<BTreeSet<String>> {
    let mut probe = path.to_vec();
    probe.push(PROBE.into());
    let err = build(r, kind, ty, &nested(&probe, "1"));
    let line = err
        .lines()
        .find(|l| l.contains(&format!("unknown field `{PROBE}`")))?;
    let (_, rest) = line.split_once("expected")?;
    Some(
        rest.split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s.to_string())
            .collect(),
    )
}

fn credential_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n.ends_with("_file") || n.ends_with("_path") || n == "header" || n == "scheme" {
        return false;
    }
    // `loadbalancing`'s `routing_key` names what spans are routed by (`traceID`, `service`), not a credential.
    if n == "routing_key" {
        return false;
    }
    // GenAI token counts and token types (`extra_token_types`, `min_tokens`) are usage, not credentials.
    if n.contains("token_type") || n.contains("token_count") || n.ends_with("_tokens") {
        return false;
    }
    n.contains("token")
        || n.contains("password")
        || n.contains("secret")
        || n.ends_with("key")
        || n == "headers"
        || n == "credentials"
}

/// Whether setting `path` to the marker (in some shape its type takes) records the marker as a `Secret`.
fn is_typed_secret(r: &Registry, kind: &str, ty: &str, path: &[String]) -> bool {
    let shapes = [
        MARKER.to_string(),
        format!("[{MARKER}]"),
        format!("\nx-marker: {MARKER}"),
    ];
    shapes.iter().any(|shape| {
        let yaml = nested(path, shape);
        let Ok(node) = load_str("probe.yaml", &yaml) else {
            return false;
        };
        let mut marker_at = Vec::new();
        find_marker(&node, &mut marker_at);
        let (_, secrets) = collect_secret_locations(|| build(r, kind, ty, &yaml));
        !marker_at.is_empty() && marker_at.iter().all(|l| secrets.contains(l))
    })
}

fn find_marker(node: &Node, out: &mut Vec<spanpipe_config::Location>) {
    use spanpipe_config::Value;
    match &node.value {
        Value::Scalar { text, .. } if text == MARKER => out.push(node.location.clone()),
        Value::Seq(items) => items.iter().for_each(|i| find_marker(i, out)),
        Value::Map(entries) => entries.iter().for_each(|(_, v)| find_marker(v, out)),
        _ => {}
    }
}

#[test]
fn every_credential_field_of_every_component_is_a_secret() {
    let r = registry();
    let kinds: Vec<(&str, Vec<String>)> = vec![
        ("receivers", r.receivers.keys().cloned().collect()),
        ("processors", r.processors.keys().cloned().collect()),
        ("exporters", r.exporters.keys().cloned().collect()),
        ("connectors", r.connectors.keys().cloned().collect()),
        ("extensions", r.extensions.keys().cloned().collect()),
    ];
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    let mut walked = 0;
    for (kind, types) in &kinds {
        for ty in types {
            // Breadth-first over struct levels, at most three deep.
            let mut levels: Vec<Vec<String>> = vec![Vec::new()];
            while let Some(level) = levels.pop() {
                let Some(fields) = fields_at(&r, kind, ty, &level) else {
                    continue;
                };
                walked += 1;
                for f in fields {
                    let mut path = level.clone();
                    path.push(f.clone());
                    if credential_like(&f) {
                        if is_typed_secret(&r, kind, ty, &path) {
                            checked.push(format!("{kind}.{ty}.{}", path.join(".")));
                        } else {
                            problems.push(format!("{kind}.{ty}.{}", path.join(".")));
                        }
                    } else if path.len() < 3 {
                        levels.push(path);
                    }
                }
            }
        }
    }
    println!("credential fields typed Secret: {checked:#?}");
    assert!(walked > 20, "the walk found only {walked} config levels");
    assert!(
        problems.is_empty(),
        "fields named like credentials that are not `Secret`: {problems:#?}"
    );
    // The walk reaches the known ones (so it cannot pass by finding nothing).
    for known in [
        "extensions.bearertokenauth.tokens",
        "exporters.otlp_http.headers",
        "exporters.mlflow.password",
        "processors.redaction.hmac_key",
    ] {
        assert!(checked.iter().any(|c| c == known), "{known} not checked");
    }
}

#[test]
fn the_walk_flags_a_plain_string_credential() {
    // A registry with one extension whose `api_key` is a plain String must fail the check.
    use spanpipe_core::{ComponentError, ConfigError, Extension, ExtensionFactory};

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Leaky {
        api_key: String,
    }
    struct LeakyExt;
    #[async_trait]
    impl Extension for LeakyExt {
        async fn start(&self) -> Result<(), ComponentError> {
            Ok(())
        }
    }
    struct LeakyFactory;
    impl ExtensionFactory for LeakyFactory {
        fn type_name(&self) -> &'static str {
            "leaky"
        }
        fn build(
            &self,
            ctx: &BuildContext,
            config: &Node,
        ) -> Result<Arc<dyn Extension>, ConfigError> {
            config.deserialize::<Leaky>(&ctx.path)?;
            Ok(Arc::new(LeakyExt))
        }
    }
    let mut r = Registry::default();
    r.extension(LeakyFactory);
    let fields = fields_at(&r, "extensions", "leaky", &[]).unwrap();
    assert_eq!(fields.into_iter().collect::<Vec<_>>(), ["api_key"]);
    assert!(!is_typed_secret(
        &r,
        "extensions",
        "leaky",
        &["api_key".to_string()]
    ));
}
