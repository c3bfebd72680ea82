//! Configuration: defaults, and every validation error reported as `file:line:col: key.path: message`.

use std::time::Duration;

use spanpipe_core::{BuildContext, ComponentId, ExporterFactory};
use spanpipe_net::compression::Compression;

use crate::MlflowExporterFactory;
use crate::config::{AuthSource, Destination, MlflowConfig, RuleAs};
use crate::routing::{Source, Target};

fn ctx() -> BuildContext {
    BuildContext::new(ComponentId::new("mlflow", None), "exporters.mlflow".into())
}

fn node(yaml: &str) -> spanpipe_core::Node {
    spanpipe_config::load_str("test.yaml", yaml).expect("yaml")
}

fn cfg(yaml: &str) -> MlflowConfig {
    ctx().config(&node(yaml)).expect("config")
}

/// The build error as `file:line:col: key: message`.
fn err(yaml: &str) -> String {
    match MlflowExporterFactory::default().build(&ctx(), &node(yaml)) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

const URI: &str = "tracking_uri: http://127.0.0.1:5000\n";

#[test]
fn defaults_follow_mlflow() {
    let s = cfg(URI).validate().unwrap();
    assert_eq!(
        s.default_target,
        Target::Id("0".into()),
        "MLflow's Default experiment"
    );
    assert_eq!(s.compression, Compression::Gzip);
    assert_eq!(s.timeout, Duration::from_secs(30));
    assert_eq!(s.max_spans, 1000);
    assert_eq!(s.max_bytes, 4 << 20);
    assert_eq!(s.auth, AuthSource::None);
    assert!(s.rules.is_empty() && s.workspace.is_none());
    let Destination::Mlflow(u) = &s.destination else {
        panic!("{:?}", s.destination)
    };
    assert_eq!(u.as_str(), "http://127.0.0.1:5000/");
    let built = MlflowExporterFactory::default()
        .build(&ctx(), &node(URI))
        .unwrap();
    assert_eq!(built.settings.timeout, Duration::from_secs(30));
    assert_eq!(
        cfg(&format!("{URI}max_request_bytes: 0"))
            .validate()
            .unwrap()
            .max_bytes,
        usize::MAX
    );
}

#[test]
fn experiments_auth_workspace_and_routing_parse() {
    let s = cfg(&format!(
        "{URI}experiment_name: agents\nworkspace: team-a\ntoken_file: /var/run/token\nrouting:\n  - from: resource_attribute\n    attribute: service.name\n    as: experiment_name\n  - {{from: request_header, header: X-MLflow-Experiment-Id, as: experiment_id}}\n"
    ))
    .validate()
    .unwrap();
    assert_eq!(s.default_target, Target::Name("agents".into()));
    assert_eq!(s.workspace.as_deref(), Some("team-a"));
    assert_eq!(s.auth, AuthSource::TokenFile("/var/run/token".into()));
    assert_eq!(
        s.rules[0].source,
        Source::ResourceAttribute("service.name".into())
    );
    assert_eq!(
        s.rules[1].source,
        Source::RequestHeader("x-mlflow-experiment-id".into())
    );
    assert_eq!(s.rules[1].value_as, RuleAs::ExperimentId);
    let s = cfg(&format!(
        "{URI}experiment_id: 42\nusername: bob\npassword: pw"
    ))
    .validate()
    .unwrap();
    assert_eq!(s.default_target, Target::Id("42".into()));
    assert!(matches!(s.auth, AuthSource::Basic { .. }));
    assert_eq!(
        cfg("tracking_uri: databricks")
            .validate()
            .unwrap()
            .destination,
        Destination::Databricks
    );
    assert_eq!(
        cfg(&format!("{URI}compression: deflate")).compression,
        Compression::Deflate
    );
}

#[test]
fn errors_name_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "timeout: 5s\n",
            "test.yaml:1:1: exporters.mlflow.tracking_uri: is required",
        ),
        (
            "tracking_uri: ftp://h\n",
            "test.yaml:1:15: exporters.mlflow.tracking_uri: ",
        ),
        (
            "tracking_uri: http://u:p@h:5000\n",
            "exporters.mlflow.tracking_uri: must not contain credentials",
        ),
        (
            &format!("{URI}experiment_id: 1\nexperiment_name: x\n"),
            "test.yaml:3:18: exporters.mlflow.experiment_name: set either",
        ),
        (
            &format!("{URI}experiment_id: abc\n"),
            "test.yaml:2:16: exporters.mlflow.experiment_id: \"abc\" is not an MLflow experiment id",
        ),
        (
            &format!("{URI}workspace: Team_A\n"),
            "test.yaml:2:12: exporters.mlflow.workspace: \"Team_A\" is not a valid MLflow workspace",
        ),
        (
            &format!("{URI}workspace: \"\"\n"),
            "exporters.mlflow.workspace: \"\" is not a valid",
        ),
        (
            &format!("{URI}token: a\ntoken_file: /t\n"),
            "test.yaml:3:13: exporters.mlflow.token_file: set at most one",
        ),
        (
            &format!("{URI}token: a\nusername: u\npassword: p\n"),
            "exporters.mlflow.username: set at most one",
        ),
        (
            &format!("{URI}username: u\n"),
            "exporters.mlflow.password: is required with username",
        ),
        (
            &format!("{URI}compression: zstd\n"),
            "test.yaml:2:14: exporters.mlflow.compression: MLflow answers zstd bodies with 400",
        ),
        (
            &format!("{URI}tls: {{insecure: true}}\n"),
            "exporters.mlflow.tls.insecure: is for gRPC",
        ),
        (
            &format!("{URI}tls: {{ca_file: /ca, insecure_skip_verify: true}}\n"),
            "exporters.mlflow.tls.insecure_skip_verify: cannot be combined",
        ),
        (
            &format!("{URI}max_spans_per_request: 0\n"),
            "test.yaml:2:24: exporters.mlflow.max_spans_per_request: must be at least 1",
        ),
        (
            &format!("{URI}max_request_bytes: 100\n"),
            "exporters.mlflow.max_request_bytes: must be at least 1KiB",
        ),
        (
            &format!(
                "{URI}routing:\n  - {{from: resource_attribute, as: experiment_name}}\n  - {{from: request_header, as: experiment_id}}\n"
            ),
            "test.yaml:3:5: exporters.mlflow.routing[0].attribute: is required with from: resource_attribute",
        ),
        (
            &format!(
                "{URI}routing:\n  - from: request_header\n    header: \"bad header\"\n    as: experiment_id\n"
            ),
            "test.yaml:4:13: exporters.mlflow.routing[0].header: \"bad header\" is not a valid header name",
        ),
        (
            &format!(
                "{URI}routing:\n  - {{from: request_header, header: h, attribute: a, as: experiment_id}}\n"
            ),
            "exporters.mlflow.routing[0].attribute: only applies to from: resource_attribute",
        ),
        (
            "tracking_uri: databricks\nusername: u\npassword: p\n",
            "exporters.mlflow.username: Databricks takes a bearer token",
        ),
        (
            &format!("{URI}sending_queue: {{num_consumers: 0}}\n"),
            "exporters.mlflow.sending_queue.num_consumers",
        ),
    ];
    for (yaml, want) in cases {
        let got = err(yaml);
        assert!(
            got.contains(want),
            "for:\n{yaml}\nwant: {want}\ngot:  {got}"
        );
    }
}

