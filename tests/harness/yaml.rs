//! YAML → `serde_json::Value`, for comparing configuration documents by content (mapping order, quoting and
//! comments ignored).

use saphyr::{LoadableYamlNode, ScalarOwned, YamlOwned};
use serde_json::{Map, Value};

/// Parses a single YAML document into JSON. Panics (showing the text) if it is not valid YAML.
pub fn yaml_to_json(text: &str) -> Value {
    let docs =
        YamlOwned::load_from_str(text).unwrap_or_else(|e| panic!("invalid YAML ({e}):\n{text}"));
    match docs.len() {
        0 => Value::Null,
        1 => convert(&docs[0]),
        n => panic!("expected one YAML document, found {n}:\n{text}"),
    }
}

fn scalar(s: &ScalarOwned) -> Value {
    match s {
        ScalarOwned::Null => Value::Null,
        ScalarOwned::Boolean(b) => Value::Bool(*b),
        ScalarOwned::Integer(i) => Value::from(*i),
        ScalarOwned::FloatingPoint(f) => Value::from(f.into_inner()),
        ScalarOwned::String(s) => Value::String(s.clone()),
    }
}

fn key_string(k: &YamlOwned) -> String {
    match convert(k) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn convert(y: &YamlOwned) -> Value {
    match y {
        YamlOwned::Value(s) => scalar(s),
        YamlOwned::Representation(raw, _, _) => Value::String(raw.clone()),
        YamlOwned::Sequence(items) => Value::Array(items.iter().map(convert).collect()),
        YamlOwned::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(key_string(k), convert(v));
            }
            Value::Object(out)
        }
        YamlOwned::Tagged(_, inner) => convert(inner),
        YamlOwned::Alias(_) | YamlOwned::BadValue => Value::Null,
    }
}

/// `doc` at a dotted path whose segments are mapping keys (keys may contain `/`, e.g. `exporters.otlp/x`).
pub fn at<'a>(doc: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(doc, |v, seg| v.get(seg))
}
