//! Counters and ack latencies of a run, merged across connections, and the summary printed at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::args::SendArgs;

/// Latency samples kept per connection; beyond this (a very long run) later samples are not recorded, which the
/// summary reports, so memory stays bounded (4 bytes a request).
const MAX_SAMPLES: usize = 8 << 20;

#[derive(Default, Debug)]
pub struct Stats {
    pub sent: u64,
    pub acked_spans: u64,
    pub acked_requests: u64,
    /// Failed spans by final status.
    pub failed: BTreeMap<String, u64>,
    pub retries: u64,
    /// Ack latency of each acknowledged request in microseconds (first attempt to final ack).
    latencies_us: Vec<u32>,
}

/// The two output lines.
pub struct Summary {
    pub line: String,
    pub json: String,
}

impl Stats {
    pub fn acked(&mut self, spans: u64, latency: Duration) {
        self.acked_spans += spans;
        self.acked_requests += 1;
        if self.latencies_us.len() < MAX_SAMPLES {
            self.latencies_us
                .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        }
    }

    pub fn failed(&mut self, spans: u64, label: String) {
        *self.failed.entry(label).or_default() += spans;
    }

    pub fn merge(&mut self, other: Stats) {
        self.sent += other.sent;
        self.acked_spans += other.acked_spans;
        self.acked_requests += other.acked_requests;
        self.retries += other.retries;
        for (k, v) in other.failed {
            *self.failed.entry(k).or_default() += v;
        }
        self.latencies_us.extend(other.latencies_us);
    }

    pub fn all_acked(&self) -> bool {
        self.sent > 0 && self.acked_spans == self.sent
    }

    pub fn summary(
        mut self,
        elapsed: Duration,
        start_unix_ms: u64,
        seed: u16,
        args: &SendArgs,
    ) -> Summary {
        self.latencies_us.sort_unstable();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let rate = self.acked_spans as f64 / secs;
        let ms = |q: f64| percentile(&self.latencies_us, q) as f64 / 1000.0;
        let (p50, p90, p99, max) = (ms(0.50), ms(0.90), ms(0.99), ms(1.0));
        let failed: u64 = self.failed.values().sum();
        let failed_txt = if self.failed.is_empty() {
            "0".to_string()
        } else {
            let parts: Vec<_> = self
                .failed
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{failed} ({})", parts.join(", "))
        };
        let line = format!(
            "spanpipe-loadgen: sent {} spans, acked {}, failed {failed_txt}, retries {} in {secs:.2} s: \
             {rate:.0} spans/s acked; ack latency ms p50 {p50:.2} p90 {p90:.2} p99 {p99:.2} max {max:.2}",
            self.sent, self.acked_spans, self.retries
        );
        let json = json!({
            "sent_spans": self.sent,
            "acked_spans": self.acked_spans,
            "failed_spans": failed,
            "failed_by_status": self.failed,
            "acked_requests": self.acked_requests,
            "retries": self.retries,
            "elapsed_s": secs,
            "spans_per_sec": rate,
            "latency_ms": { "p50": p50, "p90": p90, "p99": p99, "max": max },
            "latency_samples": self.latencies_us.len(),
            "start_unix_ms": start_unix_ms,
            "seed": seed,
            "protocol": format!("{:?}", args.protocol).to_lowercase(),
            "connections": args.connections,
            "spans_per_request": args.spans_per_request,
            "compression": format!("{:?}", args.compression).to_lowercase(),
        });
        Summary {
            line,
            json: json.to_string(),
        }
    }
}

/// Nearest-rank percentile of sorted samples; 0 when there are none.
fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[7], 0.01), 7);
    }
}
