//! The sink's tally: every span id seen, so a benchmark can prove nothing was lost or delivered twice.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};
use spanpipe_core::wire::scan_traces;

use super::id_set::IdSet;

/// Counts spans by id. One lock per request (not per span): requests carry hundreds of spans, and the scan runs
/// outside the lock.
pub struct Counter {
    ids: Mutex<IdSet>,
    duplicates: AtomicU64,
    received: AtomicU64,
    requests: AtomicU64,
    bad_requests: AtomicU64,
    first_unix_ms: AtomicU64,
    last_unix_ms: AtomicU64,
    /// Milliseconds since `started` of the last request with spans, plus one (0: none yet).
    last_data: AtomicU64,
    started: Instant,
    expect: Option<u64>,
    /// `(span id, arrival unix ms)` of every span received, when `--arrivals` asks for them (capped).
    arrivals: Option<Mutex<Vec<(u64, u64)>>>,
}

/// Arrival records kept at most (~16 bytes each).
const MAX_ARRIVALS: usize = 16 << 20;

impl Counter {
    pub fn new(expect: Option<u64>, record_arrivals: bool) -> Counter {
        Counter {
            ids: Mutex::new(IdSet::new(expect.unwrap_or(1 << 16))),
            duplicates: AtomicU64::new(0),
            received: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            bad_requests: AtomicU64::new(0),
            first_unix_ms: AtomicU64::new(0),
            last_unix_ms: AtomicU64::new(0),
            last_data: AtomicU64::new(0),
            started: Instant::now(),
            expect,
            arrivals: record_arrivals.then(|| Mutex::new(Vec::new())),
        }
    }

    /// Scans and counts one encoded `ExportTraceServiceRequest`; an invalid request is counted and refused.
    pub fn ingest(&self, body: &[u8]) -> Result<(), String> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut ids = Vec::with_capacity(body.len() / 400 + 1);
        let scanned = scan_traces(body, |_, v| {
            if let Ok(a) = <[u8; 8]>::try_from(v.span_id) {
                ids.push(u64::from_be_bytes(a));
            }
        });
        if let Err(e) = scanned {
            self.bad_requests.fetch_add(1, Ordering::Relaxed);
            return Err(e.to_string());
        }
        if ids.is_empty() {
            return Ok(());
        }
        let dups = {
            let mut set = self.ids.lock().unwrap_or_else(|p| p.into_inner());
            ids.iter().filter(|&&id| !set.insert(id)).count() as u64
        };
        self.duplicates.fetch_add(dups, Ordering::Relaxed);
        self.received.fetch_add(ids.len() as u64, Ordering::Relaxed);
        let now = super::unix_ms();
        if let Some(arrivals) = &self.arrivals {
            let mut a = arrivals.lock().unwrap_or_else(|p| p.into_inner());
            let room = MAX_ARRIVALS.saturating_sub(a.len());
            a.extend(ids.iter().take(room).map(|&id| (id, now)));
        }
        let _ = self
            .first_unix_ms
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last_unix_ms.fetch_max(now, Ordering::Relaxed);
        let since = self.started.elapsed().as_millis() as u64 + 1;
        self.last_data.fetch_max(since, Ordering::Relaxed);
        Ok(())
    }

    /// Milliseconds since the last request with spans, `None` before the first.
    pub fn idle_ms(&self) -> Option<u64> {
        match self.last_data.load(Ordering::Relaxed) {
            0 => None,
            last => Some((self.started.elapsed().as_millis() as u64 + 1).saturating_sub(last)),
        }
    }

    /// `span_id_hex arrival_unix_ms` lines, in arrival order (empty without `--arrivals`).
    pub fn arrivals_text(&self) -> String {
        let Some(arrivals) = &self.arrivals else {
            return String::new();
        };
        let a = arrivals.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::with_capacity(a.len() * 32);
        for (id, ms) in a.iter() {
            out.push_str(&format!("{id:016x} {ms}\n"));
        }
        out
    }

    pub fn report(&self, exit_reason: &str) -> Value {
        let unique = self.ids.lock().unwrap_or_else(|p| p.into_inner()).len();
        let first = self.first_unix_ms.load(Ordering::Relaxed);
        let last = self.last_unix_ms.load(Ordering::Relaxed);
        let mut report = json!({
            "received": self.received.load(Ordering::Relaxed),
            "unique": unique,
            "duplicates": self.duplicates.load(Ordering::Relaxed),
            "requests": self.requests.load(Ordering::Relaxed),
            "bad_requests": self.bad_requests.load(Ordering::Relaxed),
            "first_arrival_unix_ms": (first != 0).then_some(first),
            "last_arrival_unix_ms": (last != 0).then_some(last),
            "exit_reason": exit_reason,
        });
        if let (Some(n), Some(obj)) = (self.expect, report.as_object_mut()) {
            obj.insert("expect".into(), n.into());
            obj.insert("lost".into(), (n as i64 - unique as i64).into());
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn counts_unique_and_duplicate_ids() {
        let body = spanpipe_benches::agent_request(1, 3, 4).encode_to_vec();
        let c = Counter::new(Some(20), true);
        c.ingest(&body).expect("valid");
        c.ingest(&body).expect("valid");
        assert!(c.ingest(b"\xff\xff").is_err());
        let r = c.report("test");
        assert_eq!(r["received"], 24);
        assert_eq!(r["unique"], 12);
        assert_eq!(r["duplicates"], 12);
        assert_eq!(r["bad_requests"], 1);
        assert_eq!(r["lost"], 8);
        assert!(c.idle_ms().is_some());
        let arrivals = c.arrivals_text();
        assert_eq!(
            arrivals.lines().count(),
            24,
            "every span of both valid requests"
        );
        assert!(
            arrivals
                .lines()
                .all(|l| l.len() > 17 && l.as_bytes()[16] == b' ')
        );
        assert_eq!(Counter::new(None, false).arrivals_text(), "");
    }
}
