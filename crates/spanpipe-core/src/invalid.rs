//! Validation failures with a key path (`routing[1].header`, `actions[0].pattern`), for configs whose validation
//! walks lists: the error names the exact entry and is located at the deepest key present in the YAML.

use spanpipe_config::Value;

use crate::{BuildContext, ConfigError, Node};

/// One step of a key path below a component: a mapping key or a list index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Name(&'static str),
    Index(usize),
}

/// A validation failure: where below the component's own key, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub keys: Vec<Key>,
    pub message: String,
}

impl Invalid {
    pub fn new(keys: Vec<Key>, message: impl Into<String>) -> Self {
        Invalid {
            keys,
            message: message.into(),
        }
    }

    /// The same failure one level further down (`prefix` then these keys).
    pub fn under(mut self, prefix: &[Key]) -> Self {
        let mut keys = prefix.to_vec();
        keys.append(&mut self.keys);
        self.keys = keys;
        self
    }

    /// The config error located at the deepest of the keys present in `node`.
    pub fn locate(&self, ctx: &BuildContext, node: &Node) -> ConfigError {
        let mut at = node;
        let mut found = true;
        let mut path = ctx.path.clone();
        for k in &self.keys {
            let next = match (k, &at.value) {
                (Key::Name(name), _) => {
                    path.push('.');
                    path.push_str(name);
                    at.get(name)
                }
                (Key::Index(i), Value::Seq(items)) => {
                    path.push_str(&format!("[{i}]"));
                    items.get(*i)
                }
                (Key::Index(i), _) => {
                    path.push_str(&format!("[{i}]"));
                    None
                }
            };
            match next {
                Some(n) if found => at = n,
                _ => found = false,
            }
        }
        ConfigError::new(at.location.clone(), path, self.message.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ComponentId;

    #[test]
    fn locates_at_the_deepest_present_key_and_names_the_whole_path() {
        let node =
            spanpipe_config::load_str("c.yaml", "routing:\n  - a: 1\n  - header: x\n").unwrap();
        let ctx = BuildContext::new(ComponentId::new("mlflow", None), "exporters.mlflow".into());
        let e = Invalid::new(
            vec![Key::Name("routing"), Key::Index(1), Key::Name("header")],
            "bad",
        )
        .locate(&ctx, &node);
        let text = e.to_string();
        assert!(text.contains("c.yaml:3:"), "{text}");
        assert!(
            text.contains("exporters.mlflow.routing[1].header"),
            "{text}"
        );
        let missing =
            Invalid::new(vec![Key::Name("routing"), Key::Index(7)], "bad").locate(&ctx, &node);
        // No entry 7: located at the list itself, the deepest key present.
        assert!(
            missing
                .to_string()
                .starts_with("c.yaml:2:3: exporters.mlflow.routing[7]"),
            "{missing}"
        );
    }
}
