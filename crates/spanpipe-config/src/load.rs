//! Loading the collector configuration from several files plus `--set` overrides into one merged tree.

use std::path::PathBuf;

use crate::env::expand_env;
use crate::error::{ConfigError, Location};
use crate::node::{Node, Value};
use crate::parse::load_str;
use crate::set::apply_set;

/// Read and parse each file, expand env vars in every value (see [`expand_env`], using `env` as the lookup),
/// deep-merge them in order (see [`merge`]), then apply each `--set` string in order (see [`apply_set`]; `--set`
/// values are taken literally, not env-expanded). Returns the merged tree.
pub fn load_files(
    files: &[PathBuf],
    sets: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Node, ConfigError> {
    let mut merged: Option<Node> = None;
    for path in files {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                Location::new(name.as_str(), 1, 1),
                "",
                format!("cannot read file: {e}"),
            )
        })?;
        let mut node = load_str(&name, &text)?;
        if !node.is_null() && !matches!(node.value, Value::Map(_)) {
            return Err(ConfigError::new(
                node.location,
                "",
                "the top level of a configuration file must be a mapping",
            ));
        }
        expand_env(&mut node, env)?;
        merged = Some(match merged {
            Some(base) => merge(base, node),
            None => node,
        });
    }
    let mut root = match merged {
        Some(node) if matches!(node.value, Value::Map(_)) => node,
        Some(node) => Node::new(Value::Map(Vec::new()), node.location),
        None => Node::new(Value::Map(Vec::new()), Location::default_value()),
    };
    for set in sets {
        apply_set(&mut root, set)?;
    }
    Ok(root)
}

/// Deep-merges `overlay` onto `base`: mappings merge recursively key by key (keeping `base`'s key order, new keys
/// appended); for anything else — scalars, sequences, nulls — the overlay value replaces the base value (lists
/// are replaced, never concatenated). Every value keeps the location of the file that provided it.
pub fn merge(base: Node, overlay: Node) -> Node {
    match (base.value, overlay.value) {
        (Value::Map(mut entries), Value::Map(overlay_entries)) => {
            for (key, value) in overlay_entries {
                let slot = entries.iter_mut().find(|(k, _)| k.as_str() == key.as_str());
                match slot {
                    Some((_, existing)) => {
                        let old = std::mem::replace(
                            existing,
                            Node::new(Value::Null, value.location.clone()),
                        );
                        *existing = merge(old, value);
                    }
                    None => entries.push((key, value)),
                }
            }
            Node::new(Value::Map(entries), base.location)
        }
        (_, value) => Node::new(value, overlay.location),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("spanpipe-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn merge_maps_lists_scalars_with_locations() {
        let base = load_str("base.yaml", "a:\n  x: 1\n  y: [1, 2]\n  z: keep\nb: old\n").unwrap();
        let over = load_str("over.yaml", "a:\n  x: 2\n  y: [3]\n  w: new\nb: {c: 1}\n").unwrap();
        let m = merge(base, over);
        let a = m.get("a").unwrap();
        assert_eq!(a.get("x").unwrap().as_str(), Some("2"));
        assert_eq!(a.get("x").unwrap().location.to_string(), "over.yaml:2:6");
        let y: Vec<u32> = a.get("y").unwrap().deserialize("a.y").unwrap();
        assert_eq!(y, [3]);
        assert_eq!(a.get("z").unwrap().location.to_string(), "base.yaml:4:6");
        assert_eq!(a.get("w").unwrap().as_str(), Some("new"));
        assert_eq!(m.get("b").unwrap().get("c").unwrap().as_str(), Some("1"));
        let Value::Map(entries) = &a.value else {
            panic!("not a map")
        };
        let keys: Vec<_> = entries.iter().filter_map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["x", "y", "z", "w"]);
    }

    #[test]
    fn load_files_merges_sets_and_expands() {
        let dir = tempdir("load");
        let f1 = write(
            &dir,
            "one.yaml",
            "exporters:\n  otlp:\n    endpoint: ${env:EP}\n    timeout: 5s\n",
        );
        let f2 = write(&dir, "two.yaml", "exporters:\n  otlp:\n    timeout: 10s\n");
        let env = |name: &str| (name == "EP").then(|| "collector:4317".to_owned());
        let sets = vec![
            "exporters.otlp.compression=gzip".to_owned(),
            "exporters.otlp.timeout=15s".to_owned(),
        ];
        let root = load_files(&[f1.clone(), f2.clone()], &sets, &env).unwrap();
        let otlp = root.get("exporters").unwrap().get("otlp").unwrap();
        assert_eq!(
            otlp.get("endpoint").unwrap().as_str(),
            Some("collector:4317")
        );
        let compression = otlp.get("compression").unwrap();
        assert_eq!(compression.as_str(), Some("gzip"));
        assert_eq!(compression.location.file.as_ref(), "--set");
        assert_eq!(otlp.get("timeout").unwrap().as_str(), Some("15s"));
        // `--set` values are literal.
        let literal = vec!["a=${env:EP}".to_owned()];
        let root = load_files(std::slice::from_ref(&f1), &literal, &env).unwrap();
        assert_eq!(root.get("a").unwrap().as_str(), Some("${env:EP}"));

        let merged = load_files(&[f1.clone(), f2.clone()], &[], &env).unwrap();
        let timeout = merged
            .get("exporters")
            .unwrap()
            .get("otlp")
            .unwrap()
            .get("timeout")
            .unwrap();
        assert_eq!(timeout.as_str(), Some("10s"));
        assert!(timeout.location.file.ends_with("two.yaml"));
        assert_eq!(timeout.location.line, 3);

        let bad = write(&dir, "bad.yaml", "a:\n  b: ${env:X\n");
        let err = load_files(&[f1.clone(), bad], &[], &env).unwrap_err();
        assert!(
            err.to_string().contains("bad.yaml:2:6: a.b: unterminated"),
            "{err}"
        );

        let missing = dir.join("missing.yaml");
        let err = load_files(&[missing], &[], &env).unwrap_err();
        assert!(
            err.to_string()
                .contains("missing.yaml:1:1: cannot read file"),
            "{err}"
        );

        let scalar = write(&dir, "scalar.yaml", "just text\n");
        assert!(
            load_files(&[scalar], &[], &env)
                .unwrap_err()
                .message
                .contains("must be a mapping")
        );
        let empty = write(&dir, "empty.yaml", "");
        assert!(
            matches!(load_files(&[empty], &[], &env).unwrap().value, Value::Map(ref e) if e.is_empty())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
