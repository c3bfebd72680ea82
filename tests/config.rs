//! `spanpipe validate | print-config | components`: the shipped configs validate, errors point at
//! `FILE:LINE:COL: key.path: message`, overrides/env expansion/redaction show in `print-config`.

use std::path::{Path, PathBuf};

use spanpipe_e2e::yaml::{at, yaml_to_json};
use spanpipe_e2e::{CmdOutput, run_spanpipe, run_spanpipe_env, workspace_root};

/// One `FILE:LINE:COL: key.path: message` diagnostic.
#[derive(Debug, Clone)]
struct Diag {
    line: u32,
    col: u32,
    /// Everything after `COL: ` (i.e. `key.path: message`, or just `message` for YAML syntax errors).
    rest: String,
}

impl Diag {
    fn key_path(&self) -> &str {
        self.rest.split_once(": ").map_or("", |(k, _)| k.trim())
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Diagnostics in `stderr` that name the file `file_name` (matched by base name, so both relative and absolute
/// spellings of the path are accepted).
fn diags_for(stderr: &str, file_name: &str) -> Vec<Diag> {
    let needle = format!("{file_name}:");
    let mut out = Vec::new();
    for raw in strip_ansi(stderr).lines() {
        let Some(pos) = raw.find(&needle) else {
            continue;
        };
        let after = &raw[pos + needle.len()..];
        let mut parts = after.splitn(3, ':');
        let (Some(line), Some(col), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(line), Ok(col)) = (line.trim().parse(), col.trim().parse()) else {
            continue;
        };
        out.push(Diag {
            line,
            col,
            rest: rest.trim().to_string(),
        });
    }
    out
}

struct ConfigFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn write_config(name: &str, yaml: &str) -> ConfigFile {
    let dir = tempfile::Builder::new()
        .prefix("spanpipe-cfg-")
        .tempdir()
        .expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, yaml).expect("write config");
    ConfigFile { _dir: dir, path }
}

fn validate(path: &Path) -> CmdOutput {
    run_spanpipe(&["validate", "--config", path.to_str().expect("utf-8 path")])
}

/// Runs `validate` on `yaml` and asserts exit code 1 and a diagnostic for `name` at `line` whose key path
/// satisfies `key_ok` (given the key path and the full `key.path: message` rest).
fn expect_error(
    name: &str,
    yaml: &str,
    line: u32,
    what: &str,
    key_ok: impl Fn(&str, &str) -> bool,
) {
    let cfg = write_config(name, yaml);
    let out = validate(&cfg.path);
    assert_eq!(
        out.code(),
        1,
        "validate must exit 1 for {what}\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    let diags = diags_for(&out.stderr, name);
    assert!(
        diags
            .iter()
            .any(|d| d.line == line && d.col >= 1 && key_ok(d.key_path(), &d.rest)),
        "{what}: expected a diagnostic `{name}:{line}:COL: key.path: message` (1-based COL) on stderr; parsed {diags:?}\nstderr:\n{}",
        out.stderr
    );
}

const VALID_BASE: &str = "\
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:4317 }
      http: { endpoint: 127.0.0.1:4318 }
processors:
  batch: { timeout: 200ms }
exporters:
  debug: { verbosity: basic }
service:
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [debug] }
";

/// `configs/<env>.yaml` overlays, run as `--config configs/base.yaml --config configs/<env>.yaml`.
const ENV_OVERLAYS: [&str; 3] = ["dev.yaml", "staging.yaml", "prod.yaml"];

/// Files in `configs/` that are not collector configs: the example price table of `genai_metrics` /
/// `genai_cost` (its own format, checked by `spanpipe validate` of `configs/genai.yaml`, which loads it).
const NOT_COLLECTOR_CONFIGS: [&str; 1] = ["genai-prices.example.yaml"];

fn validate_over_base(overlay: &Path) -> CmdOutput {
    let base = workspace_root().join("configs").join("base.yaml");
    run_spanpipe(&[
        "validate",
        "--config",
        base.to_str().expect("utf-8 path"),
        "--config",
        overlay.to_str().expect("utf-8 path"),
    ])
}

#[test]
fn every_shipped_config_validates() {
    let dir = workspace_root().join("configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| !NOT_COLLECTOR_CONFIGS.iter().any(|n| p.ends_with(n)))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no configs/*.yaml found in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for f in &files {
        // The per-environment overlays are only used on top of configs/base.yaml.
        let out = if ENV_OVERLAYS.iter().any(|o| f.ends_with(o)) {
            validate_over_base(f)
        } else {
            validate(f)
        };
        // A shipped config is also clean: no warning (e.g. a component configured but used by no pipeline,
        // such as a `batch` processor left in base.yaml that an overlay's pipeline no longer names).
        if !out.status.success() || out.stderr.contains("warning") {
            failures.push(format!("{} ({}):\n{}", f.display(), out.status, out.stderr));
        }
    }
    assert!(
        failures.is_empty(),
        "configs that do not validate cleanly:\n{}",
        failures.join("\n")
    );
    eprintln!("validated {} shipped config(s)", files.len());
}

/// The overlays change what they say they change, and the base's settings survive the merge.
#[test]
fn env_overlays_merge_onto_base() {
    let configs = workspace_root().join("configs");
    let merged = |env: &str| {
        let base = configs.join("base.yaml");
        let overlay = configs.join(env);
        print_config(
            &[
                "--config",
                base.to_str().expect("utf-8 path"),
                "--config",
                overlay.to_str().expect("utf-8 path"),
            ],
            &[],
        )
    };
    let base = print_config(
        &[
            "--config",
            configs.join("base.yaml").to_str().expect("utf-8"),
        ],
        &[],
    );
    let grpc = "/receivers/otlp/protocols/grpc/endpoint";
    assert_eq!(
        base.pointer(grpc),
        Some(&serde_json::json!("127.0.0.1:4317"))
    );
    let traces = "/service/pipelines/traces/exporters";
    for env in ENV_OVERLAYS {
        let m = merged(env);
        // From the base, untouched by any overlay.
        assert_eq!(
            m.pointer("/exporters/mlflow/tracking_uri"),
            Some(&serde_json::json!("http://127.0.0.1:5000")),
            "{env}: base's mlflow exporter lost in the merge: {m:#}"
        );
        assert_eq!(
            m.pointer("/service/pipelines/metrics~1spanmetrics/exporters"),
            Some(&serde_json::json!(["prometheus"])),
            "{env}: {m:#}"
        );
        match env {
            "dev.yaml" => {
                assert_eq!(
                    m.pointer(traces),
                    Some(&serde_json::json!([
                        "mlflow",
                        "mlflow_spanmetrics",
                        "debug"
                    ])),
                    "{m:#}"
                );
                assert_eq!(m.pointer(grpc), base.pointer(grpc));
            }
            _ => {
                assert_eq!(
                    m.pointer(grpc),
                    Some(&serde_json::json!("0.0.0.0:4317")),
                    "{env}"
                );
                assert_eq!(
                    m.pointer("/service/telemetry/logs/encoding"),
                    Some(&serde_json::json!("json")),
                    "{env}"
                );
                assert_eq!(m.pointer(traces), base.pointer(traces), "{env}");
            }
        }
        // Batching is in the exporter's queue, never in a `batch` processor in front of it: with prod's
        // persistent queue a processor would acknowledge from memory (lost on SIGKILL).
        assert_eq!(
            m.pointer("/service/pipelines/traces/processors"),
            None,
            "{env}: {m:#}"
        );
        assert_eq!(m.pointer("/processors/batch"), None, "{env}: {m:#}");
        assert!(
            m.pointer("/exporters/mlflow/sending_queue/batch/min_size")
                .is_some(),
            "{env}: {m:#}"
        );
        if env == "prod.yaml" {
            assert_eq!(
                m.pointer("/exporters/mlflow/sending_queue/storage"),
                Some(&serde_json::json!("file_storage")),
                "{m:#}"
            );
        }
    }
}

#[test]
fn valid_config_passes_and_prints_nothing_alarming() {
    let cfg = write_config("valid.yaml", VALID_BASE);
    let out = validate(&cfg.path);
    assert_eq!(out.code(), 0, "stderr:\n{}", out.stderr);
    assert!(
        diags_for(&out.stderr, "valid.yaml").is_empty(),
        "a valid config must not produce diagnostics:\n{}",
        out.stderr
    );
}

#[test]
fn unknown_component_type() {
    let yaml = "\
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:4317 }
exporters:
  nosuch: {}
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [nosuch] }
";
    expect_error(
        "unknown_type.yaml",
        yaml,
        6,
        "unknown component type",
        |key, _| key == "exporters.nosuch",
    );
}

#[test]
fn unknown_field_in_component() {
    let yaml = "\
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:4317 }
exporters:
  otlp/x:
    endpont: 127.0.0.1:4999
    tls: { insecure: true }
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [otlp/x] }
";
    expect_error(
        "unknown_field.yaml",
        yaml,
        7,
        "unknown field `endpont`",
        |key, rest| {
            key == "exporters.otlp/x.endpont"
                || (key == "exporters.otlp/x" && rest.contains("endpont"))
        },
    );
}

