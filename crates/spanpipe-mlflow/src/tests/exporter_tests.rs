//! The exporter against the fake MLflow: requests on the wire, routing and experiment resolution, and how each
//! MLflow answer maps to retryable / permanent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::json;
use spanpipe_core::{BuildContext, ComponentId, ExportError, Exporter, ExporterFactory, Metadata};

use super::data::{batch, kv, resource_request};
use super::fake::{self, Shared, invalid_format};
use crate::MlflowExporterFactory;

pub(super) async fn started(yaml: &str, env: &[(&str, &str)]) -> Result<Arc<dyn Exporter>, String> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let factory = MlflowExporterFactory {
        env: Arc::new(move |k| env.get(k).cloned()),
    };
    let ctx = BuildContext::new(ComponentId::new("mlflow", None), "exporters.mlflow".into());
    let node = spanpipe_config::load_str("t.yaml", yaml).map_err(|e| e.to_string())?;
    let e = factory
        .build(&ctx, &node)
        .map_err(|e| e.to_string())?
        .exporter;
    e.start().await.map_err(|e| e.to_string())?;
    Ok(e)
}

async fn exporter(uri: &str, extra: &str) -> Arc<dyn Exporter> {
    started(&format!("tracking_uri: {uri}\n{extra}"), &[])
        .await
        .expect("exporter starts")
}

/// Two services with two traces each, routed by `service.name`.
fn two_services() -> spanpipe_core::Batch {
    let mut req = resource_request("billing", &[], 1, 3);
    req.resource_spans
        .extend(resource_request("search", &[], 2, 4).resource_spans);
    req.resource_spans
        .extend(resource_request("billing", &[], 3, 2).resource_spans);
    batch(&req)
}

const BY_SERVICE: &str =
    "routing:\n  - {from: resource_attribute, attribute: service.name, as: experiment_name}\n";

