//! OTel-Collector-style configs (`tests/configs/otel/*.yaml`, written as Collector users write them) validate
//! unchanged; options spanpipe does not support still fail with a located error; `validate` reports every
//! problem, suggests the closest type, and a taken port is one line naming the component, option and port.

use std::path::PathBuf;

use spanpipe_e2e::{run_bounded, spanpipe_bin, workspace_root};

use super::{diags_for, expect_error, validate, write_config};

fn otel_configs() -> Vec<PathBuf> {
    let dir = workspace_root().join("tests/configs/otel");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn otel_collector_configs_validate_unchanged() {
    let files = otel_configs();
    assert!(files.len() >= 5, "expected the OTel config collection");
    let mut failures = Vec::new();
    for f in &files {
        let out = validate(f);
        if !out.status.success() {
            failures.push(format!("{}:\n{}", f.display(), out.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn validate_reports_every_error_with_its_location() {
    let yaml = "\
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:4317 }
      htp: {}
exporters:
  debug: { verbosty: basic }
processors:
  batch: { timeout: nope }
service:
  telemetry: { metrics: { adress: x } }
  pipelines:
    traces: { receivers: [otlp], processors: [batch, nosuch], exporters: [debug] }
";
    let cfg = write_config("many_errors.yaml", yaml);
    let out = validate(&cfg.path);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let diags = diags_for(&out.stderr, "many_errors.yaml");
    let found: Vec<(u32, &str)> = diags.iter().map(|d| (d.line, d.key_path())).collect();
    for want in [
        (5, "receivers.otlp.protocols.htp"),
        (7, "exporters.debug.verbosty"),
        (9, "processors.batch.timeout"),
        (11, "service.telemetry.metrics.adress"),
        (13, "service.pipelines.traces.processors[1]"),
    ] {
        assert!(
            found.contains(&want),
            "missing {want:?} in {found:?}\n{}",
            out.stderr
        );
    }
    assert!(out.stderr.contains("5 errors"), "{}", out.stderr);
}

#[test]
fn unknown_type_names_the_closest_known_type() {
    let yaml = "\
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:4317 }
exporters:
  otlphtp: { endpoint: http://127.0.0.1:4318 }
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [otlphtp] }
";
    expect_error(
        "did_you_mean.yaml",
        yaml,
        6,
        "typo in a type",
        |key, rest| key == "exporters.otlphtp" && rest.contains("did you mean `otlphttp`?"),
    );
}

#[test]
fn taken_port_is_one_line_naming_component_option_and_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let yaml = format!(
        "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{port} }}
exporters:
  debug:
service:
  telemetry: {{ metrics: {{ address: \"\" }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [debug] }}
"
    );
    let cfg = write_config("taken.yaml", &yaml);
    let mut cmd = std::process::Command::new(spanpipe_bin());
    cmd.args(["--config", cfg.path.to_str().expect("utf-8")]);
    let out = run_bounded(&mut cmd, std::time::Duration::from_secs(30));
    assert_ne!(out.code(), 0, "{}", out.stderr);
    let want = format!(
        "error: start failed: receivers.otlp: protocols.http.endpoint: cannot listen on 127.0.0.1:{port}: \
         port {port} is already in use"
    );
    assert!(
        out.stderr.lines().any(|l| l.starts_with(&want)),
        "{}",
        out.stderr
    );
    drop(taken);
}

#[test]
fn unsupported_collector_options_give_located_errors() {
    let yaml = "\
receivers:
  otlp:
    protocols:
      grpc:
processors:
  filter/m:
    metrics:
      metric: ['name == \"x\"']
  filter/l:
    logs:
      log_record: ['severity_number < SEVERITY_NUMBER_WARN']
exporters:
  file:
    path: /tmp/x.json
    group_by: { enabled: true }
  otlphttp:
    endpoint: http://127.0.0.1:4318
    proxy_url: http://proxy:3128
connectors:
  servicegraph:
  spanmetrics:
    histogram:
      explicit: {}
      exponential: { max_size: 160 }
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [file] }
";
    let cfg = write_config("unsupported.yaml", yaml);
    let out = validate(&cfg.path);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let diags = diags_for(&out.stderr, "unsupported.yaml");
    let found: Vec<(u32, &str)> = diags.iter().map(|d| (d.line, d.key_path())).collect();
    for want in [
        (8, "processors.filter/m.metrics.metric"),
        (11, "processors.filter/l.logs.log_record"),
        (15, "exporters.file.group_by"),
        (18, "exporters.otlphttp.proxy_url"),
        (20, "connectors.servicegraph"),
        (24, "connectors.spanmetrics.histogram.exponential"),
    ] {
        assert!(
            found.contains(&want),
            "missing {want:?} in {found:?}\n{}",
            out.stderr
        );
    }
}

#[test]
fn deprecated_and_inert_types_warn_naming_what_to_use() {
    let out = validate(&workspace_root().join("tests/configs/otel/browser-rum.yaml"));
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "exporters.logging: type \"logging\" is deprecated; use the `debug` exporter"
        ),
        "{}",
        out.stderr
    );
    let out = validate(&workspace_root().join("tests/configs/otel/extensions-demo.yaml"));
    assert!(out.status.success(), "{}", out.stderr);
    for ext in [
        "extensions.pprof: accepted but not served",
        "extensions.zpages: accepted but not served",
    ] {
        assert!(out.stderr.contains(ext), "{ext}\n{}", out.stderr);
    }
}

#[test]
fn internal_metrics_port_taken_is_one_warning_line_and_the_pipeline_runs() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let [http] = spanpipe_e2e::free_ports::<1>();
    let yaml = format!(
        "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
exporters:
  debug:
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{port} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [debug] }}
"
    );
    let mut sp = spanpipe_e2e::Spanpipe::start(&yaml, &[http]);
    let want = format!(
        "service.telemetry.metrics.address: cannot listen on 127.0.0.1:{port}: port {port} is already in use"
    );
    let lines: Vec<String> = sp
        .stderr_text()
        .lines()
        .filter(|l| l.contains(&want))
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 1, "{}", sp.stderr_text());
    sp.assert_running();
    sp.stop_gracefully_within(std::time::Duration::from_secs(10));
    drop(taken);
}

#[test]
fn push_telemetry_readers_are_refused_with_their_location() {
    let yaml = "\
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  debug:
service:
  telemetry:
    metrics:
      readers:
        - periodic:
            exporter: { otlp: { endpoint: http://127.0.0.1:4318 } }
  pipelines:
    traces: { receivers: [otlp], exporters: [debug] }
";
    expect_error("readers.yaml", yaml, 12, "a periodic reader", |key, _| {
        key == "service.telemetry.metrics.readers[0].periodic"
    });
}

#[test]
fn a_broken_extension_is_reported_once_not_again_by_what_names_it() {
    let yaml = "\
extensions:
  file_storage:
    directory: /tmp
    not_an_option: 1
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  otlp:
    endpoint: backend:4317
    sending_queue: { storage: file_storage }
service:
  extensions: [file_storage]
  pipelines:
    traces: { receivers: [otlp], exporters: [otlp] }
";
    let cfg = write_config("broken_ext.yaml", yaml);
    let out = validate(&cfg.path);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let diags = diags_for(&out.stderr, "broken_ext.yaml");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].line, 4);
}