#[test]
fn pipeline_names_undefined_exporter() {
    let yaml = "\
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:4317 }
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug, ghost]
";
    expect_error(
        "undefined_exporter.yaml",
        yaml,
        11,
        "pipeline names an undefined exporter",
        |key, rest| key.starts_with("service.pipelines.traces.exporters") && rest.contains("ghost"),
    );
}

#[test]
fn bad_duration() {
    let yaml = "\
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:4317 }
processors:
  batch:
    send_batch_size: 100
    timeout: 5 parsecs
exporters:
  debug: {}
service:
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [debug] }
";
    expect_error("bad_duration.yaml", yaml, 8, "bad duration", |key, _| {
        key == "processors.batch.timeout"
    });
}

#[test]
fn bad_size() {
    let yaml = "\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:4318
        max_request_body_size: lots
exporters:
  debug: {}
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [debug] }
";
    expect_error("bad_size.yaml", yaml, 6, "bad byte size", |key, _| {
        key == "receivers.otlp.protocols.http.max_request_body_size"
    });
}

#[test]
fn malformed_yaml() {
    // `a: b: c` — "mapping values are not allowed in this context" on line 3.
    let yaml = "\
receivers:
  otlp:
    protocols: grpc: {}
exporters:
  debug: {}
";
    expect_error("malformed.yaml", yaml, 3, "malformed YAML", |_, _| true);
}

