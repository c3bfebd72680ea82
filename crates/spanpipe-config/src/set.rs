//! `--set key.path=value` command-line overrides.

use crate::error::{ConfigError, Location};
use crate::node::{Node, Value};
use crate::parse::load_str;

const SET_FILE: &str = "--set";

/// `--set a.b.c=value`: sets one value, creating maps on the way (an existing null becomes a map; an existing
/// scalar or list on the way is an error). Key segments are split on '.', or on `::` when the key contains `::`
/// (as OTel does), e.g. `exporters::otlp/b.v2::endpoint`; component ids may contain '/'. The value is parsed as YAML
/// (so `service.pipelines.traces.exporters=[debug]` gives a list, `x=5s` a plain scalar, `x=` null) and replaces
/// whatever was there. Locations use the file name `--set`, line 1, and the column within the argument.
pub fn apply_set(root: &mut Node, set: &str) -> Result<(), ConfigError> {
    let start = Location::new(SET_FILE, 1, 1);
    let Some((raw_key, raw_value)) = set.split_once('=') else {
        return Err(ConfigError::new(
            start,
            "",
            format!("expected `key.path=value`, got {set:?}"),
        ));
    };
    let key = raw_key.trim();
    let dotted = key.replace("::", ".");
    let separator = if key.contains("::") { "::" } else { "." };
    let mut segments = Vec::new();
    let mut offset = raw_key.len() - raw_key.trim_start().len();
    for segment in key.split(separator) {
        let location = Location::new(SET_FILE, 1, key_column(set, offset));
        if segment.trim().is_empty() {
            return Err(ConfigError::new(
                location,
                dotted,
                "empty key segment in --set",
            ));
        }
        segments.push((segment, location));
        offset += segment.len() + separator.len();
    }

    let value_offset = raw_key.chars().count() + 1;
    let mut value = if raw_value.trim().is_empty() {
        Node::new(Value::Null, Location::new(SET_FILE, 1, value_offset + 1))
    } else {
        load_str(SET_FILE, raw_value).map_err(|e| {
            ConfigError::new(
                shift(e.location, value_offset),
                dotted.clone(),
                format!("bad --set value: {}", e.message),
            )
        })?
    };
    value.for_each_location(&mut |loc| *loc = shift(loc.clone(), value_offset));

    let names: Vec<&str> = segments.iter().map(|(name, _)| *name).collect();
    let mut current = root;
    let last = segments.len() - 1;
    for (index, (segment, location)) in segments.into_iter().enumerate() {
        if current.is_null() {
            current.value = Value::Map(Vec::new());
        }
        let Value::Map(entries) = &mut current.value else {
            let parent = names.get(..index).unwrap_or_default().join(".");
            return Err(ConfigError::new(
                current.location.clone(),
                dotted,
                format!("cannot set a key inside `{parent}`: it is not a mapping"),
            ));
        };
        let position = match entries
            .iter()
            .position(|(k, _)| k.as_str() == Some(segment))
        {
            Some(position) => position,
            None => {
                entries.push((
                    Node::plain(segment, location.clone()),
                    Node::new(Value::Null, location),
                ));
                entries.len() - 1
            }
        };
        let Some((_, slot)) = entries.get_mut(position) else {
            return Err(ConfigError::new(
                start,
                dotted,
                "internal error applying --set",
            ));
        };
        if index == last {
            *slot = value;
            return Ok(());
        }
        current = slot;
    }
    Ok(())
}

/// 1-based column of byte `offset` in `text`.
fn key_column(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |prefix| prefix.chars().count() + 1)
}

/// Moves a location on line 1 of a `--set` value right by the length of `key=`.
fn shift(mut location: Location, by: usize) -> Location {
    if location.line == 1 {
        location.column += by;
    }
    location
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_str;

    fn base() -> Node {
        load_str(
            "c.yaml",
            "exporters:\n  otlp/backend:\n    endpoint: a:4317\n  debug:\nservice: {}\n",
        )
        .unwrap()
    }

    #[test]
    fn nested_creation_and_override() {
        let mut root = base();
        apply_set(&mut root, "exporters.otlp/backend.endpoint=b:4317").unwrap();
        apply_set(&mut root, "exporters.otlp/backend.tls.insecure=true").unwrap();
        apply_set(&mut root, "exporters.debug.verbosity=detailed").unwrap();
        apply_set(&mut root, "processors.batch.timeout=5s").unwrap();
        let otlp = root.get("exporters").unwrap().get("otlp/backend").unwrap();
        let endpoint = otlp.get("endpoint").unwrap();
        assert_eq!(endpoint.as_str(), Some("b:4317"));
        assert_eq!(endpoint.location.to_string(), "--set:1:33");
        assert!(
            otlp.get("tls")
                .unwrap()
                .get("insecure")
                .unwrap()
                .deserialize::<bool>("x")
                .unwrap()
        );
        assert_eq!(
            root.get("exporters")
                .unwrap()
                .get("debug")
                .unwrap()
                .get("verbosity")
                .unwrap()
                .as_str(),
            Some("detailed")
        );
        let timeout = root
            .get("processors")
            .unwrap()
            .get("batch")
            .unwrap()
            .get("timeout")
            .unwrap();
        assert!(matches!(&timeout.value, Value::Scalar { text, quoted: false } if text == "5s"));
    }

    #[test]
    fn double_colon_separator_and_dotted_names() {
        let mut root = base();
        apply_set(&mut root, "exporters::otlp/v1.2::endpoint=x:1").unwrap();
        let e = root
            .get("exporters")
            .unwrap()
            .get("otlp/v1.2")
            .unwrap()
            .get("endpoint")
            .unwrap();
        assert_eq!(e.as_str(), Some("x:1"));
    }

    #[test]
    fn list_values_and_null() {
        let mut root = base();
        apply_set(
            &mut root,
            "service.pipelines.traces.exporters=[debug, otlp/backend]",
        )
        .unwrap();
        let list: Vec<String> = root
            .get("service")
            .unwrap()
            .get("pipelines")
            .unwrap()
            .get("traces")
            .unwrap()
            .get("exporters")
            .unwrap()
            .deserialize("p")
            .unwrap();
        assert_eq!(list, ["debug", "otlp/backend"]);
        apply_set(&mut root, "exporters.otlp/backend=").unwrap();
        assert!(
            root.get("exporters")
                .unwrap()
                .get("otlp/backend")
                .unwrap()
                .is_null()
        );
    }

    #[test]
    fn errors() {
        let mut root = base();
        let e = apply_set(&mut root, "no-equals").unwrap_err();
        assert!(e.to_string().starts_with("--set:1:1: expected"), "{e}");
        let e = apply_set(&mut root, "a..b=1").unwrap_err();
        assert_eq!(e.to_string(), "--set:1:3: a..b: empty key segment in --set");
        let e = apply_set(&mut root, "exporters.otlp/backend.endpoint.x=1").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.yaml:3:15: exporters.otlp/backend.endpoint.x: cannot set"),
            "{e}"
        );
        let e = apply_set(&mut root, "a.b=[1, 2").unwrap_err();
        assert!(e.to_string().starts_with("--set:"), "{e}");
        assert!(e.to_string().contains("a.b: bad --set value"), "{e}");
    }
}
