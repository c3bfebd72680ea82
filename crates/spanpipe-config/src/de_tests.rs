use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{ByteSize, ConfigError, Duration, Node, load_str};

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Tls {
    #[serde(default)]
    insecure: bool,
    ca_file: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Exporter {
    endpoint: String,
    #[serde(default)]
    port: u16,
    compression: Option<Compression>,
    #[serde(default)]
    timeout: Duration,
    #[serde(default)]
    max_size: ByteSize,
    #[serde(default)]
    tls: Option<Tls>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    ratio: f64,
}

#[derive(Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
struct AllDefaults {
    enabled: bool,
    name: String,
}

fn exporter(yaml: &str) -> Result<Exporter, ConfigError> {
    let root = load_str("config.yaml", yaml)?;
    root.get("exporters")
        .and_then(|e| e.get("otlp/b"))
        .expect("test input has exporters.otlp/b")
        .deserialize("exporters.otlp/b")
}

const HEADER: &str = "exporters:\n  otlp/b:\n";

#[test]
fn typed_struct_happy_path() {
    let e = exporter(&format!(
        "{HEADER}    endpoint: 4317\n    port: 0x10\n    compression: gzip\n    timeout: 1m30s\n    max_size: 20 MiB\n    tls:\n      insecure: true\n    headers: {{a: 1, b: \"x\"}}\n    ratio: 1\n"
    ))
    .unwrap();
    assert_eq!(
        e.endpoint, "4317",
        "plain numbers are strings when a string is asked for"
    );
    assert_eq!(e.port, 16);
    assert_eq!(e.compression, Some(Compression::Gzip));
    assert_eq!(e.timeout.0, std::time::Duration::from_secs(90));
    assert_eq!(e.max_size, ByteSize(20 << 20));
    assert_eq!(
        e.tls,
        Some(Tls {
            insecure: true,
            ca_file: None
        })
    );
    assert_eq!(e.headers.get("a").map(String::as_str), Some("1"));
    assert_eq!(e.ratio, 1.0);
}

#[test]
fn unknown_field_names_key_location_and_path() {
    let err = exporter(&format!("{HEADER}    endpoint: x\n    endpont: y\n")).unwrap_err();
    assert_eq!(err.location.to_string(), "config.yaml:4:5");
    assert_eq!(err.key, "exporters.otlp/b.endpont");
    let text = err.to_string();
    assert!(
        text.starts_with("config.yaml:4:5: exporters.otlp/b.endpont: unknown field `endpont`, expected one of `endpoint`"),
        "{text}"
    );
    let nested = exporter(&format!(
        "{HEADER}    endpoint: x\n    tls:\n      insecur: true\n"
    ))
    .unwrap_err();
    assert_eq!(
        nested.to_string().split(": unknown").next(),
        Some("config.yaml:5:7: exporters.otlp/b.tls.insecur")
    );
}

#[test]
fn wrong_type_names_value_location() {
    let err = exporter(&format!("{HEADER}    endpoint: x\n    port: abc\n")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config.yaml:4:11: exporters.otlp/b.port: expected an unsigned integer, found \"abc\""
    );
    let err = exporter(&format!("{HEADER}    endpoint: x\n    port: 70000\n")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("config.yaml:4:11: exporters.otlp/b.port: invalid value: integer `70000`"),
        "{err}"
    );
    let err = exporter(&format!("{HEADER}    endpoint: x\n    port: -1\n")).unwrap_err();
    assert_eq!(err.key, "exporters.otlp/b.port");
    let err = exporter(&format!(
        "{HEADER}    endpoint: x\n    tls:\n      insecure: yes\n"
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "config.yaml:5:17: exporters.otlp/b.tls.insecure: expected a boolean (true or false), found \"yes\""
    );
    let err = exporter(&format!("{HEADER}    endpoint: [a]\n")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config.yaml:3:15: exporters.otlp/b.endpoint: expected a string, found a sequence"
    );
    let err = exporter(&format!(
        "{HEADER}    endpoint: x\n    compression: brotli\n"
    ))
    .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "config.yaml:4:18: exporters.otlp/b.compression: unknown variant `brotli`"
        ),
        "{err}"
    );
    let err = exporter(&format!("{HEADER}    endpoint: x\n    tls: 5\n")).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "config.yaml:4:10: exporters.otlp/b.tls: expected struct Tls, found \"5\""
        ),
        "{err}"
    );
}