#[test]
fn error_in_second_file_names_that_file() {
    let base = write_config("base.yaml", VALID_BASE);
    let overlay = write_config("overlay.yaml", "processors:\n  batch:\n    timeout: soon\n");
    let out = run_spanpipe(&[
        "validate",
        "--config",
        base.path.to_str().unwrap(),
        "--config",
        overlay.path.to_str().unwrap(),
    ]);
    assert_eq!(out.code(), 1, "stderr:\n{}", out.stderr);
    let diags = diags_for(&out.stderr, "overlay.yaml");
    assert!(
        diags
            .iter()
            .any(|d| d.line == 3 && d.key_path() == "processors.batch.timeout"),
        "expected overlay.yaml:3:COL: processors.batch.timeout: ...; got {diags:?}\nstderr:\n{}",
        out.stderr
    );
}

#[test]
fn unused_component_warns_but_validates() {
    let yaml = format!("{VALID_BASE}\n");
    let yaml = yaml.replace(
        "exporters:\n  debug: { verbosity: basic }\n",
        "exporters:\n  debug: { verbosity: basic }\n  debug/spare: { verbosity: detailed }\n",
    );
    assert!(
        yaml.contains("debug/spare"),
        "test setup: replacement failed"
    );
    let cfg = write_config("unused.yaml", &yaml);
    let out = validate(&cfg.path);
    assert_eq!(
        out.code(),
        0,
        "an unused component is only a warning\nstderr:\n{}",
        out.stderr
    );
    let err = strip_ansi(&out.stderr);
    let warning_line = err.lines().find(|l| l.contains("debug/spare"));
    assert!(
        warning_line.is_some_and(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("warn") || l.contains("unused") || l.contains("not used")
        }),
        "expected a warning naming the unused exporter debug/spare on stderr:\n{}",
        out.stderr
    );
}

fn print_config(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut full = vec!["print-config"];
    full.extend_from_slice(args);
    let out = run_spanpipe_env(&full, env);
    assert_eq!(
        out.code(),
        0,
        "print-config {args:?} failed\nstderr:\n{}",
        out.stderr
    );
    assert!(
        !out.stdout.trim().is_empty(),
        "print-config printed nothing; stderr:\n{}",
        out.stderr
    );
    yaml_to_json(&out.stdout)
}

