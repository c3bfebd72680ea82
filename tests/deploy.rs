//! Deployment artefacts, checked offline with the real tools:
//! - `deploy/kubernetes`: `kubectl kustomize` renders the base and both overlays; the output validates against
//!   the Kubernetes schemas (`kubernetes-validate --strict`, PyPI); the spanpipe config inside each ConfigMap
//!   passes `spanpipe validate` with exactly the environment the Deployment gives the container; probes, ports
//!   and the MLflow wiring of each overlay agree with that config.
//! - `deploy/grafana/spanpipe.json`: parses, and every metric its queries name is served by a running spanpipe
//!   (internal `/metrics` and the `prometheus` exporter) after real SDK spans went through it.
//! - `Dockerfile`: its `HEALTHCHECK` command, run as Docker would run it, tells a healthy endpoint from a
//!   failing or absent one.
//!
//! Tools: `kubectl` (`$KUBECTL`, else on `PATH`; Debian package `kubernetes-client`, whose kustomize v2.0.3 the
//! manifests are written for) and `kubernetes-validate` in the test venv (`tests/python/requirements-deploy.txt`).

#[path = "spanmetrics_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use spanpipe_e2e::yaml::yaml_to_json;
use spanpipe_e2e::{
    CmdOutput, Spanpipe, free_ports, run_bounded, run_python, spanpipe_bin, tail, venv_python,
    wait_until, workspace_root,
};
use support::{http_get, parse_exposition};

const OVERLAYS: [&str; 2] = ["standalone", "openshift-cr"];
/// Schema versions the manifests must satisfy: an old supported release (OpenShift 4.16) and the newest the
/// validator knows (its default).
const K8S_VERSIONS: [Option<&str>; 2] = [Some("1.29"), None];
/// The namespace the downward API would give the pod.
const TEST_NAMESPACE: &str = "team-a";

fn kubectl() -> PathBuf {
    let k = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("kubectl"));
    let probe = run_bounded(
        Command::new(&k).args(["version", "--client"]),
        Duration::from_secs(30),
    );
    assert!(
        probe.status.success(),
        "`{} version --client` failed: install Debian's kubernetes-client (bash scripts/test.sh does) or set \
         KUBECTL\n{}",
        k.display(),
        probe.stderr
    );
    k
}

fn kustomize(dir: &Path) -> String {
    let out = run_bounded(
        Command::new(kubectl()).arg("kustomize").arg(dir),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        out.stderr
    );
    assert!(
        out.stdout.contains("kind: Deployment"),
        "no Deployment rendered:\n{}",
        out.stdout
    );
    out.stdout
}

/// `kubectl kustomize` output → one JSON value per document.
fn documents(rendered: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in rendered.lines() {
        if line == "---" {
            docs.push(std::mem::take(&mut current));
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push(current);
    docs.iter()
        .filter(|d| !d.trim().is_empty())
        .map(|d| yaml_to_json(d))
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name_prefix: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(name_prefix))
        })
        .unwrap_or_else(|| panic!("no {kind} named {name_prefix}* rendered"))
}

fn k8s_validate(file: &Path) {
    let validator = venv_python()
        .parent()
        .expect("venv bin dir")
        .join("kubernetes-validate");
    assert!(
        validator.is_file(),
        "{} missing: run bash scripts/test.sh (installs tests/python/requirements-deploy.txt)",
        validator.display()
    );
    for version in K8S_VERSIONS {
        let mut cmd = Command::new(&validator);
        cmd.args(["--strict", "--quiet"]);
        if let Some(v) = version {
            cmd.args(["-k", v]);
        }
        let out = run_bounded(cmd.arg(file), Duration::from_secs(120));
        assert!(
            out.status.success(),
            "kubernetes-validate --strict ({}) rejected {}:\n{}{}",
            version.unwrap_or("latest"),
            file.display(),
            out.stdout,
            out.stderr
        );
    }
}

/// The spanpipe container of the `spanpipe` Deployment.
fn spanpipe_container(deploy: &Value) -> &Value {
    deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == "spanpipe")
        .expect("container spanpipe")
}

/// The container's environment as the kubelet would set it (downward API namespace → TEST_NAMESPACE).
fn container_env(container: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().expect("env name").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" {
            TEST_NAMESPACE.to_string()
        } else {
            panic!("env {name}: unsupported source {e}");
        };
        env.insert(name, value);
    }
    env
}