#[test]
fn missing_field_points_at_the_map() {
    let err = exporter(&format!("{HEADER}    port: 1\n")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config.yaml:3:5: exporters.otlp/b: missing field `endpoint`"
    );
    // `otlp/b:` with nothing: the struct sees an empty map, so the error is still "missing field".
    let err = exporter(HEADER).unwrap_err();
    assert!(err.message.contains("missing field `endpoint`"), "{err}");
    assert_eq!(err.key, "exporters.otlp/b");
}

#[test]
fn null_section_gives_defaults() {
    let root = load_str("c.yaml", "debug:\nother: ~\n").unwrap();
    let d: AllDefaults = root.get("debug").unwrap().deserialize("debug").unwrap();
    assert_eq!(d, AllDefaults::default());
    let d: AllDefaults = root.get("other").unwrap().deserialize("other").unwrap();
    assert_eq!(d, AllDefaults::default());
    let v: Vec<String> = root.get("debug").unwrap().deserialize("debug").unwrap();
    assert!(v.is_empty());
    let o: Option<u32> = root.get("other").unwrap().deserialize("other").unwrap();
    assert_eq!(o, None);
    let o: Option<String> = load_str("c.yaml", "a: 'null'\n")
        .unwrap()
        .get("a")
        .unwrap()
        .deserialize("a")
        .unwrap();
    assert_eq!(o.as_deref(), Some("null"));
}

#[test]
fn durations_and_sizes_through_the_deserializer() {
    #[derive(Deserialize)]
    struct T {
        d: Duration,
    }
    #[derive(Deserialize)]
    struct S {
        s: ByteSize,
    }
    let ok = |y: &str| {
        load_str("u.yaml", y)
            .unwrap()
            .deserialize::<T>("p")
            .map(|t| t.d.0)
    };
    assert_eq!(
        ok("d: 200ms").unwrap(),
        std::time::Duration::from_millis(200)
    );
    assert_eq!(ok("d: 0").unwrap(), std::time::Duration::ZERO);
    assert_eq!(
        ok("d: '1.5s'").unwrap(),
        std::time::Duration::from_millis(1500)
    );
    let err = ok("\nd: 5 parsecs").unwrap_err();
    assert_eq!(
        err.to_string(),
        "u.yaml:2:4: p.d: bad duration \"5 parsecs\": expected a duration such as 200ms or 5s"
    );
    let err = ok("d: 5").unwrap_err();
    assert!(
        err.message
            .contains("expected a duration such as 200ms or 5s"),
        "{err}"
    );
    assert!(ok("d: -5s").unwrap_err().message.contains("negative"));
    assert!(ok("d: 1.5").is_err());
    assert!(ok("d:").is_err());

    let size = |y: &str| {
        load_str("u.yaml", y)
            .unwrap()
            .deserialize::<S>("p")
            .map(|s| s.s.0)
    };
    assert_eq!(size("s: 1024").unwrap(), 1024);
    assert_eq!(size("s: 1KB").unwrap(), 1000);
    assert_eq!(size("s: 2 kib").unwrap(), 2048);
    let err = size("s: 12 parsecs").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("u.yaml:1:4: p.s: bad size \"12 parsecs\""),
        "{err}"
    );
    assert!(size("s: -1").is_err());
}

#[test]
fn sequence_element_paths() {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rule {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        #[serde(default)]
        limit: u32,
    }
    #[derive(Debug, Deserialize)]
    struct P {
        #[allow(dead_code)]
        rules: Vec<Rule>,
    }
    let root = load_str(
        "s.yaml",
        "rules:\n  - name: a\n  - name: b\n    limit: lots\n",
    )
    .unwrap();
    let err = root.deserialize::<P>("processors.x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "s.yaml:4:12: processors.x.rules[1].limit: expected an unsigned integer, found \"lots\""
    );
    let root = load_str("s.yaml", "rules:\n  - name: a\n  - nme: b\n").unwrap();
    let err = root.deserialize::<P>("").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("s.yaml:3:5: rules[1].nme: unknown field `nme`"),
        "{err}"
    );
    let err = load_str("s.yaml", "[1, x]")
        .unwrap()
        .deserialize::<Vec<u8>>("list")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "s.yaml:1:5: list[1]: expected an unsigned integer, found \"x\""
    );
}