#[test]
fn set_override_shows_in_print_config() {
    let cfg = write_config("set.yaml", VALID_BASE);
    let path = cfg.path.to_str().unwrap();
    let before = print_config(&["--config", path], &[]);
    assert_eq!(
        at(&before, "processors.batch.timeout").and_then(|v| v.as_str()),
        Some("200ms"),
        "print-config without --set: {before:#}"
    );
    let after = print_config(
        &[
            "--config",
            path,
            "--set",
            "processors.batch.timeout=750ms",
            "--set",
            "receivers.otlp.protocols.grpc.endpoint=127.0.0.1:24317",
        ],
        &[],
    );
    assert_eq!(
        at(&after, "processors.batch.timeout").and_then(|v| v.as_str()),
        Some("750ms"),
        "{after:#}"
    );
    assert_eq!(
        at(&after, "receivers.otlp.protocols.grpc.endpoint").and_then(|v| v.as_str()),
        Some("127.0.0.1:24317"),
        "{after:#}"
    );
    // Untouched values survive the override.
    assert_eq!(
        at(&after, "exporters.debug.verbosity").and_then(|v| v.as_str()),
        Some("basic"),
        "{after:#}"
    );
}

#[test]
fn print_config_redacts_token() {
    let secret = "sup3r-s3cret-t0ken-value";
    let yaml = VALID_BASE
        .replace(
            "exporters:\n  debug: { verbosity: basic }\n",
            &format!(
                "exporters:\n  debug: {{ verbosity: basic }}\n  otlp/auth:\n    endpoint: 127.0.0.1:4999\n    tls: {{ insecure: true }}\n    headers:\n      token: {secret}\n"
            ),
        )
        .replace("exporters: [debug] }", "exporters: [debug, otlp/auth] }");
    assert!(
        yaml.contains("otlp/auth]"),
        "test setup: replacement failed"
    );
    let cfg = write_config("token.yaml", &yaml);
    let out = run_spanpipe(&["print-config", "--config", cfg.path.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "stderr:\n{}", out.stderr);
    assert!(
        !out.stdout.contains(secret),
        "print-config leaked the token:\n{}",
        out.stdout
    );
    assert!(
        !out.stderr.contains(secret),
        "print-config leaked the token on stderr:\n{}",
        out.stderr
    );
    let doc = yaml_to_json(&out.stdout);
    let token = doc
        .get("exporters")
        .and_then(|e| e.get("otlp/auth"))
        .and_then(|e| e.get("headers"))
        .and_then(|h| h.get("token"));
    assert!(
        token.is_some(),
        "the token key itself should still be shown (redacted):\n{}",
        out.stdout
    );
}

#[test]
fn env_expansion_shows_in_print_config() {
    let yaml = VALID_BASE.replace(
        "http: { endpoint: 127.0.0.1:4318 }",
        "http: { endpoint: \"${env:SPANPIPE_E2E_HTTP_EP}\" }",
    );
    assert!(
        yaml.contains("${env:SPANPIPE_E2E_HTTP_EP}"),
        "test setup: replacement failed"
    );
    let cfg = write_config("env.yaml", &yaml);
    let doc = print_config(
        &["--config", cfg.path.to_str().unwrap()],
        &[("SPANPIPE_E2E_HTTP_EP", "127.0.0.1:24318")],
    );
    assert_eq!(
        at(&doc, "receivers.otlp.protocols.http.endpoint").and_then(|v| v.as_str()),
        Some("127.0.0.1:24318"),
        "{doc:#}"
    );
}

#[test]
fn components_lists_builtin_types() {
    let out = run_spanpipe(&["components"]);
    assert_eq!(out.code(), 0, "stderr:\n{}", out.stderr);
    let words: std::collections::HashSet<&str> = out
        .stdout
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    for kind in ["otlp", "batch", "otlp_http", "debug", "file"] {
        assert!(
            words.contains(kind),
            "`spanpipe components` does not list {kind}:\n{}",
            out.stdout
        );
    }
}

/// `key:` (null) and `key: {}` mean the same in a collector config (a component with default settings).
fn normalize(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::Null => (k, serde_json::json!({})),
                    other => (k, normalize(other)),
                })
                .collect(),
        ),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(normalize).collect())
        }
        other => other,
    }
}

#[test]
fn default_config_is_configs_local_yaml() {
    let local_path = workspace_root().join("configs").join("local.yaml");
    let local_text = std::fs::read_to_string(&local_path).expect("configs/local.yaml exists");
    let local = normalize(yaml_to_json(&local_text));
    let embedded = normalize(print_config(&[], &[]));
    assert_eq!(
        embedded, local,
        "print-config with no --config must equal configs/local.yaml in content"
    );
    let explicit = normalize(print_config(
        &["--config", local_path.to_str().unwrap()],
        &[],
    ));
    assert_eq!(
        embedded, explicit,
        "embedded default differs from print-config --config configs/local.yaml"
    );
}

#[path = "config_otel.rs"]
mod otel;