/// Writes the ConfigMap's files where the container's `--config` arguments expect them (checking the mount),
/// and returns the `--config` arguments rewritten to those files plus the merged config as JSON.
fn materialise_config(
    docs: &[Value],
    dir: &Path,
    env: &BTreeMap<String, String>,
) -> (Vec<String>, Value) {
    let deploy = find(docs, "Deployment", "spanpipe");
    let container = spanpipe_container(deploy);
    let cm = find(docs, "ConfigMap", "spanpipe-config");
    let cm_name = cm["metadata"]["name"].as_str().expect("cm name");
    let volumes = deploy["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes");
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| {
            volumes
                .iter()
                .any(|v| v["name"] == m["name"] && v["configMap"]["name"] == cm_name)
        })
        .unwrap_or_else(|| {
            panic!("no volumeMount of ConfigMap {cm_name} (hash suffix not rewritten?)")
        });
    let mount_path = mount["mountPath"].as_str().expect("mountPath");
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg"))
        .collect();
    let mut out_args = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "--config" {
            let path = it.next().expect("--config value");
            let file = path
                .strip_prefix(mount_path)
                .map(|f| f.trim_start_matches('/'))
                .unwrap_or_else(|| {
                    panic!("--config {path} is not under the ConfigMap mount {mount_path}")
                });
            let text = cm["data"][file]
                .as_str()
                .unwrap_or_else(|| panic!("ConfigMap {cm_name} has no key {file}"));
            let local = dir.join(file);
            std::fs::write(&local, text).expect("write config");
            out_args.push("--config".to_string());
            out_args.push(local.display().to_string());
        } else {
            out_args.push(a.to_string());
        }
    }
    assert!(
        out_args.iter().filter(|a| *a == "--config").count() >= 2,
        "expected config.yaml + overlay.yaml: {args:?}"
    );
    let mut pc = vec!["print-config".to_string()];
    pc.extend(out_args.iter().cloned());
    let merged = spanpipe_with_env(&pc, env);
    assert!(merged.status.success(), "print-config: {}", merged.stderr);
    (out_args, yaml_to_json(&merged.stdout))
}

/// Runs spanpipe with exactly `env` (plus PATH), so a variable the Deployment forgot cannot leak in from the
/// test runner's environment.
fn spanpipe_with_env(args: &[String], env: &BTreeMap<String, String>) -> CmdOutput {
    let mut cmd = Command::new(spanpipe_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env)
        .args(args);
    run_bounded(&mut cmd, Duration::from_secs(60))
}

/// `spanpipe validate` with the container's arguments and environment.
fn validate_container_config(args: &[String], env: &BTreeMap<String, String>, what: &str) {
    let mut validate_args = vec!["validate".to_string()];
    validate_args.extend(args.iter().cloned());
    let out = spanpipe_with_env(&validate_args, env);
    assert!(
        out.status.success(),
        "{what}: spanpipe validate rejected the ConfigMap's config:\n{}",
        out.stderr
    );
}

fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {endpoint}"))
}

/// Probes point at the health_check extension's port and paths; container ports match the config's endpoints.
fn check_spanpipe_pod(docs: &[Value], merged: &Value, what: &str) {
    let deploy = find(docs, "Deployment", "spanpipe");
    let pod = &deploy["spec"]["template"]["spec"];
    let c = spanpipe_container(deploy);
    let port_by_name: BTreeMap<&str, u64> = c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("port name"),
                p["containerPort"].as_u64().expect("containerPort"),
            )
        })
        .collect();
    let health = merged["extensions"]["health_check"]["endpoint"]
        .as_str()
        .expect("extensions.health_check.endpoint");
    for (probe, path) in [
        ("startupProbe", "/livez"),
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{what}: {probe} path");
        let port = get["port"].as_str().expect("named probe port");
        assert_eq!(
            port_by_name.get(port).copied(),
            Some(u64::from(port_of(health))),
            "{what}: {probe} port {port} is not the health_check endpoint {health}"
        );
    }
    let grpc = merged["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        .as_str()
        .expect("grpc endpoint");
    let http = merged["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        .as_str()
        .expect("http endpoint");
    let metrics = merged["service"]["telemetry"]["metrics"]["address"]
        .as_str()
        .expect("telemetry address");
    for (name, endpoint) in [
        ("otlp-grpc", grpc),
        ("otlp-http", http),
        ("metrics", metrics),
    ] {
        assert!(
            endpoint.starts_with("0.0.0.0:"),
            "{what}: {name} must listen on all interfaces in a pod, got {endpoint}"
        );
        assert_eq!(
            port_by_name.get(name).copied(),
            Some(u64::from(port_of(endpoint))),
            "{what}: containerPort {name} vs config {endpoint}"
        );
    }
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    // Shutdown fits in the grace period (preStop pause + shutdown_timeout).
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    let shutdown = merged["service"]["shutdown_timeout"]
        .as_str()
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse::<u64>().ok())
        .expect("service.shutdown_timeout in whole seconds");
    assert!(
        shutdown + 5 < grace,
        "{what}: shutdown_timeout {shutdown}s + preStop 5s must fit in {grace}s"
    );
    let pdb = find(docs, "PodDisruptionBudget", "spanpipe");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"], deploy["spec"]["selector"]["matchLabels"],
        "{what}: the PDB must select the spanpipe pods"
    );
    let replicas = deploy["spec"]["replicas"].as_u64().expect("replicas");
    assert!(pdb["spec"]["minAvailable"].as_u64().expect("minAvailable") < replicas);
    let headless = find(docs, "Service", "spanpipe-headless");
    assert_eq!(headless["spec"]["clusterIP"], "None");
}