/// A minimal dynamic value, to check what `deserialize_any` reports.
#[derive(Debug, PartialEq)]
enum Any {
    Unit,
    Bool(bool),
    U(u64),
    I(i64),
    F(f64),
    S(String),
    Seq(Vec<Any>),
    Map(Vec<(Any, Any)>),
}

impl<'de> Deserialize<'de> for Any {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Any;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("anything")
            }
            fn visit_unit<E>(self) -> Result<Any, E> {
                Ok(Any::Unit)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Any, E> {
                Ok(Any::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Any, E> {
                Ok(Any::U(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Any, E> {
                Ok(Any::I(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Any, E> {
                Ok(Any::F(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Any, E> {
                Ok(Any::S(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Any, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = a.next_element()? {
                    out.push(x);
                }
                Ok(Any::Seq(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Any, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = a.next_entry()? {
                    out.push(kv);
                }
                Ok(Any::Map(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[test]
fn deserialize_any_uses_core_schema() {
    let root = load_str(
        "a.yaml",
        "[~, null, TRUE, 'true', 12, -3, 0x1f, 1.5, .inf, abc, '12', '', \"\"]",
    )
    .unwrap();
    let v: Any = root.deserialize("").unwrap();
    let s = |x: &str| Any::S(x.to_owned());
    assert_eq!(
        v,
        Any::Seq(vec![
            Any::Unit,
            Any::Unit,
            Any::Bool(true),
            s("true"),
            Any::U(12),
            Any::I(-3),
            Any::U(31),
            Any::F(1.5),
            Any::F(f64::INFINITY),
            s("abc"),
            s("12"),
            s(""),
            s(""),
        ])
    );
    // Mapping keys always come through as strings.
    let v: Any = load_str("a.yaml", "1: true")
        .unwrap()
        .deserialize("")
        .unwrap();
    assert_eq!(v, Any::Map(vec![(s("1"), Any::Bool(true))]));
}

#[test]
fn enums_and_newtypes() {
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case", deny_unknown_fields)]
    enum Sampler {
        AlwaysOn,
        Ratio(f64),
        Rate { per_second: u32 },
    }
    #[derive(Debug, Deserialize, PartialEq)]
    struct Wrapper(u8);
    let get = |y: &str| load_str("e.yaml", y).unwrap().deserialize::<Sampler>("s");
    assert_eq!(get("always_on").unwrap(), Sampler::AlwaysOn);
    assert_eq!(get("ratio: 0.5").unwrap(), Sampler::Ratio(0.5));
    assert_eq!(
        get("rate: {per_second: 3}").unwrap(),
        Sampler::Rate { per_second: 3 }
    );
    let err = get("rate: {per_sec: 3}").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("e.yaml:1:8: s.rate.per_sec: unknown field"),
        "{err}"
    );
    let err = get("ratio").unwrap_err();
    assert!(err.message.contains("needs a value"), "{err}");
    assert!(get("{a: 1, b: 2}").is_err());
    let w: Wrapper = load_str("e.yaml", "7").unwrap().deserialize("w").unwrap();
    assert_eq!(w, Wrapper(7));
    let c: char = load_str("e.yaml", "x").unwrap().deserialize("c").unwrap();
    assert_eq!(c, 'x');
    assert!(
        load_str("e.yaml", "xy")
            .unwrap()
            .deserialize::<char>("c")
            .is_err()
    );
    let t: (u8, String) = load_str("e.yaml", "[1, b]")
        .unwrap()
        .deserialize("t")
        .unwrap();
    assert_eq!(t, (1, "b".to_owned()));
}

#[test]
fn custom_deserialize_errors_get_the_value_location() {
    #[derive(Debug)]
    struct Even(#[allow(dead_code)] u32);
    impl<'de> Deserialize<'de> for Even {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let n = u32::deserialize(d)?;
            if n % 2 == 0 {
                Ok(Even(n))
            } else {
                Err(serde::de::Error::custom("must be even"))
            }
        }
    }
    #[derive(Debug, Deserialize)]
    struct C {
        #[allow(dead_code)]
        n: Even,
    }
    let err = load_str("c.yaml", "\n\nn: 3\n")
        .unwrap()
        .deserialize::<C>("x")
        .unwrap_err();
    assert_eq!(err.to_string(), "c.yaml:3:4: x.n: must be even");
}

#[test]
fn node_with_built_in_location() {
    let node = Node::plain("5s", crate::Location::default_value());
    let d: Duration = node.deserialize("service.shutdown_timeout").unwrap();
    assert_eq!(d.to_string(), "5s");
}
