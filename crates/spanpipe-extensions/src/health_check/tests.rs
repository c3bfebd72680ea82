use std::time::{Duration, UNIX_EPOCH};

use spanpipe_config::{ComponentId, load_str};
use spanpipe_core::{ExtensionHost, ServiceState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::config::PipelineCheck;
use super::probe::{go_duration, rfc3339};
use super::*;

fn ctx(status: &ServiceStatus) -> BuildContext {
    BuildContext::new(
        "health_check".parse::<ComponentId>().unwrap(),
        "extensions.health_check".into(),
    )
    .with_extensions(ExtensionHost::default().with_status(status.clone()))
}

fn build(yaml: &str, status: &ServiceStatus) -> Result<Arc<dyn Extension>, ConfigError> {
    let node = load_str("test.yaml", yaml).unwrap();
    HealthCheckFactory.build(&ctx(status), &node)
}

#[test]
fn defaults_are_the_collectors() {
    let node = load_str("t.yaml", "~\n").unwrap();
    let cfg: HealthCheckConfig = ctx(&ServiceStatus::default()).config(&node).unwrap();
    assert_eq!(cfg.endpoint, "127.0.0.1:13133");
    assert_eq!(cfg.path, "/");
    let c = &cfg.check_collector_pipeline;
    assert!(!c.enabled);
    assert_eq!(c.interval.0, Duration::from_secs(300));
    assert_eq!(c.exporter_failure_threshold, 5);
    assert_eq!(cfg.validate().unwrap().port(), 13133);
}

#[test]
fn bad_settings_name_their_key() {
    let s = ServiceStatus::default();
    let cases = [
        ("endpoint: nowhere\n", "extensions.health_check.endpoint"),
        ("path: health\n", "extensions.health_check.path"),
        (
            "check_collector_pipeline: { exporter_failure_threshold: 0 }\n",
            "extensions.health_check.check_collector_pipeline.exporter_failure_threshold",
        ),
        (
            "check_collector_pipeline: { interval: 0s }\n",
            "extensions.health_check.check_collector_pipeline.interval",
        ),
        ("pth: /\n", "pth"),
        (
            "check_collector_pipeline: { interval: soon }\n",
            "check_collector_pipeline.interval",
        ),
    ];
    for (yaml, key) in cases {
        let e = match build(yaml, &s) {
            Ok(_) => panic!("{yaml} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(key), "{yaml}: {e}");
        assert!(e.contains("test.yaml:1:"), "{yaml}: {e}");
    }
}

fn check(enabled: bool, interval_ms: u64, threshold: u64) -> PipelineCheck {
    PipelineCheck {
        enabled,
        interval: spanpipe_config::Duration(Duration::from_millis(interval_ms)),
        exporter_failure_threshold: threshold,
    }
}

#[test]
fn readiness_and_liveness_follow_the_state() {
    let s = ServiceStatus::default();
    let c = check(false, 0, 1);
    assert!(!evaluate(&s, &c, Probe::Ready).healthy);
    assert!(evaluate(&s, &c, Probe::Live).healthy);
    s.set_state(ServiceState::Running);
    let v = evaluate(&s, &c, Probe::Ready);
    assert!(v.healthy && v.up.is_some());
    s.set_state(ServiceState::Stopping);
    for p in [Probe::Ready, Probe::Live] {
        let v = evaluate(&s, &c, p);
        assert!(!v.healthy);
        assert!(v.reason.contains("stopping"));
    }
}

#[test]
fn failing_exporters_count_only_when_enabled() {
    let s = ServiceStatus::default();
    s.set_state(ServiceState::Running);
    let e = s.exporter("otlp/down");
    for _ in 0..3 {
        e.failure();
    }
    assert!(evaluate(&s, &check(false, 0, 1), Probe::Ready).healthy);
    let v = evaluate(&s, &check(true, 0, 2), Probe::Ready);
    assert!(!v.healthy);
    assert!(v.reason.contains("otlp/down"), "{}", v.reason);
    assert!(
        evaluate(&s, &check(true, 0, 3), Probe::Ready).healthy,
        "3 is not more than 3"
    );
    assert!(
        evaluate(&s, &check(true, 60_000, 1), Probe::Ready).healthy,
        "not for long enough"
    );
    assert!(
        evaluate(&s, &check(true, 0, 1), Probe::Live).healthy,
        "liveness ignores exporters"
    );
    e.success();
    assert!(evaluate(&s, &check(true, 0, 1), Probe::Ready).healthy);
}

#[test]
fn document_is_the_collectors() {
    let up = UNIX_EPOCH + Duration::new(1_700_000_000, 123_000_000);
    let ok = Verdict {
        healthy: true,
        up: Some((up, Duration::from_millis(49_013))),
        reason: String::new(),
    };
    assert_eq!(
        json_body(&ok),
        r#"{"status":"Server available","upSince":"2023-11-14T22:13:20.123Z","uptime":"49.013s"}"#
    );
    let down = Verdict {
        healthy: false,
        up: None,
        reason: "x".into(),
    };
    assert_eq!(
        json_body(&down),
        r#"{"status":"Server not available","upSince":"0001-01-01T00:00:00Z","uptime":""}"#
    );
}

#[test]
fn times_print_as_go_does() {
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    assert_eq!(
        rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "2000-02-29T00:00:00Z"
    );
    assert_eq!(
        rfc3339(UNIX_EPOCH + Duration::new(4_102_444_799, 5)),
        "2099-12-31T23:59:59.000000005Z"
    );
    assert_eq!(go_duration(Duration::ZERO), "0s");
    assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
    assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
    assert_eq!(
        go_duration(Duration::from_nanos(49_013_251_800)),
        "49.0132518s"
    );
    assert_eq!(go_duration(Duration::from_millis(62_500)), "1m2.5s");
    assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
}

/// One request over a fresh connection: (status code, body).
async fn get(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    let code = text[9..12].parse().unwrap();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (code, body)
}

#[tokio::test]
async fn serves_probes_over_http() {
    let s = ServiceStatus::default();
    let cfg = HealthCheckConfig {
        endpoint: "127.0.0.1:0".into(),
        path: "/health/status".into(),
        check_collector_pipeline: check(true, 1, 1),
        ..Default::default()
    };
    let addr = cfg.validate().unwrap();
    let hc = HealthCheck::new("health_check".into(), addr, cfg, s.clone());
    hc.start().await.unwrap();
    let addr = hc.local_addr().unwrap();
    let (code, body) = get(addr, "GET", "/health/status").await;
    assert_eq!((code, body.contains("Server not available")), (503, true));
    assert_eq!(get(addr, "GET", "/livez").await.0, 200);
    s.set_state(ServiceState::Running);
    for path in ["/health/status", "/readyz", "/livez"] {
        let (code, body) = get(addr, "GET", path).await;
        assert_eq!(code, 200, "{path}");
        assert!(
            body.starts_with(r#"{"status":"Server available","upSince":""#),
            "{body}"
        );
    }
    assert_eq!(get(addr, "HEAD", "/readyz").await.0, 200);
    assert_eq!(
        get(addr, "GET", "/").await.0,
        404,
        "only the configured path"
    );
    assert_eq!(get(addr, "POST", "/readyz").await.0, 405);
    let e = s.exporter("otlp/a");
    e.failure();
    e.failure();
    tokio::time::sleep(Duration::from_millis(10)).await; // past the 1 ms interval
    assert_eq!(get(addr, "GET", "/readyz").await.0, 503);
    assert_eq!(get(addr, "GET", "/livez").await.0, 200);
    e.success();
    assert_eq!(get(addr, "GET", "/readyz").await.0, 200);
    s.set_state(ServiceState::Stopping);
    assert_eq!(get(addr, "GET", "/livez").await.0, 503);
    hc.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "stopped serving"
    );
}

#[tokio::test]
async fn custom_bodies_and_a_taken_port() {
    let s = ServiceStatus::default();
    s.set_state(ServiceState::Running);
    let yaml = "endpoint: 127.0.0.1:0\nresponse_body: { healthy: up, unhealthy: down }\n";
    let node = load_str("t.yaml", yaml).unwrap();
    let cfg: HealthCheckConfig = ctx(&s).config(&node).unwrap();
    let hc = HealthCheck::new(
        "health_check".into(),
        cfg.validate().unwrap(),
        cfg.clone(),
        s.clone(),
    );
    hc.start().await.unwrap();
    let addr = hc.local_addr().unwrap();
    assert_eq!(get(addr, "GET", "/").await, (200, "up".into()));
    s.set_state(ServiceState::Stopping);
    assert_eq!(get(addr, "GET", "/").await, (503, "down".into()));
    let again = HealthCheck::new("health_check/2".into(), addr, cfg, s);
    let e = again.start().await.unwrap_err().to_string();
    assert!(
        e.contains("health_check/2") && e.contains("cannot listen"),
        "{e}"
    );
    hc.shutdown().await;
}