fn permanent(r: Result<(), ExportError>) -> String {
    match r {
        Err(ExportError::Permanent { reason }) => reason,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

fn retryable(r: Result<(), ExportError>) -> (String, Option<Duration>) {
    match r {
        Err(ExportError::Retryable { reason, delay }) => (reason, delay),
        other => panic!("expected a retryable error, got {other:?}"),
    }
}

#[tokio::test]
async fn routes_by_resource_creates_experiments_and_sends_protobuf_with_headers() {
    let (uri, st) = fake::start().await;
    let e = exporter(&uri, &format!("token: s3cr3t\n{BY_SERVICE}")).await;
    e.export(&two_services()).await.unwrap();
    let st = st.lock().unwrap();
    let (billing, search) = (st.id_of("billing").unwrap(), st.id_of("search").unwrap());
    assert_eq!(
        (
            st.spans_in(&billing),
            st.spans_in(&search),
            st.spans_in("0")
        ),
        (5, 4, 0)
    );
    let posts = st.trace_posts();
    assert_eq!(posts.len(), 2, "one request per experiment");
    for p in &posts {
        assert_eq!(p.path, "/v1/traces");
        assert_eq!(p.headers["content-type"], "application/x-protobuf");
        assert_eq!(p.headers["content-encoding"], "gzip");
        assert!(ExportTraceServiceRequest::decode(p.body.as_slice()).is_ok());
    }
    // The two experiments are sent concurrently: in either order.
    let mut to: Vec<&str> = posts
        .iter()
        .map(|p| p.headers["x-mlflow-experiment-id"].as_str())
        .collect();
    to.sort_unstable();
    let mut want = [billing.as_str(), search.as_str()];
    want.sort_unstable();
    assert_eq!(to, want);
    assert!(
        st.seen
            .iter()
            .all(|s| s.headers["authorization"] == "Bearer s3cr3t"),
        "auth on every call"
    );
    assert!(
        st.seen
            .iter()
            .all(|s| !s.headers.contains_key("x-mlflow-workspace"))
    );
}

#[tokio::test]
async fn names_are_resolved_once_and_the_create_race_is_handled() {
    let (uri, st) = fake::start().await;
    st.lock().unwrap().create_race.push("billing".into());
    let e = exporter(&uri, BY_SERVICE).await;
    e.export(&two_services()).await.unwrap();
    e.export(&two_services()).await.unwrap();
    let st = st.lock().unwrap();
    let creates = st
        .seen
        .iter()
        .filter(|s| s.path.ends_with("/create"))
        .count();
    let searches = st
        .seen
        .iter()
        .filter(|s| s.path.ends_with("/search"))
        .count();
    // billing: search, create (lost the race), search again; search: search, create. Then all cached.
    assert_eq!((creates, searches), (2, 3));
    assert_eq!(
        st.experiments
            .iter()
            .filter(|x| x.name == "billing")
            .count(),
        1
    );
    assert_eq!(st.spans_in(&st.id_of("billing").unwrap()), 5);
}

#[tokio::test]
async fn workspace_header_goes_on_every_request_and_feature_disabled_is_permanent() {
    let (uri, st) = fake::start().await;
    st.lock().unwrap().workspaces = Some(vec!["team-a".into()]);
    let e = exporter(&uri, &format!("workspace: team-a\n{BY_SERVICE}")).await;
    e.export(&two_services()).await.unwrap();
    assert!(
        st.lock()
            .unwrap()
            .seen
            .iter()
            .all(|s| s.headers["x-mlflow-workspace"] == "team-a")
    );

    let e = exporter(&uri, "workspace: team-b\n").await;
    let r = permanent(e.export(&two_services()).await);
    assert!(
        r.contains("Workspace 'team-b' not found") && r.contains("create the workspace"),
        "{r}"
    );

    st.lock().unwrap().workspaces = None;
    let e = exporter(&uri, "workspace: team-a\n").await;
    let r = permanent(e.export(&two_services()).await);
    assert!(
        r.contains("FEATURE_DISABLED")
            && r.contains("remove `workspace` or start MLflow with --enable-workspaces"),
        "{r}"
    );
    // Also when the failure happens while resolving an experiment name.
    let e = exporter(&uri, "workspace: team-a\nexperiment_name: x\n").await;
    let r = permanent(e.export(&two_services()).await);
    assert!(r.contains("--enable-workspaces"), "{r}");
}

#[tokio::test]
async fn status_codes_map_like_the_facts_table() {
    let (uri, st) = fake::start().await;
    let e = exporter(&uri, "").await;
    let b = two_services();
    let fault = |status, ra, body| st.lock().unwrap().faults.push_back((status, ra, body));
    fault(429, Some("2"), json!({"detail": "slow down"}));
    assert_eq!(
        retryable(e.export(&b).await).1,
        Some(Duration::from_secs(2))
    );
    fault(503, None, json!({"detail": "unavailable"}));
    assert!(retryable(e.export(&b).await).0.contains("http 503"));
    // MLflow reports a database error (SQLite "database is locked") as 503 TEMPORARILY_UNAVAILABLE: retried.
    fault(
        503,
        None,
        json!({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "database is locked"}),
    );
    assert!(
        retryable(e.export(&b).await)
            .0
            .contains("database is locked")
    );
    // 500 INTERNAL_ERROR is a bug on the server's side that the same request hits again: permanent, as for
    // every exporter (spanpipe_core::retry::classify_http).
    fault(
        500,
        None,
        json!({"error_code": "INTERNAL_ERROR", "message": "unexpected"}),
    );
    assert!(permanent(e.export(&b).await).contains("http 500: INTERNAL_ERROR"));
    fault(400, None, invalid_format());
    let r = permanent(e.export(&b).await);
    assert!(
        r.contains("http 400: Invalid OpenTelemetry format") && r.contains("[9 of 9 spans"),
        "{r}"
    );
    fault(
        422,
        None,
        json!({"detail": [{"type": "missing", "loc": ["header", "x-mlflow-experiment-id"]}]}),
    );
    assert!(permanent(e.export(&b).await).contains("http 422: [{\"loc\""));
    fault(
        501,
        None,
        json!({"detail": "REST OTLP span logging is not supported by FileStore"}),
    );
    assert!(permanent(e.export(&b).await).contains("FileStore"));
    e.export(&b).await.unwrap();
    assert_eq!(st.lock().unwrap().spans_in("0"), 9);

    let e = exporter(&uri, "experiment_id: 999\n").await;
    let r = permanent(e.export(&b).await);
    assert!(
        r.contains("http 404: RESOURCE_DOES_NOT_EXIST: No Experiment with id=999 exists"),
        "{r}"
    );
}

#[tokio::test]
async fn a_vanished_experiment_is_resolved_again_once() {
    let (uri, st) = fake::start().await;
    let e = exporter(&uri, "experiment_name: agents\n").await;
    e.export(&two_services()).await.unwrap();
    let old = st.lock().unwrap().id_of("agents").unwrap();
    // The database behind the URL was replaced: the cached id is gone, the name is free again.
    st.lock()
        .unwrap()
        .experiments
        .retain(|x| x.name != "agents");
    let b = batch(&resource_request("svc", &[], 7, 3));
    e.export(&b).await.unwrap();
    let st = st.lock().unwrap();
    let new = st.id_of("agents").unwrap();
    assert_ne!(old, new);
    assert_eq!(st.spans_in(&new), 3);
}

#[tokio::test]
async fn a_deleted_experiment_is_a_clear_permanent_error() {
    let (uri, st) = fake::start().await;
    st.lock().unwrap().experiments.push(fake::Experiment {
        id: "5".into(),
        name: "old".into(),
        deleted: true,
    });
    let e = exporter(&uri, "experiment_name: old\n").await;
    let r = permanent(e.export(&two_services()).await);
    assert!(r.contains("experiment 5 is deleted; restore it"), "{r}");
}

#[tokio::test]
async fn one_refused_experiment_does_not_hold_back_the_others() {
    let (uri, st) = fake::start().await;
    let e = exporter(
        &uri,
        "routing:\n  - {from: request_header, header: x-exp, as: experiment_id}\n",
    )
    .await;
    let mut b = batch(&resource_request("a", &[], 1, 2));
    b.metadata = Metadata(Some(Arc::from(vec![(
        "x-exp".to_string(),
        "999".to_string(),
    )])));
    let r = permanent(e.export(&b).await);
    assert!(r.contains("id 999") && r.contains("[2 of 2 spans"), "{r}");
    // Mixed: a resource routed to a missing experiment by attribute, one to the default.
    let e = exporter(
        &uri,
        "routing:\n  - {from: resource_attribute, attribute: exp, as: experiment_id}\n",
    )
    .await;
    let mut req = resource_request("a", &[kv("exp", "999")], 1, 2);
    req.resource_spans
        .extend(resource_request("b", &[], 2, 3).resource_spans);
    let r = permanent(e.export(&batch(&req)).await);
    assert!(r.contains("[2 of 5 spans"), "{r}");
    assert_eq!(st.lock().unwrap().spans_in("0"), 3);
}

#[tokio::test]
async fn a_retried_batch_skips_requests_already_acknowledged() {
    let (uri, st) = fake::start().await;
    let e = exporter(&uri, &format!("max_spans_per_request: 4\n{BY_SERVICE}")).await;
    let b = two_services();
    // billing: 5 spans in 2 traces (3 + 2) → 2 requests; search: 4 spans → 1 request. The third fails.
    st.lock().unwrap().faults.extend([
        (0, None, json!({})),
        (0, None, json!({})),
        (503, Some("1"), json!({})),
    ]);
    let posts = |st: &Shared| st.lock().unwrap().trace_posts().len();
    retryable(e.export(&b).await);
    assert_eq!(posts(&st), 3);
    e.export(&b).await.unwrap();
    assert_eq!(
        posts(&st),
        4,
        "the retry only sends what was not acknowledged"
    );
    e.export(&b).await.unwrap();
    assert_eq!(
        posts(&st),
        4,
        "a batch fully acknowledged is not sent again"
    );
    let s = st.lock().unwrap();
    assert_eq!(s.spans_in(&s.id_of("billing").unwrap()), 5);
}

#[tokio::test]
async fn mlflow_down_is_retryable_and_start_does_not_contact_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = exporter(
        &format!("http://127.0.0.1:{port}"),
        "experiment_name: agents\n",
    )
    .await;
    let (reason, _) = retryable(e.export(&two_services()).await);
    assert!(
        reason.starts_with("mlflow experiment \"agents\": http request"),
        "{reason}"
    );
    let e = exporter(&format!("http://127.0.0.1:{port}"), "").await;
    assert!(
        retryable(e.export(&two_services()).await)
            .0
            .contains("http request")
    );
}
