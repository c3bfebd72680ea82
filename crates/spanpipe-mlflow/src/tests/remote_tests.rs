//! Credentials and destinations: token files (401 → re-read → resend), basic auth, Databricks' exact request
//! (an in-process server stands in for the workspace host, which tests cannot reach), endpoint joining.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use spanpipe_core::ExportError;

use super::data::{batch, resource_request};
use super::exporter_tests::started;
use super::fake;
use crate::api::Endpoints;

#[tokio::test]
async fn a_rewritten_token_file_is_used_after_a_401_without_restart() {
    let (uri, st) = fake::start().await;
    st.lock().unwrap().auth = Some("Bearer new-token".into());
    let dir = std::env::temp_dir().join(format!("spanpipe-mlflow-tf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    std::fs::write(&path, "old-token\n").unwrap();
    let e = started(
        &format!("tracking_uri: {uri}\ntoken_file: {}\n", path.display()),
        &[],
    )
    .await
    .unwrap();
    let b = batch(&resource_request("svc", &[], 1, 2));
    match e.export(&b).await {
        Err(ExportError::Permanent { reason }) => {
            assert!(
                reason.contains("http 401") && reason.contains("check token"),
                "{reason}"
            );
            assert!(
                !reason.contains("old-token"),
                "secrets stay out of errors: {reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&path, "new-token\n").unwrap();
    e.export(&b).await.unwrap();
    assert_eq!(st.lock().unwrap().spans_in("0"), 2);
    std::fs::remove_file(&path).unwrap();
    // A token file that cannot be read keeps spans queued (retryable) rather than dropping them.
    let e = started(
        &format!("tracking_uri: {uri}\ntoken_file: {}\n", path.display()),
        &[],
    )
    .await
    .unwrap();
    match e.export(&b).await {
        Err(ExportError::Retryable { reason, .. }) => {
            assert!(reason.contains("token_file"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn basic_auth_is_sent_on_every_request() {
    let (uri, st) = fake::start().await;
    st.lock().unwrap().auth = Some("Basic dTpw".into()); // base64("u:p")
    let e = started(
        &format!("tracking_uri: {uri}\nusername: u\npassword: p\nexperiment_name: x\n"),
        &[],
    )
    .await
    .unwrap();
    e.export(&batch(&resource_request("svc", &[], 1, 2)))
        .await
        .unwrap();
    let st = st.lock().unwrap();
    assert_eq!(st.seen.len(), 3, "search, create, traces");
    assert!(
        st.seen
            .iter()
            .all(|s| s.headers["authorization"] == "Basic dTpw")
    );
}

#[tokio::test]
async fn databricks_request_is_exact() {
    let (host, st) = fake::start().await;
    let env = [
        ("DATABRICKS_HOST", host.as_str()),
        ("DATABRICKS_TOKEN", "dapi-123"),
    ];
    let e = started("tracking_uri: databricks\nexperiment_id: \"1234\"\n", &env)
        .await
        .unwrap();
    st.lock().unwrap().create("a"); // ids 1.. exist
    st.lock().unwrap().experiments.push(fake::Experiment {
        id: "1234".into(),
        name: "dbx".into(),
        deleted: false,
    });
    let req = resource_request("agent", &[], 1, 3);
    e.export(&batch(&req)).await.unwrap();
    let st = st.lock().unwrap();
    let [post] = st.seen.as_slice() else {
        panic!("one request expected: {:?}", st.seen)
    };
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", "/api/2.0/otel/v1/traces")
    );
    assert_eq!(post.headers["authorization"], "Bearer dapi-123");
    assert_eq!(post.headers["content-type"], "application/x-protobuf");
    assert_eq!(post.headers["content-encoding"], "gzip");
    assert_eq!(post.headers["x-mlflow-experiment-id"], "1234");
    assert!(post.headers["user-agent"].starts_with("spanpipe/"));
    assert_eq!(
        ExportTraceServiceRequest::decode(post.body.as_slice()).unwrap(),
        req
    );
}

#[tokio::test]
async fn databricks_resolves_names_on_the_host_and_a_configured_token_wins() {
    let (host, st) = fake::start().await;
    let env = [
        ("DATABRICKS_HOST", host.as_str()),
        ("DATABRICKS_TOKEN", "from-env"),
    ];
    let e = started(
        "tracking_uri: databricks\ntoken: from-config\nexperiment_name: /Users/me/agents\n",
        &env,
    )
    .await
    .unwrap();
    e.export(&batch(&resource_request("agent", &[], 1, 2)))
        .await
        .unwrap();
    let st = st.lock().unwrap();
    let paths: Vec<&str> = st.seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/2.0/mlflow/experiments/search",
            "/api/2.0/mlflow/experiments/create",
            "/api/2.0/otel/v1/traces"
        ]
    );
    assert!(
        st.seen
            .iter()
            .all(|s| s.headers["authorization"] == "Bearer from-config")
    );
}

#[tokio::test]
async fn databricks_without_environment_fails_at_start_with_the_variable_name() {
    let e = started("tracking_uri: databricks\n", &[])
        .await
        .err()
        .unwrap();
    assert!(e.contains("needs DATABRICKS_HOST"), "{e}");
    let e = started(
        "tracking_uri: databricks\n",
        &[("DATABRICKS_HOST", "adb-1.net")],
    )
    .await
    .err()
    .unwrap();
    assert!(e.contains("needs DATABRICKS_TOKEN"), "{e}");
    assert!(
        started(
            "tracking_uri: databricks\ntoken_file: /t\n",
            &[("DATABRICKS_HOST", "h")]
        )
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn a_missing_ca_file_fails_start_and_insecure_skip_verify_builds() {
    let e = started(
        "tracking_uri: https://h\ntls: {ca_file: /nonexistent/ca.pem}\n",
        &[],
    )
    .await
    .err()
    .unwrap();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    assert!(
        started(
            "tracking_uri: https://h\ntls: {insecure_skip_verify: true}\n",
            &[]
        )
        .await
        .is_ok()
    );
}

#[test]
fn endpoints_join_paths_and_default_to_https_for_databricks() {
    let e = Endpoints::databricks("adb-42.azuredatabricks.net/").unwrap();
    assert_eq!(
        e.traces.as_str(),
        "https://adb-42.azuredatabricks.net/api/2.0/otel/v1/traces"
    );
    assert_eq!(
        e.api.as_str(),
        "https://adb-42.azuredatabricks.net/api/2.0/mlflow/"
    );
    let base = reqwest::Url::parse("https://gw.example/mlflow/").unwrap();
    let e = Endpoints::mlflow(&base).unwrap();
    assert_eq!(e.traces.as_str(), "https://gw.example/mlflow/v1/traces");
    assert_eq!(
        e.api.join("experiments/search").unwrap().as_str(),
        "https://gw.example/mlflow/api/2.0/mlflow/experiments/search"
    );
}
