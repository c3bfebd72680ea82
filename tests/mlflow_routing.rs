//! Routing into experiments: two services (different `service.name`, rule `resource_attribute: service.name as
//! experiment_name`) land in two experiments that spanpipe creates by name; a third client picks a pre-created
//! experiment by request header (`include_metadata` + `request_header` rule, first in order); nothing reaches the
//! default experiment.

use std::time::Duration;

use spanpipe_e2e::mlflow::{mlflow_server, unique_suffix};
use spanpipe_e2e::{Spanpipe, free_ports, run_python, tail, wait_until};

const TRACES: usize = 20;
const SPANS_PER_TRACE: usize = 3;

fn send(http: u16, service: &str, headers: &[String], dir: &std::path::Path) {
    let mut args = vec![
        "--endpoint".to_string(),
        format!("http://127.0.0.1:{http}/v1/traces"),
        "--traces".into(),
        TRACES.to_string(),
        "--spans-per-trace".into(),
        SPANS_PER_TRACE.to_string(),
        "--run-id".into(),
        service.into(),
        "--service-name".into(),
        service.into(),
        "--ids-out".into(),
        dir.join(format!("{service}.ids")).display().to_string(),
    ];
    for h in headers {
        args.extend(["--header".to_string(), h.clone()]);
    }
    let out = run_python("mlflow_otel_workload.py", &args, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "workload {service} failed:\n{}",
        tail(&out.stderr, 3000)
    );
}

#[test]
fn services_route_to_experiments_created_by_name_and_headers_pick_an_id() {
    let server = mlflow_server();
    let mlflow = server.client();
    let run = unique_suffix();
    let (a, b, c) = (
        format!("svc-a-{run}"),
        format!("svc-b-{run}"),
        format!("svc-c-{run}"),
    );
    let default_name = format!("routing-default-{run}");
    let picked = mlflow.create_experiment(&format!("picked-by-header-{run}"));
    let work = tempfile::Builder::new()
        .prefix("spanpipe-mlflow-routing-")
        .tempdir()
        .expect("tempdir");
    let [http] = free_ports::<1>();
    let sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http}, include_metadata: true }}
processors:
  batch: {{ timeout: 100ms }}
exporters:
  mlflow:
    tracking_uri: {uri}
    experiment_name: {default_name}
    routing:
      - {{ from: request_header, header: x-mlflow-experiment-id, as: experiment_id }}
      - {{ from: resource_attribute, attribute: service.name, as: experiment_name }}
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 2s }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [mlflow] }}
",
            uri = server.uri
        ),
        &[http],
    );
    send(http, &a, &[], work.path());
    send(http, &b, &[], work.path());
    send(
        http,
        &c,
        &[format!("x-mlflow-experiment-id={picked}")],
        work.path(),
    );

    let total = TRACES * SPANS_PER_TRACE;
    let mut ids = (None, None);
    let created = wait_until(Duration::from_secs(60), || {
        ids = (mlflow.experiment_id(&a), mlflow.experiment_id(&b));
        ids.0.is_some() && ids.1.is_some()
    });
    assert!(
        created,
        "experiments {a} / {b} not created: {ids:?}\nspanpipe:\n{}",
        tail(&sp.stderr_text(), 3000)
    );
    let (id_a, id_b) = (ids.0.unwrap_or_default(), ids.1.unwrap_or_default());
    assert_ne!(id_a, id_b);
    for (name, id) in [(&a, &id_a), (&b, &id_b), (&c, &picked)] {
        let n = mlflow.wait_for_spans(id, total, Duration::from_secs(90));
        assert_eq!(n, total, "{name} → experiment {id}: spans");
        let services: std::collections::BTreeSet<String> = mlflow
            .trace_infos(id)
            .iter()
            .filter_map(|t| t["tags"]["service.name"].as_str().map(str::to_string))
            .collect();
        assert_eq!(
            services.into_iter().collect::<Vec<_>>(),
            vec![name.clone()],
            "experiment {id} holds only {name}"
        );
    }
    assert_eq!(
        mlflow.experiment_id(&c),
        None,
        "the header rule wins over the service rule"
    );
    assert_eq!(
        mlflow.experiment_id(&default_name),
        None,
        "nothing fell through to the default experiment"
    );
}
