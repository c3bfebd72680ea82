use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};

use super::*;

fn cfg<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    spanpipe_config::load_str("t.yaml", yaml)
        .unwrap()
        .deserialize("processors.filter")
        .unwrap()
}

fn metrics(names: &[&str]) -> Vec<u8> {
    let metrics = names
        .iter()
        .map(|n| Metric {
            name: n.to_string(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint::default(); 2],
            })),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn names(payload: &[u8]) -> Vec<String> {
    ExportMetricsServiceRequest::decode(payload)
        .unwrap()
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| m.name.clone())
        .collect()
}

#[test]
fn metrics_by_name_strict_and_regexp() {
    let c: MetricConditions = cfg("exclude: { match_type: strict, metric_names: [a, c] }");
    let f = MetricFilter::new(&c).unwrap().unwrap();
    let (out, dropped) = f.apply(&metrics(&["a", "b", "c"])).unwrap();
    assert_eq!(names(&out.unwrap()), ["b"]);
    assert_eq!(dropped, 4);
    let c: MetricConditions = cfg("include: { match_type: regexp, metric_names: ['^http\\.'] }");
    let f = MetricFilter::new(&c).unwrap().unwrap();
    let (out, _) = f
        .apply(&metrics(&["http.server.duration", "rpc.x"]))
        .unwrap();
    assert_eq!(names(&out.unwrap()), ["http.server.duration"]);
    let (same, n) = f.apply(&metrics(&["http.a"])).unwrap();
    assert!(same.is_none() && n == 0);
    let all_gone = MetricFilter::new(&cfg("exclude: { match_type: strict, metric_names: [x] }"))
        .unwrap()
        .unwrap()
        .apply(&metrics(&["x"]))
        .unwrap();
    assert!(names(&all_gone.0.unwrap()).is_empty());
}

#[test]
fn metrics_ottl_and_missing_match_type_are_refused() {
    let c: MetricConditions = cfg("metric: ['name == \"x\"']");
    assert!(MetricFilter::new(&c).is_err());
    let c: MetricConditions = cfg("exclude: { metric_names: [x] }");
    assert!(MetricFilter::new(&c).is_err());
    assert!(
        MetricFilter::new(&MetricConditions::default())
            .unwrap()
            .is_none()
    );
}

fn logs(records: &[(&str, i32, &str)]) -> Vec<u8> {
    let log_records = records
        .iter()
        .map(|(text, num, body)| LogRecord {
            severity_text: text.to_string(),
            severity_number: *num,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(body.to_string())),
            }),
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn bodies(payload: &[u8]) -> Vec<String> {
    ExportLogsServiceRequest::decode(payload)
        .unwrap()
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .filter_map(|r| match r.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn logs_by_severity_and_body() {
    let input = logs(&[
        ("DEBUG", 5, "noise"),
        ("INFO", 9, "health check ok"),
        ("ERROR", 17, "boom"),
        ("", 0, "unknown"),
    ]);
    let c: LogConditions =
        cfg("include: { severity_number: { min: WARN, match_undefined: true } }");
    let f = LogFilter::new(&c).unwrap().unwrap();
    let (out, dropped) = f.apply(&input).unwrap();
    assert_eq!(bodies(&out.unwrap()), ["boom", "unknown"]);
    assert_eq!(dropped, 2);
    let c: LogConditions = cfg("exclude: { match_type: regexp, bodies: ['^health'] }");
    let (out, _) = LogFilter::new(&c).unwrap().unwrap().apply(&input).unwrap();
    assert_eq!(bodies(&out.unwrap()), ["noise", "boom", "unknown"]);
    let c: LogConditions = cfg("exclude: { match_type: strict, severity_texts: [DEBUG, INFO] }");
    let (out, _) = LogFilter::new(&c).unwrap().unwrap().apply(&input).unwrap();
    assert_eq!(bodies(&out.unwrap()), ["boom", "unknown"]);
    assert!(LogFilter::new(&cfg("log_record: ['severity_number < 9']")).is_err());
    assert!(LogFilter::new(&cfg("include: { severity_number: { min: LOUD } }")).is_err());
    assert_eq!(severity_number(&Severity::Name("warn3".into())), Some(15));
}
