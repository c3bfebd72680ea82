use prost::Message;
use spanpipe_core::ComponentId;

use super::*;
use crate::test_util::*;

fn ctx() -> BuildContext {
    BuildContext::new(
        ComponentId::new("prometheus", None),
        "exporters.prometheus".into(),
    )
}

fn build(yaml: &str) -> Result<BuiltExporter, ConfigError> {
    let node = spanpipe_config::load_str("t.yaml", yaml).unwrap();
    PrometheusExporterFactory.build(&ctx(), &node)
}

async fn get(port: u16, path: &str) -> (u16, String, String) {
    // reqwest is built without a default TLS provider; each test may run in its own process (nextest).
    spanpipe_net::ensure_crypto_provider();
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, r.text().await.unwrap())
}

#[tokio::test]
async fn serves_what_it_received_at_metrics() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let built = build(&format!(
        "endpoint: 127.0.0.1:{port}\nconst_labels: {{ site: lab }}\nwithout_scope_info: true"
    ))
    .unwrap();
    assert!(
        !built.settings.sending_queue.enabled,
        "updates are applied in the caller"
    );
    let e = built.exporter;
    e.start().await.unwrap();
    let (status, _, body) = get(port, "/metrics").await;
    assert_eq!((status, body.as_str()), (200, ""));
    let req = request(
        vec![],
        vec![metric(
            "up.ness",
            "",
            "Is it up",
            gauge(vec![number(1.0, vec![s("a", "b")], 1)]),
        )],
    );
    e.export(&Batch::new(Signal::Metrics, req.encode_to_vec(), 1))
        .await
        .unwrap();
    let (status, ctype, body) = get(port, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(
        body,
        "# HELP up_ness Is it up\n# TYPE up_ness gauge\nup_ness{a=\"b\",site=\"lab\"} 1\n"
    );
    assert_eq!(get(port, "/other").await.0, 404);
    let bad = e
        .export(&Batch::new(
            Signal::Metrics,
            bytes::Bytes::from_static(b"\xff"),
            1,
        ))
        .await;
    assert!(matches!(bad, Err(ExportError::Undecodable { .. })));
    e.shutdown().await;
    spanpipe_net::ensure_crypto_provider();
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .is_err(),
        "stopped listening"
    );
}

#[tokio::test]
async fn a_taken_port_fails_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let e = build(&format!("endpoint: 127.0.0.1:{port}"))
        .unwrap()
        .exporter;
    assert!(e.start().await.is_err());
}

#[test]
fn config_is_validated() {
    assert!(build("endpoint: nope").is_err());
    assert!(build("const_labels: { 9x: a }").is_err());
    assert!(build("unknown: 1").is_err());
    assert!(build("").is_ok(), "everything has a default");
}
