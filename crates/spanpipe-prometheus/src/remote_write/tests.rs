use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use spanpipe_core::ComponentId;

use super::*;
use crate::test_util::*;

fn opts() -> Options {
    Options {
        add_metric_suffixes: true,
        ..Options::default()
    }
}

fn labels(ts: &TimeSeries) -> BTreeMap<&str, &str> {
    ts.labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

fn duration_request() -> ExportMetricsServiceRequest {
    request(
        vec![s("service.name", "agent")],
        vec![metric(
            "mlflow.trace.span.duration",
            "ms",
            "",
            histogram(
                vec![duration_point("LLM", vec![1, 2, 3, 4], 99.5, 7_000_000_000)],
                2,
            ),
        )],
    )
}

#[test]
fn a_histogram_becomes_bucket_sum_and_count_series_with_sorted_labels() {
    let reqs = write_requests(&duration_request(), &opts(), false, usize::MAX);
    assert_eq!(reqs.len(), 1);
    let ts = &reqs[0].timeseries;
    assert_eq!(ts.len(), 6);
    for t in ts {
        let names: Vec<&str> = t.labels.iter().map(|l| l.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(t.samples.len(), 1);
        assert_eq!(t.samples[0].timestamp, 7_000);
    }
    let got: Vec<(String, Option<&str>, f64)> = ts
        .iter()
        .map(|t| {
            let l = labels(t);
            (
                l["__name__"].to_string(),
                l.get("le").copied(),
                t.samples[0].value,
            )
        })
        .collect();
    let n = "mlflow_trace_span_duration_milliseconds";
    assert_eq!(
        got,
        [
            (format!("{n}_bucket"), Some("0"), 1.0),
            (format!("{n}_bucket"), Some("5"), 3.0),
            (format!("{n}_bucket"), Some("10000"), 6.0),
            (format!("{n}_bucket"), Some("+Inf"), 10.0),
            (format!("{n}_sum"), None, 99.5),
            (format!("{n}_count"), None, 10.0),
        ]
    );
    let l = labels(&ts[0]);
    assert_eq!(
        (l["job"], l["tags_team"], l["root"]),
        ("agent", "rust", "false")
    );
}

#[test]
fn requests_are_cut_by_size_and_deltas_dropped() {
    let reqs = write_requests(&duration_request(), &opts(), false, 1);
    assert_eq!(reqs.len(), 6, "one series per request when nothing fits");
    let delta = request(
        vec![],
        vec![metric(
            "c",
            "",
            "",
            sum(vec![number(1.0, vec![], 1)], true, 1),
        )],
    );
    assert!(write_requests(&delta, &opts(), true, usize::MAX).is_empty());
}

/// A remote-write receiver answering `status` and keeping the decoded requests.
async fn receiver(status: u16) -> (String, Arc<Mutex<Vec<(http::HeaderMap, WriteRequest)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let seen = seen.clone();
                async move {
                    let headers = req.headers().clone();
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                    seen.lock()
                        .unwrap()
                        .push((headers, WriteRequest::decode(raw.as_slice()).unwrap()));
                    let mut r = http::Response::new(Full::new(Bytes::from_static(b"nope")));
                    *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
                    if status == 429 {
                        r.headers_mut().insert("retry-after", "3".parse().unwrap());
                    }
                    Ok::<_, Infallible>(r)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    (url, got)
}

async fn exporter(url: &str) -> Arc<dyn Exporter> {
    let node = spanpipe_config::load_str(
        "t.yaml",
        &format!("endpoint: {url}\nexternal_labels: {{ cluster: c1 }}\n"),
    )
    .unwrap();
    let ctx = BuildContext::new(
        ComponentId::new("prometheus_remote_write", None),
        "exporters.prometheus_remote_write".into(),
    );
    let e = RemoteWriteExporterFactory
        .build(&ctx, &node)
        .unwrap()
        .exporter;
    e.start().await.unwrap();
    e
}

fn batch() -> Batch {
    Batch::new(Signal::Metrics, duration_request().encode_to_vec(), 1)
}

#[tokio::test]
async fn sends_snappy_protobuf_with_the_protocol_headers() {
    let (url, got) = receiver(204).await;
    let e = exporter(&url).await;
    e.export(&batch()).await.unwrap();
    let got = got.lock().unwrap();
    let (headers, w) = &got[0];
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
    assert_eq!(w.timeseries.len(), 6);
    assert!(w.timeseries.iter().all(|t| labels(t)["cluster"] == "c1"));
}

#[tokio::test]
async fn server_errors_and_429_retry_other_4xx_are_permanent() {
    for (status, retryable) in [
        (500, true),
        (503, true),
        (429, true),
        (400, false),
        (404, false),
    ] {
        let (url, _) = receiver(status).await;
        let err = exporter(&url).await.export(&batch()).await.unwrap_err();
        assert_eq!(
            matches!(err, ExportError::Retryable { .. }),
            retryable,
            "{status}: {err}"
        );
        if status == 429 {
            assert!(
                matches!(err, ExportError::Retryable { delay: Some(d), .. } if d == Duration::from_secs(3))
            );
        }
    }
    // Nobody listening: a connection error is retryable.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = exporter(&format!("http://127.0.0.1:{port}/w"))
        .await
        .export(&batch())
        .await
        .unwrap_err();
    assert!(matches!(err, ExportError::Retryable { .. }), "{err}");
}

#[test]
fn config_requires_an_endpoint_and_valid_label_names() {
    let ctx = BuildContext::new(
        ComponentId::new("prometheus_remote_write", None),
        "exporters.prometheus_remote_write".into(),
    );
    let build = |yaml: &str| {
        let node = spanpipe_config::load_str("t.yaml", yaml).unwrap();
        RemoteWriteExporterFactory
            .build(&ctx, &node)
            .err()
            .map(|e| format!("{}: {}", e.key, e.message))
    };
    assert!(
        build("timeout: 1s")
            .unwrap()
            .contains("endpoint: is required")
    );
    assert!(build("endpoint: ftp://x").is_some());
    assert!(
        build("endpoint: http://127.0.0.1:1/w\nexternal_labels: { a.b: x }")
            .unwrap()
            .contains("external_labels")
    );
    assert!(build("endpoint: http://127.0.0.1:1/w\nbogus: 1").is_some());
    assert!(build("endpoint: http://127.0.0.1:1/w").is_none());
}

#[test]
fn target_info_carries_the_non_identifying_resource_attributes() {
    let req = request(
        vec![
            s("service.name", "agent"),
            s("service.instance.id", "i-1"),
            s("deployment.environment", "prod"),
            s("host.name", "h1"),
        ],
        vec![metric(
            "calls",
            "1",
            "",
            sum(vec![number(1.0, vec![], 9_000_000_000)], true, 2),
        )],
    );
    let reqs = write_requests(&req, &opts(), true, usize::MAX);
    let info: Vec<&TimeSeries> = reqs[0]
        .timeseries
        .iter()
        .filter(|t| labels(t)["__name__"] == "target_info")
        .collect();
    assert_eq!(info.len(), 1);
    let l = labels(info[0]);
    assert_eq!(l["deployment_environment"], "prod");
    assert_eq!(l["host_name"], "h1");
    assert_eq!(l["job"], "agent");
    assert_eq!(l["instance"], "i-1");
    assert!(!l.contains_key("service_name"));
    assert_eq!(info[0].samples[0].value, 1.0);
    assert_eq!(info[0].samples[0].timestamp, 9_000);
    // Off, or a resource with only identifying attributes: none.
    let off = write_requests(&req, &opts(), false, usize::MAX);
    assert!(
        off[0]
            .timeseries
            .iter()
            .all(|t| labels(t)["__name__"] != "target_info")
    );
    let only_ids = write_requests(&duration_request(), &opts(), true, usize::MAX);
    assert_eq!(only_ids[0].timeseries.len(), 6);
}

#[test]
fn remote_write_queue_sets_the_sending_queue() {
    let ctx = BuildContext::new(
        "prometheusremotewrite".parse::<ComponentId>().unwrap(),
        "exporters.prometheusremotewrite".into(),
    );
    let yaml = "endpoint: http://127.0.0.1:9/api/v1/write\nremote_write_queue: { queue_size: 77, num_consumers: 3 }";
    let node = spanpipe_config::load_str("t.yaml", yaml).unwrap();
    let built = RemoteWriteExporterFactory.build(&ctx, &node).unwrap();
    assert_eq!(built.settings.sending_queue.queue_size, 77);
    assert_eq!(built.settings.sending_queue.num_consumers, 3);
    assert!(built.settings.sending_queue.enabled);
}
