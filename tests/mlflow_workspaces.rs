//! MLflow workspaces: with a server started with `--enable-workspaces`, traces land in the workspace's experiment
//! (created there by name, `X-MLFLOW-WORKSPACE` on every call); against a server without workspaces the batch is
//! refused for good (500 FEATURE_DISABLED) with a message saying what to change, and counted as failed.

use std::time::Duration;

use spanpipe_e2e::mlflow::{mlflow_server, own_mlflow_server};
use spanpipe_e2e::{Spanpipe, free_ports, run_python, tail, wait_until};

const TRACES: usize = 10;
const SPANS_PER_TRACE: usize = 4;

fn config(http: u16, uri: &str, extra: &str) -> String {
    format!(
        "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ timeout: 100ms }}
exporters:
  mlflow:
    tracking_uri: {uri}
{extra}    retry_on_failure: {{ initial_interval: 200ms, max_interval: 2s }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [mlflow] }}
"
    )
}

fn send(http: u16, run: &str, dir: &std::path::Path) {
    let args: Vec<String> = vec![
        "--endpoint".into(),
        format!("http://127.0.0.1:{http}/v1/traces"),
        "--traces".into(),
        TRACES.to_string(),
        "--spans-per-trace".into(),
        SPANS_PER_TRACE.to_string(),
        "--run-id".into(),
        run.into(),
        "--ids-out".into(),
        dir.join(format!("{run}.ids")).display().to_string(),
    ];
    let out = run_python("mlflow_otel_workload.py", &args, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "workload failed:\n{}",
        tail(&out.stderr, 3000)
    );
}

#[test]
fn traces_land_in_the_workspace_experiment() {
    let server = own_mlflow_server(&["--enable-workspaces"]);
    let ws = format!("team-{}", std::process::id());
    let admin = server.client();
    admin.create_workspace(&ws);
    let in_ws = admin.in_workspace(&ws);
    let work = tempfile::Builder::new()
        .prefix("spanpipe-mlflow-ws-")
        .tempdir()
        .expect("tempdir");
    let [http] = free_ports::<1>();
    let sp = Spanpipe::start(
        &config(
            http,
            &server.uri,
            &format!("    workspace: {ws}\n    experiment_name: agents\n"),
        ),
        &[http],
    );
    send(http, "ws", work.path());
    let mut id = None;
    let created = wait_until(Duration::from_secs(60), || {
        id = in_ws.experiment_id("agents");
        id.is_some()
    });
    assert!(
        created,
        "experiment not created in workspace {ws}:\n{}",
        tail(&sp.stderr_text(), 3000)
    );
    let id = id.unwrap_or_default();
    let n = in_ws.wait_for_spans(&id, TRACES * SPANS_PER_TRACE, Duration::from_secs(90));
    assert_eq!(
        n,
        TRACES * SPANS_PER_TRACE,
        "spans in {ws}/agents:\n{}",
        tail(&sp.stderr_text(), 3000)
    );
    let info = &in_ws.trace_infos(&id)[0];
    assert_eq!(
        info["trace_location"]["mlflow_experiment"]["experiment_id"],
        id.as_str()
    );
    assert_eq!(
        admin.experiment_id("agents"),
        None,
        "the experiment belongs to {ws}, not the default workspace"
    );
}

#[test]
fn a_workspace_on_a_server_without_workspaces_is_refused_with_a_clear_message() {
    let server = mlflow_server();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-mlflow-nows-")
        .tempdir()
        .expect("tempdir");
    let [http] = free_ports::<1>();
    let mut sp = Spanpipe::start(
        &config(http, &server.uri, "    workspace: team-a\n"),
        &[http],
    );
    send(http, "nows", work.path());
    let said = wait_until(Duration::from_secs(30), || {
        sp.stderr_text().contains("FEATURE_DISABLED")
    });
    let log = sp.stderr_text();
    assert!(
        said,
        "no FEATURE_DISABLED error logged:\n{}",
        tail(&log, 3000)
    );
    assert!(
        log.contains("remove `workspace` or start MLflow with --enable-workspaces")
            && log.contains("permanent error"),
        "{}",
        tail(&log, 3000)
    );
    assert!(
        !log.contains("retrying"),
        "FEATURE_DISABLED must not be retried:\n{}",
        tail(&log, 3000)
    );
    assert!(sp.stop_gracefully().success());
    let log = sp.stderr_text();
    let failed = format!("send_failed={}", TRACES * SPANS_PER_TRACE);
    assert!(
        log.contains(&failed),
        "every span counted as failed ({failed}):\n{}",
        tail(&log, 2000)
    );
}
