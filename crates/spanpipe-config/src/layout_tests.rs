use super::*;
use crate::load_str;

const VALID: &str = "\
receivers:
  otlp:
    protocols:
      grpc:
  otlp/unused:
processors:
  batch:
  memory_limiter:
    limit_mib: 100
exporters:
  debug:
  otlp/backend:
    endpoint: backend:4317
connectors:
  forward:
extensions:
  health_check:
  pprof:
service:
  extensions: [health_check]
  telemetry:
    logs:
      level: info
  shutdown_timeout: 10s
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [forward]
    traces/backend:
      receivers: [forward]
      exporters: [otlp/backend, debug]
";

fn parse(text: &str) -> Result<(CollectorConfig, Vec<Warning>), ConfigError> {
    CollectorConfig::from_node(&load_str("config.yaml", text).unwrap())
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn valid_config() {
    let (config, warnings) = parse(VALID).unwrap();
    let ids = |s: &Section| {
        s.iter()
            .map(|(id, _, _)| id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&config.receivers), ["otlp", "otlp/unused"]);
    assert_eq!(ids(&config.processors), ["batch", "memory_limiter"]);
    assert_eq!(ids(&config.exporters), ["debug", "otlp/backend"]);
    assert_eq!(ids(&config.connectors), ["forward"]);
    assert!(config.receivers[1].2.is_null());
    assert_eq!(
        config.receivers[1].1.location.to_string(),
        "config.yaml:5:3"
    );
    assert_eq!(
        config.processors[1]
            .2
            .get("limit_mib")
            .and_then(Node::as_str),
        Some("100")
    );
    assert_eq!(config.service.extensions.len(), 1);
    assert_eq!(
        config.service.shutdown_timeout.0,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(
        config
            .service
            .telemetry
            .get("logs")
            .and_then(|l| l.get("level"))
            .and_then(Node::as_str),
        Some("info")
    );
    let [first, second] = config.service.pipelines.as_slice() else {
        panic!("two pipelines expected")
    };
    assert_eq!(first.id.to_string(), "traces");
    assert_eq!(first.location.to_string(), "config.yaml:26:5");
    let names = |l: &Vec<(ComponentId, Location)>| {
        l.iter().map(|(id, _)| id.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(names(&first.processors), ["memory_limiter", "batch"]);
    assert_eq!(first.processors[1].1.to_string(), "config.yaml:28:36");
    assert_eq!(second.id.name.as_deref(), Some("backend"));
    assert_eq!(names(&second.exporters), ["otlp/backend", "debug"]);

    let messages: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "config.yaml:5:3: receivers.otlp/unused: receiver \"otlp/unused\" is configured but not used in any pipeline",
            "config.yaml:18:3: extensions.pprof: extension \"pprof\" is configured but not enabled in service.extensions",
        ]
    );
}

#[test]
fn defaults_when_service_is_minimal() {
    let (config, warnings) =
        parse("receivers: {otlp: }\nexporters: {debug: }\nservice:\n  pipelines:\n    logs: {receivers: [otlp], exporters: [debug]}\n")
            .unwrap();
    assert_eq!(
        config.service.shutdown_timeout.0,
        std::time::Duration::from_secs(30)
    );
    assert!(config.service.telemetry.is_null());
    assert!(config.service.extensions.is_empty());
    assert!(warnings.is_empty());
}

#[test]
fn undefined_component_in_pipeline() {
    let text = VALID.replace(
        "exporters: [otlp/backend, debug]",
        "exporters: [otlp/x, debug]",
    );
    assert_eq!(
        error(&text),
        "config.yaml:32:19: service.pipelines.traces/backend.exporters[0]: pipeline traces/backend references exporter \"otlp/x\" which is not configured"
    );
    let text = VALID.replace(
        "processors: [memory_limiter, batch]",
        "processors: [memory_limiter, otlp]",
    );
    assert!(error(&text).starts_with("config.yaml:28:36: service.pipelines.traces.processors[1]: pipeline traces references processor \"otlp\""));
    // A connector is fine as receiver/exporter, but not as a processor.
    let text = VALID.replace(
        "processors: [memory_limiter, batch]",
        "processors: [forward]",
    );
    assert!(error(&text).contains("references processor \"forward\" which is not configured"));
}

#[test]
fn bad_ids() {
    let text = VALID.replace("  otlp/unused:", "  otlp/:");
    assert!(
        error(&text).starts_with("config.yaml:5:3: receivers.otlp/: invalid id \"otlp/\""),
        "{}",
        error(&text)
    );
    let text = VALID.replace("  batch:\n", "  9batch:\n");
    assert!(error(&text).starts_with("config.yaml:7:3: processors.9batch: invalid component id"));
    let text = VALID.replace("    traces/backend:", "    spans/backend:");
    assert!(
        error(&text)
            .starts_with("config.yaml:30:5: service.pipelines.spans/backend: invalid pipeline id")
    );
    let text = VALID.replace("receivers: [forward]", "receivers: [\"for ward\"]");
    assert!(error(&text).starts_with(
        "config.yaml:31:19: service.pipelines.traces/backend.receivers[0]: invalid component id"
    ));
}

#[test]
fn unknown_keys() {
    let text = VALID.replace(
        "  shutdown_timeout: 10s",
        "  shutdown_timeout: 10s\n  metrics: {}",
    );
    assert_eq!(
        error(&text),
        "config.yaml:25:3: service.metrics: unknown key `metrics` in service: expected one of extensions, pipelines, telemetry, shutdown_timeout, memory_limit"
    );
    let text = VALID.replace(
        "      exporters: [forward]",
        "      exporters: [forward]\n      exporter: [debug]",
    );
    assert!(error(&text).starts_with("config.yaml:30:7: service.pipelines.traces.exporter: unknown key `exporter` in pipeline traces"));
    let text = format!("{VALID}recievers: {{}}\n");
    assert!(
        error(&text).starts_with("config.yaml:33:1: recievers: unknown top-level key `recievers`")
    );
    let text = VALID.replace("  shutdown_timeout: 10s", "  shutdown_timeout: 10");
    assert!(
        error(&text)
            .starts_with("config.yaml:24:21: service.shutdown_timeout: bad duration \"10\"")
    );
}

#[test]
fn empty_pipeline_lists() {
    let text = VALID.replace("receivers: [forward]", "receivers: []");
    assert_eq!(
        error(&text),
        "config.yaml:31:18: service.pipelines.traces/backend.receivers: pipeline traces/backend has no receivers"
    );
    let text = VALID.replace("      exporters: [forward]\n", "");
    assert_eq!(
        error(&text),
        "config.yaml:26:5: service.pipelines.traces.exporters: pipeline traces has no exporters"
    );
    let text = "receivers: {otlp: }\nexporters: {debug: }\nservice:\n  pipelines:\n    traces:\n";
    assert!(error(text).ends_with("pipeline traces has no receivers"));
}

#[test]
fn duplicates_missing_pipelines_and_extensions() {
    let text = VALID.replace(
        "exporters: [otlp/backend, debug]",
        "exporters: [debug, otlp/backend, debug]",
    );
    let e = error(&text);
    assert!(e.starts_with("config.yaml:32:40: service.pipelines.traces/backend.exporters[2]: \"debug\" is listed more than once"), "{e}");
    let text = "receivers: {otlp: }\nservice:\n  extensions: []\n";
    assert_eq!(
        error(text),
        "config.yaml:2:1: service.pipelines: no pipelines configured"
    );
    assert_eq!(
        error("receivers: {otlp: }\n"),
        "config.yaml:1:1: service.pipelines: no pipelines configured"
    );
    let text = VALID.replace(
        "extensions: [health_check]",
        "extensions: [health_check, zpages]",
    );
    assert_eq!(
        error(&text),
        "config.yaml:20:30: service.extensions: service.extensions references extension \"zpages\" which is not configured"
    );
}

#[test]
fn connector_warnings_and_ambiguity() {
    let text = VALID.replace("receivers: [forward]", "receivers: [otlp]");
    let (_, warnings) = parse(&text).unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.key == "connectors.forward" && w.message.contains("not as a receiver")),
        "{warnings:?}"
    );
    let text = VALID.replace("  otlp/unused:", "  forward:");
    assert!(error(&text).contains("ambiguous id"));
}
