//! Helpers shared by the `spanmetrics_*` suites (included with `#[path]`, not a test target): scraping and
//! parsing the Prometheus text format, `promtool`, OTLP/JSON metric files, and process memory.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use spanpipe_e2e::otlp::http_client;
use spanpipe_e2e::run_bounded;

/// The metric every suite looks at.
pub const FAMILY: &str = "mlflow_trace_span_duration_milliseconds";

/// Runs `fut` on a fresh current-thread runtime (the suites are plain `#[test]`s).
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(fut)
}

/// GET `url`: status and body (status 0 when the request failed).
pub fn http_get(url: &str) -> (u16, String) {
    block_on(async {
        match http_client().get(url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.text().await.unwrap_or_default())
            }
            Err(_) => (0, String::new()),
        }
    })
}

/// One sample line of the text format: metric name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text exposition format (comments skipped). Panics on a malformed line.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name_labels, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match name_labels.split_once('{') {
            Some((n, rest)) => (
                n,
                parse_labels(rest.strip_suffix('}').expect("closing brace")),
            ),
            None => (name_labels, BTreeMap::new()),
        };
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "label {name} value must be quoted");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(name.trim_start_matches(',').to_string(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

/// A histogram series as scraped: count, sum and cumulative bucket counts by `le` text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scraped {
    pub count: f64,
    pub sum: f64,
    pub buckets: BTreeMap<String, f64>,
}

/// The series of histogram `family`, keyed by their labels (without `le` and `otel_scope_name`).
pub fn histograms(samples: &[Sample], family: &str) -> BTreeMap<BTreeMap<String, String>, Scraped> {
    let mut out: BTreeMap<BTreeMap<String, String>, Scraped> = BTreeMap::new();
    for s in samples {
        let Some(suffix) = s.name.strip_prefix(family) else {
            continue;
        };
        let mut labels = s.labels.clone();
        let le = labels.remove("le");
        labels.remove("otel_scope_name");
        let e = out.entry(labels).or_default();
        match (suffix, le) {
            ("_bucket", Some(le)) => {
                e.buckets.insert(le, s.value);
            }
            ("_sum", None) => e.sum = s.value,
            ("_count", None) => e.count = s.value,
            _ => panic!("unexpected sample {s:?}"),
        }
    }
    out
}

/// `promtool check metrics` on `text`: Ok when it passes, or when its only complaints are the base-unit lint
/// for names ending in `_milliseconds` (the name the OTel mapping gives a unit of `ms`, see the crate docs).
pub fn promtool_check(text: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metrics.txt");
    std::fs::write(&path, text).expect("write metrics");
    let out = run_bounded(
        Command::new("sh")
            .arg("-c")
            .arg("promtool check metrics < \"$0\"")
            .arg(&path),
        Duration::from_secs(60),
    );
    let complaints: Vec<&str> = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let only_unit_lint = complaints
        .iter()
        .all(|l| l.contains("_milliseconds use base unit \"seconds\" instead of \"milliseconds\""));
    match out.status.code() {
        Some(0) => Ok(()),
        Some(3) if only_unit_lint => Ok(()),
        Some(127) => Err("promtool not found: apt-get install prometheus".into()),
        _ => Err(format!(
            "promtool check metrics failed ({}):\n{}",
            out.status,
            complaints.join("\n")
        )),
    }
}

/// `VmHWM` (peak resident set) and `VmRSS` of process `pid`, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Histogram points of `metric` in a `file` exporter's OTLP/JSON output, the latest per label set (cumulative):
/// labels (booleans as `true`/`false`) → (time, count, sum, per-bucket counts).
pub type FilePoints = BTreeMap<BTreeMap<String, String>, (u64, u64, f64, Vec<u64>)>;

pub fn file_histograms(path: &Path, metric: &str) -> FilePoints {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = FilePoints::new();
    let num = |v: &serde_json::Value| -> u64 {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v.as_u64())
            .unwrap_or(0)
    };
    // Only complete lines: the file may be mid-write.
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let rms = doc["resourceMetrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for rm in &rms {
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for m in sm["metrics"].as_array().into_iter().flatten() {
                    if m["name"] != metric {
                        continue;
                    }
                    for dp in m["histogram"]["dataPoints"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        let mut labels = BTreeMap::new();
                        for a in dp["attributes"].as_array().into_iter().flatten() {
                            let v = &a["value"];
                            let text = match (v.get("stringValue"), v.get("boolValue")) {
                                (Some(s), _) => s.as_str().unwrap_or_default().to_string(),
                                (_, Some(b)) => b.to_string(),
                                _ => v.to_string(),
                            };
                            labels.insert(a["key"].as_str().unwrap_or_default().to_string(), text);
                        }
                        let time = num(&dp["timeUnixNano"]);
                        let buckets = dp["bucketCounts"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(num)
                            .collect();
                        let point = (
                            time,
                            num(&dp["count"]),
                            dp["sum"].as_f64().unwrap_or(0.0),
                            buckets,
                        );
                        if out.get(&labels).is_none_or(|p| p.0 <= time) {
                            out.insert(labels, point);
                        }
                    }
                }
            }
        }
    }
    out
}
