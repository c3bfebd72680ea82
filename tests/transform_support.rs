//! Shared by the `transform_*` suites: spanpipe A (the processors under test) exporting over OTLP/gRPC to
//! spanpipe B (a `file` exporter), spans sent by `tests/python/transform_send.py`, and the backend's view of
//! every span (name, ids, kind, attributes and resource attributes as JSON values).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use spanpipe_e2e::{Spanpipe, free_ports, run_python, tail, wait_until};

/// A span as the backend received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub kind: i64,
    pub attributes: BTreeMap<String, Value>,
    pub resource: BTreeMap<String, Value>,
}

/// A span as the SDK sent it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
}

/// A and B running, with the ports the test needs.
pub struct Pair {
    pub a: Spanpipe,
    pub b: Spanpipe,
    pub a_http: u16,
    pub a_grpc: u16,
    pub a_metrics: u16,
    pub out: PathBuf,
    pub work: tempfile::TempDir,
}

/// Starts B (`file` exporter) and A with `processors_yaml` (the body of `processors:`, indented two spaces) and
/// the pipeline's `processors` list.
pub fn start_pair(processors_yaml: &str, pipeline: &str) -> Pair {
    let [b_grpc, a_grpc, a_http, a_metrics] = free_ports::<4>();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-transform-")
        .tempdir()
        .expect("tempdir");
    let out = work.path().join("backend.jsonl");
    let b = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{b_grpc} }}
exporters:
  file: {{ path: {out} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
",
            out = out.display()
        ),
        &[b_grpc],
    );
    let a = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{a_grpc}, include_metadata: true }}
      http: {{ endpoint: 127.0.0.1:{a_http}, include_metadata: true }}
processors:
{processors_yaml}
exporters:
  otlp:
    endpoint: http://127.0.0.1:{b_grpc}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 1s }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{a_metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [{pipeline}], exporters: [otlp] }}
"
        ),
        &[a_grpc, a_http, a_metrics],
    );
    Pair {
        a,
        b,
        a_http,
        a_grpc,
        a_metrics,
        out,
        work,
    }
}

/// Sends `spec` (see `transform_send.py`) and returns what the SDK sent.
pub fn send(work: &Path, spec: Value) -> Vec<Sent> {
    let spec_path = work.join("spec.json");
    let out = work.join("sent.json");
    std::fs::write(&spec_path, spec.to_string()).expect("write spec");
    let res = run_python(
        "transform_send.py",
        &[
            "--spec".into(),
            spec_path.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ],
        Duration::from_secs(90),
    );
    assert!(
        res.status.success(),
        "transform_send.py failed: {}\n{}",
        tail(&res.stdout, 2000),
        tail(&res.stderr, 6000)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&out).expect("sent.json"))
        .expect("sent.json is JSON");
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| Sent {
            name: s["name"].as_str().unwrap_or_default().to_string(),
            trace_id: s["trace_id"].as_str().unwrap_or_default().to_string(),
            span_id: s["span_id"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// An OTLP/JSON `AnyValue` as plain JSON (ints from their string form).
fn plain(v: &Value) -> Value {
    if let Some(s) = v.get("stringValue") {
        return s.clone();
    }
    if let Some(i) = v.get("intValue") {
        return match i {
            Value::String(s) => s.parse::<i64>().map_or(Value::Null, Value::from),
            other => other.clone(),
        };
    }
    if let Some(d) = v.get("doubleValue") {
        return d.clone();
    }
    if let Some(b) = v.get("boolValue") {
        return b.clone();
    }
    if let Some(a) = v.get("arrayValue") {
        return Value::Array(
            a["values"]
                .as_array()
                .map(|vs| vs.iter().map(plain).collect())
                .unwrap_or_default(),
        );
    }
    json!({ "other": v })
}

fn attr_map(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| {
                    (
                        kv["key"].as_str().unwrap_or_default().to_string(),
                        plain(&kv["value"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every span in B's file so far.
pub fn received(path: &Path) -> Vec<Received> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("backend line is not JSON ({e}): {}", tail(line, 300)));
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            let resource = attr_map(&rs["resource"]["attributes"]);
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for sp in ss["spans"].as_array().into_iter().flatten() {
                    out.push(Received {
                        name: sp["name"].as_str().unwrap_or_default().to_string(),
                        trace_id: sp["traceId"].as_str().unwrap_or_default().to_lowercase(),
                        span_id: sp["spanId"].as_str().unwrap_or_default().to_lowercase(),
                        kind: sp["kind"].as_i64().unwrap_or_default(),
                        attributes: attr_map(&sp["attributes"]),
                        resource: resource.clone(),
                    });
                }
            }
        }
    }
    out
}

/// Waits (bounded) until B has `expected` spans, then a little longer to catch any extra, and returns them.
pub fn wait_received(path: &Path, expected: usize) -> Vec<Received> {
    let ok = wait_until(Duration::from_secs(30), || received(path).len() >= expected);
    assert!(
        ok,
        "backend got {} of {expected} spans within 30s",
        received(path).len()
    );
    std::thread::sleep(Duration::from_millis(500));
    received(path)
}

/// The span named `name` (names are unique in these suites).
pub fn by_name<'a>(spans: &'a [Received], name: &str) -> &'a Received {
    let found: Vec<&Received> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one span named {name:?}, got {found:#?}"
    );
    found[0]
}

/// The value of a Prometheus sample `name{...label...}` on A's /metrics, if present.
pub fn metric(port: u16, name: &str, label: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
}