fn render_and_check(overlay: &str) -> (Vec<Value>, Value, BTreeMap<String, String>) {
    let dir = workspace_root()
        .join("deploy")
        .join("kubernetes")
        .join("overlays")
        .join(overlay);
    let rendered = kustomize(&dir);
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join(format!("{overlay}.yaml"));
    std::fs::write(&file, &rendered).expect("write rendered");
    k8s_validate(&file);
    let docs = documents(&rendered);
    let env = container_env(spanpipe_container(find(&docs, "Deployment", "spanpipe")));
    let (args, merged) = materialise_config(&docs, work.path(), &env);
    validate_container_config(&args, &env, overlay);
    check_spanpipe_pod(&docs, &merged, overlay);
    (docs, merged, env)
}

#[test]
fn kustomize_base_renders_and_validates() {
    let dir = workspace_root()
        .join("deploy")
        .join("kubernetes")
        .join("base");
    let rendered = kustomize(&dir);
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("base.yaml");
    std::fs::write(&file, &rendered).expect("write");
    k8s_validate(&file);
}

#[test]
fn standalone_overlay_spanpipe_and_mlflow() {
    let (docs, merged, _) = render_and_check(OVERLAYS[0]);
    // spanpipe's exporter points at the MLflow Service of this overlay.
    let uri = merged["exporters"]["mlflow"]["tracking_uri"]
        .as_str()
        .expect("tracking_uri");
    let svc = find(&docs, "Service", "mlflow");
    let port = svc["spec"]["ports"][0]["port"].as_u64().expect("port");
    assert_eq!(uri, format!("http://mlflow:{port}"));
    let deploy = find(&docs, "Deployment", "mlflow");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(
        svc["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.contains(&"--backend-store-uri=sqlite:////mlflow/mlflow.db"),
        "MLflow must use a SQL store (only those ingest OTLP): {args:?}"
    );
    // The SQLite file lives on the PVC.
    let pvc = find(&docs, "PersistentVolumeClaim", "mlflow");
    let vol = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"])
        .expect("a volume from the mlflow PVC");
    assert!(
        c["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|m| m["name"] == vol["name"] && m["mountPath"] == "/mlflow")
    );
    assert_eq!(deploy["spec"]["strategy"]["type"], "Recreate");
    // MLflow refuses unknown Host headers (403): spanpipe's must be allowed.
    let allowed = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "MLFLOW_SERVER_ALLOWED_HOSTS")
        .and_then(|e| e["value"].as_str())
        .expect("MLFLOW_SERVER_ALLOWED_HOSTS");
    assert!(allowed.split(',').any(|h| h == format!("mlflow:{port}")));
}

#[test]
fn openshift_cr_overlay_workspace_token_and_ca_bundle() {
    let (docs, merged, env) = render_and_check(OVERLAYS[1]);
    let mlflow = &merged["exporters"]["mlflow"];
    // print-config ran with the pod's environment: the namespace is the workspace.
    assert_eq!(mlflow["workspace"], TEST_NAMESPACE);
    assert!(
        mlflow["tracking_uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://"))
    );
    let token = mlflow["token_file"].as_str().expect("token_file");
    assert_eq!(token, "/var/run/secrets/kubernetes.io/serviceaccount/token");
    let deploy = find(&docs, "Deployment", "spanpipe");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(
        pod["automountServiceAccountToken"], true,
        "the token file must be mounted"
    );
    let sa = find(&docs, "ServiceAccount", "spanpipe");
    assert_eq!(sa["automountServiceAccountToken"], true);
    // The CA file the exporter reads is written by the init container into a volume both containers mount.
    let ca = mlflow["tls"]["ca_file"].as_str().expect("tls.ca_file");
    assert_eq!(env.get("SPANPIPE_CA_BUNDLE").map(String::as_str), Some(ca));
    let dir_of = |p: &str| p.rsplit_once('/').map(|(d, _)| d.to_string()).expect("dir");
    let mounts_dir = |c: &Value| -> Option<String> {
        c["volumeMounts"]
            .as_array()?
            .iter()
            .find(|m| m["mountPath"].as_str() == Some(dir_of(ca).as_str()))
            .and_then(|m| m["name"].as_str().map(str::to_string))
    };
    let init = pod["initContainers"]
        .as_array()
        .expect("initContainers")
        .iter()
        .find(|c| c["name"] == "merge-ca-bundle")
        .expect("init container merge-ca-bundle");
    let script = init["command"][2].as_str().expect("script");
    assert!(
        script.contains(ca),
        "the init container must write {ca}:\n{script}"
    );
    let v_main = mounts_dir(spanpipe_container(deploy)).expect("spanpipe mounts the CA dir");
    let v_init = mounts_dir(init).expect("init container mounts the CA dir");
    assert_eq!(v_main, v_init);
    let vol = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == v_main.as_str())
        .expect("CA volume");
    assert!(vol["emptyDir"].is_object(), "{vol}");
    // The merge starts from the system CAs (tls.ca_file replaces the built-in roots).
    assert!(script.contains("/etc/ssl/certs/ca-certificates.crt"));
    let role = find(&docs, "Role", "spanpipe-mlflow-writer");
    assert_eq!(role["rules"][0]["apiGroups"][0], "mlflow.kubeflow.org");
}

