//! Config pieces shared by the processors: a typed-as-written YAML value (`value:` of an action or a match) and
//! validation errors that point at a list item (`actions[2].pattern`) with file:line.

use std::fmt;

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A value as written in YAML, typed by the core schema (`7` is an int, `"7"` a string), like the OTel
/// Collector's `any` config fields that become attribute values.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    List(Vec<ConfigValue>),
    Map(Vec<(String, ConfigValue)>),
}

impl ConfigValue {
    /// The OTLP value this config value stands for.
    pub fn to_any_value(&self) -> AnyValue {
        let v = match self {
            ConfigValue::Str(s) => any_value::Value::StringValue(s.clone()),
            ConfigValue::Bool(b) => any_value::Value::BoolValue(*b),
            ConfigValue::Int(i) => any_value::Value::IntValue(*i),
            ConfigValue::Double(d) => any_value::Value::DoubleValue(*d),
            ConfigValue::List(items) => any_value::Value::ArrayValue(ArrayValue {
                values: items.iter().map(ConfigValue::to_any_value).collect(),
            }),
            ConfigValue::Map(entries) => any_value::Value::KvlistValue(KeyValueList {
                values: entries
                    .iter()
                    .map(|(k, v)| KeyValue {
                        key: k.clone(),
                        value: Some(v.to_any_value()),
                        ..Default::default()
                    })
                    .collect(),
            }),
        };
        AnyValue { value: Some(v) }
    }
}

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = ConfigValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number, boolean, list or map")
    }
    fn visit_bool<E>(self, v: bool) -> Result<ConfigValue, E> {
        Ok(ConfigValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<ConfigValue, E> {
        Ok(ConfigValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConfigValue, E> {
        i64::try_from(v)
            .map(ConfigValue::Int)
            .map_err(|_| E::custom("integer out of range for a 64-bit signed value"))
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<ConfigValue, E> {
        Err(E::custom("integer out of range for a 64-bit signed value"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<ConfigValue, E> {
        Ok(ConfigValue::Double(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<ConfigValue, E> {
        Ok(ConfigValue::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<ConfigValue, E> {
        Ok(ConfigValue::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ConfigValue, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(ConfigValue::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConfigValue, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, ConfigValue>()? {
            entries.push((k, v));
        }
        Ok(ConfigValue::Map(entries))
    }
}

pub use spanpipe_core::{Invalid, Key};

/// Compiles a regular expression from config, saying which key holds a bad one.
pub fn regex(pattern: &str, keys: Vec<Key>) -> Result<regex::Regex, Invalid> {
    regex::Regex::new(pattern)
        .map_err(|e| Invalid::new(keys, format!("invalid regular expression: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_keep_their_yaml_types() {
        let node = spanpipe_config::load_str(
            "t.yaml",
            "a: 7\nb: \"7\"\nc: true\nd: 1.5\ne: [1, x]\nf: {k: v}\n",
        )
        .unwrap();
        let get = |k: &str| -> ConfigValue { node.get(k).unwrap().deserialize(k).unwrap() };
        assert_eq!(get("a"), ConfigValue::Int(7));
        assert_eq!(get("b"), ConfigValue::Str("7".into()));
        assert_eq!(get("c"), ConfigValue::Bool(true));
        assert_eq!(get("d"), ConfigValue::Double(1.5));
        assert_eq!(
            get("e"),
            ConfigValue::List(vec![ConfigValue::Int(1), ConfigValue::Str("x".into())])
        );
        assert_eq!(
            get("f").to_any_value().value,
            Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("v".into()))
                    }),
                    ..Default::default()
                }]
            }))
        );
    }

    #[test]
    fn invalid_is_located_at_the_list_item() {
        let node = spanpipe_config::load_str(
            "t.yaml",
            "actions:\n  - key: a\n  - key: b\n    action: nope\n",
        )
        .unwrap();
        let ctx = spanpipe_core::BuildContext::new(
            "attributes".parse().unwrap(),
            "processors.attributes".into(),
        );
        let e = Invalid::new(
            vec![Key::Name("actions"), Key::Index(1), Key::Name("action")],
            "bad",
        )
        .locate(&ctx, &node);
        assert_eq!(e.key, "processors.attributes.actions[1].action");
        assert_eq!(e.location.line, 4);
    }
}