#[test]
fn unknown_keys_and_bad_values_are_rejected_by_serde() {
    assert!(err(&format!("{URI}experiment: x\n")).contains("experiment"));
    assert!(
        err(&format!(
            "{URI}routing: [{{from: span_attribute, as: experiment_id}}]\n"
        ))
        .contains("span_attribute")
    );
    assert!(
        err(&format!(
            "{URI}routing: [{{from: request_header, header: h, as: run_id}}]\n"
        ))
        .contains("run_id")
    );
    assert!(
        err(&format!(
            "{URI}routing: [{{from: request_header, header: h, as: experiment_id, x: 1}}]\n"
        ))
        .contains("x")
    );
    assert!(err(&format!("{URI}compression: br\n")).contains("br"));
}

#[test]
fn tenant_guard_options() {
    let s = cfg(URI).validate().unwrap();
    assert!(s.guard.allowed.is_none() && s.guard.create);
    assert_eq!(s.guard.creations_per_minute, 60);
    let s = cfg(&format!(
        "{URI}routing: [{{from: request_header, header: h, as: experiment_name}}]\nallowed_experiments: ['team-.*', 'x']\ncreate_experiments: false\nmax_experiment_creations_per_minute: 0\n"
    ))
    .validate()
    .unwrap();
    let set = s.guard.allowed.unwrap();
    assert!(
        set.is_match("team-a")
            && set.is_match("x")
            && !set.is_match("xx")
            && !set.is_match("a-team-a")
    );
    assert!(!s.guard.create && s.guard.creations_per_minute == 0);
    let bad = err(&format!(
        "{URI}routing: [{{from: request_header, header: h, as: experiment_name}}]\nallowed_experiments: ['ok', '(']\n"
    ));
    assert!(
        bad.contains("exporters.mlflow.allowed_experiments[1]: is not a valid regular expression"),
        "{bad}"
    );
    let lonely = err(&format!("{URI}allowed_experiments: ['a']\n"));
    assert!(
        lonely.contains("only applies to values chosen by `routing`"),
        "{lonely}"
    );
}

#[test]
fn auth_authenticator_is_exclusive_and_must_exist() {
    let both = err(&format!(
        "{URI}token: t\nauth: {{authenticator: bearertokenauth}}\n"
    ));
    assert!(
        both.contains(
            "exporters.mlflow.auth: set at most one of token, token_file, username/password, auth"
        ),
        "{both}"
    );
    let empty = err(&format!("{URI}auth: {{authenticator: ''}}\n"));
    assert!(empty.contains("auth.authenticator"), "{empty}");
    let missing = err(&format!(
        "{URI}auth: {{authenticator: bearertokenauth/x}}\n"
    ));
    assert!(
        missing.contains(
            "exporters.mlflow.auth.authenticator: extension \"bearertokenauth/x\" is not defined"
        ),
        "{missing}"
    );
    assert_eq!(
        cfg(&format!(
            "{URI}auth: {{authenticator: bearertokenauth/x}}\n"
        ))
        .validate()
        .unwrap()
        .auth,
        AuthSource::Authenticator("bearertokenauth/x".into())
    );
}
