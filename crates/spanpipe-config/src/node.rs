//! The positioned YAML tree every configuration file is parsed into.

use crate::de::NodeDeserializer;
use crate::error::{ConfigError, Location};
use crate::scalar::is_null_text;

/// One YAML value together with where it was written, so errors found after merging and typing can still
/// point at the user's text.
#[derive(Clone, Debug)]
pub struct Node {
    /// The value itself.
    pub value: Value,
    /// Where the value was written.
    pub location: Location,
}

/// The shape of a [`Node`]; scalars keep their text and are typed only when a component deserializes them.
#[derive(Clone, Debug)]
pub enum Value {
    /// An absent value, e.g. `otlp:` with nothing after the colon.
    Null,
    /// A scalar keeps its text; typing happens on deserialize (plain `true`/`123`/`1.5`/`null`/`~` resolve per
    /// the YAML 1.2 core schema when the target asks for `any`; a target asking for a string gets the text, also
    /// for plain `123`). `quoted` = single/double quoted or block scalar (never resolves to null/bool/number in
    /// deserialize_any).
    Scalar {
        /// The scalar's text after YAML unescaping.
        text: String,
        /// Whether the scalar was quoted or a block scalar (i.e. definitely a string).
        quoted: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// Mapping keeps key order; keys are scalars (a non-scalar key is a load error).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// Builds a node from its parts.
    pub fn new(value: Value, location: Location) -> Self {
        Node { value, location }
    }

    /// A plain (unquoted) scalar node, as if the user had written `text` unquoted.
    pub fn plain(text: impl Into<String>, location: Location) -> Self {
        Node::new(
            Value::Scalar {
                text: text.into(),
                quoted: false,
            },
            location,
        )
    }

    /// Looks up `key` in a mapping node; `None` for missing keys and for non-mappings.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Mutable variant of [`Node::get`].
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.value {
            Value::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a scalar node; `None` for null, sequences and mappings.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// True for [`Value::Null`] and for plain scalars the core schema reads as null (`null`, `~`, empty).
    pub fn is_null(&self) -> bool {
        match &self.value {
            Value::Null => true,
            Value::Scalar { text, quoted } => !quoted && is_null_text(text),
            _ => false,
        }
    }

    /// Deserialize into T. `path` is the dotted key path of this node used as a prefix in error messages (e.g.
    /// "exporters.otlp/backend").
    pub fn deserialize<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ConfigError> {
        T::deserialize(NodeDeserializer::new(self, path.to_owned())).map_err(|e| {
            e.at(&self.location, path)
                .into_config_error(&self.location, path)
        })
    }

    /// Render back to YAML (for `spanpipe print-config`). Keys whose name (case-insensitive) is one of: token,
    /// password, secret, api_key, authorization, bearer_token, or ends with "_token"/"_password"/"_secret" have
    /// their scalar value printed as `"[REDACTED]"`. Strings that need quoting are quoted so the output re-parses
    /// to the same values.
    pub fn to_yaml(&self) -> String {
        crate::emit::to_yaml(self, &std::collections::HashSet::new())
    }

    /// [`Node::to_yaml`] that also redacts every value at `secrets` (where components read a
    /// [`crate::Secret`], from [`crate::collect_secret_locations`]) and the password of any URL's userinfo.
    pub fn to_yaml_redacting(
        &self,
        secrets: &std::collections::HashSet<crate::Location>,
    ) -> String {
        crate::emit::to_yaml(self, secrets)
    }

    /// Whether two trees hold the same configuration, ignoring where each value was written: a config reload
    /// compares a component's old and new node this way, so moving a section to another line or file does not
    /// count as a change. Map key order matters (it is kept as written); a quoted scalar differs from a plain one
    /// (they may type differently); every spelling of null (`~`, `null`, empty) is the same.
    pub fn same_value(&self, other: &Node) -> bool {
        if self.is_null() || other.is_null() {
            return self.is_null() && other.is_null();
        }
        match (&self.value, &other.value) {
            (
                Value::Scalar {
                    text: a,
                    quoted: qa,
                },
                Value::Scalar {
                    text: b,
                    quoted: qb,
                },
            ) => a == b && qa == qb,
            (Value::Seq(a), Value::Seq(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_value(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka.same_value(kb) && va.same_value(vb))
            }
            _ => false,
        }
    }

    /// Number of nodes in this tree (used to bound alias expansion).
    pub(crate) fn count(&self) -> usize {
        match &self.value {
            Value::Null | Value::Scalar { .. } => 1,
            Value::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Value::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
        }
    }

    /// Total scalar text bytes in this tree (used to bound alias expansion).
    pub(crate) fn text_bytes(&self) -> usize {
        match &self.value {
            Value::Null => 0,
            Value::Scalar { text, .. } => text.len(),
            Value::Seq(items) => items.iter().map(Node::text_bytes).sum(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| k.text_bytes() + v.text_bytes())
                .sum(),
        }
    }

    /// Calls `f` on every node's location in this tree (keys included).
    pub(crate) fn for_each_location(&mut self, f: &mut dyn FnMut(&mut Location)) {
        f(&mut self.location);
        match &mut self.value {
            Value::Null | Value::Scalar { .. } => {}
            Value::Seq(items) => items.iter_mut().for_each(|n| n.for_each_location(f)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.for_each_location(f);
                v.for_each_location(f);
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::load_str;

    #[test]
    fn accessors() {
        let n = load_str("t.yaml", "a: x\nb:\nc: ~\nd: 'null'\ne: [1]\n").unwrap();
        assert_eq!(n.get("a").and_then(|n| n.as_str()), Some("x"));
        assert!(n.get("b").unwrap().is_null());
        assert!(n.get("c").unwrap().is_null());
        assert!(!n.get("d").unwrap().is_null());
        assert!(n.get("e").unwrap().as_str().is_none());
        assert!(n.get("zz").is_none());
        assert!(n.get("a").unwrap().get("a").is_none());
    }

    #[test]
    fn same_value_ignores_location_only() {
        let a = load_str("a.yaml", "x: {endpoint: h:1, n: [1, 2]}\nz: ~\n").unwrap();
        let b = load_str(
            "b.yaml",
            "\n\nx:\n  endpoint: h:1\n  n:\n    - 1\n    - 2\nz:\n",
        )
        .unwrap();
        assert!(a.same_value(&b));
        let differs = [
            "x: {endpoint: h:2, n: [1, 2]}\nz: ~\n",
            "x: {endpoint: h:1, n: [1]}\nz: ~\n",
            "x: {endpoint: 'h:1', n: [1, 2]}\nz: ~\n",
            "x: {n: [1, 2], endpoint: h:1}\nz: ~\n",
            "x: {endpoint: h:1, n: [1, 2]}\nz: 0\n",
            "x: {endpoint: h:1, n: [1, 2], extra: 1}\nz: ~\n",
        ];
        for text in differs {
            let c = load_str("c.yaml", text).unwrap();
            assert!(!a.same_value(&c), "{text} should differ");
        }
    }
}