// ---------------------------------------------------------------------------------------------------------------
// Grafana

/// Metric names in a PromQL expression (all of spanpipe's start with one of these prefixes).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let is_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if is_start && bytes[i].is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &expr[start..i];
            // GenAI metric names (not the gen_ai_* label names next to them).
            if [
                "otelcol_",
                "spanpipe_",
                "mlflow_",
                "gen_ai_client_",
                "gen_ai_execute_tool_duration",
                "gen_ai_invoke_agent_duration",
            ]
            .iter()
            .any(|p| word.starts_with(p))
            {
                out.insert(word.to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboard_queries_name_exported_metrics() {
    let path = workspace_root()
        .join("deploy")
        .join("grafana")
        .join("spanpipe.json");
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read dashboard"))
            .expect("the dashboard is JSON");
    assert!(dash["title"].is_string() && dash["panels"].is_array());
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    let joined = exprs.join("\n");
    for needle in [
        "histogram_quantile(0.5, sum by (le, span_type)",
        "histogram_quantile(0.99, sum by (le, span_type)",
        "sum by (experiment_id)",
        "span_status=\"ERROR\"",
        "sum by (gen_ai_request_model, gen_ai_token_type) (rate(gen_ai_client_token_usage_sum",
        "sum by (experiment_id) (rate(gen_ai_client_cost_USD_total",
        "sum by (decision) (rate(spanpipe_processor_tail_sampling_global_count_traces_sampled_total",
    ] {
        assert!(joined.contains(needle), "dashboard lacks `{needle}`");
    }
    let wanted: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(wanted.len() >= 8, "{wanted:?}");

    // A real run: SDK spans → batch → mlflow_spanmetrics and genai_metrics → prometheus, then tail_sampling,
    // internal metrics on.
    let [http, scrape, internal] = free_ports::<3>();
    let work = tempfile::tempdir().expect("tempdir");
    let prices = work.path().join("prices.yaml");
    std::fs::write(
        &prices,
        "currency: USD\nprices:\n  - { model: otel-gpt, input: 3, output: 12 }\n",
    )
    .expect("price table");
    let _sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ timeout: 50ms }}
  tail_sampling:
    decision_wait: 1s
    policies: [{{ name: all, type: always_sample }}]
connectors:
  mlflow_spanmetrics: {{ tags: [team], tags_wait: 0s, flush_interval: 200ms }}
  genai_metrics: {{ flush_interval: 200ms, cost: {{ price_table: {} }} }}
  forward:
exporters:
  prometheus: {{ endpoint: 127.0.0.1:{scrape} }}
  debug: {{}}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{internal} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [mlflow_spanmetrics, genai_metrics, forward] }}
    traces/sampled: {{ receivers: [forward], processors: [tail_sampling], exporters: [debug] }}
    metrics: {{ receivers: [mlflow_spanmetrics, genai_metrics], exporters: [prometheus] }}
