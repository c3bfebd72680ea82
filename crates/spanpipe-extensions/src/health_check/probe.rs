//! What a probe answers: readiness and liveness from the service status, and the OTel Collector's JSON document
//! (`{"status":"Server available","upSince":"...","uptime":"..."}`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use spanpipe_core::{ServiceState, ServiceStatus};

use super::config::PipelineCheck;

/// Which question is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `path` and `/readyz`: should traffic be sent here?
    Ready,
    /// `/livez`: should the process be left alone (not restarted)?
    Live,
}

/// The answer, with why when it is no.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub healthy: bool,
    /// Set while the service is running: when it started running (wall clock) and for how long.
    pub up: Option<(SystemTime, Duration)>,
    /// Why not healthy, for the log line of a change.
    pub reason: String,
}

/// Readiness: every pipeline runs and (with `check_collector_pipeline.enabled`) no exporter has failed every send
/// for `interval` and more than `exporter_failure_threshold` times. Liveness: anything but stopping.
pub fn evaluate(status: &ServiceStatus, check: &PipelineCheck, probe: Probe) -> Verdict {
    let state = status.state();
    let up = status
        .running_since()
        .map(|(wall, mono)| (wall, Instant::now().saturating_duration_since(mono)));
    let mut reason = String::new();
    let healthy = match (probe, state) {
        (_, ServiceState::Stopping) => {
            reason = "the collector is stopping".into();
            false
        }
        (Probe::Live, _) => true,
        (Probe::Ready, ServiceState::Starting) => {
            reason = "the collector is starting".into();
            false
        }
        (Probe::Ready, ServiceState::Running) => {
            let failing = if check.enabled {
                status.failing_exporters(check.interval.0, check.exporter_failure_threshold)
            } else {
                Vec::new()
            };
            if !failing.is_empty() {
                let names: Vec<String> = failing
                    .iter()
                    .map(|(id, d)| format!("{id} (for {})", go_duration(*d)))
                    .collect();
                reason = format!("exporters failing every send: {}", names.join(", "));
            }
            failing.is_empty()
        }
    };
    Verdict {
        healthy,
        up,
        reason,
    }
}

#[derive(Serialize)]
struct Document {
    status: &'static str,
    #[serde(rename = "upSince")]
    up_since: String,
    uptime: String,
}

/// The OTel Collector's document: `upSince` and `uptime` are only filled while the service is up and healthy
/// (otherwise the zero time and an empty string, as there).
pub fn json_body(v: &Verdict) -> String {
    let (status, up_since, uptime) = match (v.healthy, v.up) {
        (true, Some((wall, for_how_long))) => {
            ("Server available", rfc3339(wall), go_duration(for_how_long))
        }
        (true, None) => (
            "Server available",
            "0001-01-01T00:00:00Z".into(),
            String::new(),
        ),
        (false, _) => (
            "Server not available",
            "0001-01-01T00:00:00Z".into(),
            String::new(),
        ),
    };
    let doc = Document {
        status,
        up_since,
        uptime,
    };
    serde_json::to_string(&doc).unwrap_or_default()
}

/// `2024-05-06T07:08:09.123456789Z` (UTC), as Go's `time.Time` marshals.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, dd) = civil_from_days(days as i64);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let mut out = format!("{y:04}-{m:02}-{dd:02}T{h:02}:{mi:02}:{s:02}");
    let nanos = d.subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A duration as Go's `time.Duration.String()` writes it: `1h2m3.5s`, `49.0132518s`, `250ms`.
pub fn go_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".into();
    }
    if total < 1_000_000_000 {
        let (unit, div) = if total < 1_000 {
            ("ns", 1u128)
        } else if total < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(total, div));
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, secs % 3600 / 60);
    let s = fraction(
        u128::from(secs % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
    );
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// `value / div` with the fraction's trailing zeros trimmed.
fn fraction(value: u128, div: u128) -> String {
    let (int, frac) = (value / div, value % div);
    if frac == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let frac = format!("{frac:0width$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}