",
            prices.display()
        ),
        &[http, scrape, internal],
    );
    let out = run_python(
        "spanmetrics_send.py",
        &[
            "--endpoint".into(),
            format!("http://127.0.0.1:{http}"),
            "--traces".into(),
            "5".into(),
            "--orphans".into(),
            "0".into(),
            "--expected".into(),
            work.path().join("expected.json").display().to_string(),
        ],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "spanmetrics_send.py: {}",
        tail(&out.stderr, 3000)
    );
    // GenAI spans (the OTel SDK with gen_ai.usage.*, one model priced, one not): tests/python/genai_clients.py.
    let out = run_python(
        "genai_clients.py",
        &[
            "--client".into(),
            "otel".into(),
            "--endpoint".into(),
            format!("http://127.0.0.1:{http}"),
        ],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "genai_clients.py: {}",
        tail(&out.stderr, 3000)
    );
    let names = |port: u16| -> BTreeSet<String> {
        parse_exposition(&http_get(&format!("http://127.0.0.1:{port}/metrics")).1)
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    let mut served = BTreeSet::new();
    let ok = wait_until(Duration::from_secs(20), || {
        served = names(scrape);
        served.extend(names(internal));
        [
            "mlflow_trace_span_duration_milliseconds_bucket",
            "gen_ai_client_cost_USD_total",
        ]
        .iter()
        .all(|n| served.contains(*n))
            && served.contains("spanpipe_processor_tail_sampling_global_count_traces_sampled_total")
    });
    assert!(ok, "the histogram never appeared: {served:?}");
    served.extend(names(internal));
    let missing: Vec<&String> = wanted.iter().filter(|n| !served.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics spanpipe does not export: {missing:?}\nserved: {served:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Dockerfile HEALTHCHECK

/// The exec-form argv of the Dockerfile's `HEALTHCHECK ... CMD [...]` (line continuations joined).
fn healthcheck_argv() -> Vec<String> {
    let text = std::fs::read_to_string(workspace_root().join("Dockerfile")).expect("Dockerfile");
    let joined = text.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("Dockerfile has a HEALTHCHECK");
    let json = line
        .split_once(" CMD ")
        .map(|(_, j)| j.trim())
        .expect("HEALTHCHECK ... CMD");
    assert!(
        json.starts_with('['),
        "HEALTHCHECK must use the exec form (no shell in the check): {json}"
    );
    serde_json::from_str(json).expect("HEALTHCHECK CMD is a JSON array")
}

fn run_healthcheck(endpoint: &str) -> i32 {
    let argv = healthcheck_argv();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("SPANPIPE_HEALTH_ENDPOINT", endpoint);
    run_bounded(&mut cmd, Duration::from_secs(20)).code()
}

/// Fault injection: a one-shot HTTP server answering every request with `status_line`.
fn serve_status(status_line: &'static str) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        listener.set_nonblocking(false).expect("blocking");
        if let Ok((mut s, _)) = listener.accept() {
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let body = "x";
            let _ = write!(
                s,
                "{status_line}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, handle)
}

#[test]
fn dockerfile_healthcheck_tells_healthy_from_unhealthy() {
    let closed = spanpipe_e2e::free_port();
    assert_eq!(
        run_healthcheck(&format!("127.0.0.1:{closed}")),
        1,
        "nothing listening"
    );
    let (port, h) = serve_status("HTTP/1.1 503 Service Unavailable");
    assert_eq!(run_healthcheck(&format!("127.0.0.1:{port}")), 1, "503");
    h.join().expect("server thread");

    // spanpipe's health_check extension: healthy once the pipelines run.
    let [health, grpc] = free_ports::<2>();
    let _sp = Spanpipe::start(
        &format!(
            "\
extensions:
  health_check: {{ endpoint: 127.0.0.1:{health} }}
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
exporters:
  debug: {{}}
service:
  extensions: [health_check]
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [debug] }}
"
        ),
        &[health, grpc],
    );
    let endpoint = format!("127.0.0.1:{health}");
    assert!(
        wait_until(Duration::from_secs(15), || run_healthcheck(&endpoint) == 0),
        "HEALTHCHECK never succeeded against spanpipe's health_check"
    );
}
