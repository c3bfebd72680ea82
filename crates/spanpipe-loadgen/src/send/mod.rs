//! `send`: N connections, one request in flight each, pulling request numbers from a shared counter so span ids
//! stay unique and contiguous however the connections interleave.

mod client;
mod stats;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use crate::args::SendArgs;
use crate::ids::SEQ_LIMIT;
use crate::template::Template;
use client::{Client, Failure};
use stats::Stats;

/// Distinct request bodies (content varies, ids are always fresh): enough to keep caches and compressors honest.
const TEMPLATES: u64 = 4;
/// First retry delay; doubles per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long the workers get to report once the hard timeout fired (their requests are already cancelled).
const JOIN_GRACE: Duration = Duration::from_secs(5);

/// What every connection shares.
struct Shared {
    templates: Vec<Template>,
    /// Exactly-sized last request of a `--total` run, when the total is not a multiple of the request size.
    tail: Option<Template>,
    spans_per_request: u64,
    /// Requests in the run (bounded by the 48-bit span sequence for `--duration`).
    requests: u64,
    next: AtomicU64,
    seed: u16,
    start: Instant,
    /// No new request after this (`--duration`).
    deadline: Option<Instant>,
    rate: Option<f64>,
    /// Cancelled at the hard timeout or on Ctrl-C: in-flight requests are abandoned.
    stop: CancellationToken,
    request_timeout: Duration,
    max_retries: u32,
}

impl Shared {
    /// The template and first span sequence number of request `k`, or `None` past the end of the run.
    fn request(&self, k: u64) -> Option<(&Template, u64)> {
        if k >= self.requests {
            return None;
        }
        let first = k.checked_mul(self.spans_per_request)?;
        let tpl = match &self.tail {
            Some(t) if k + 1 == self.requests => t,
            _ => self.templates.get((k % TEMPLATES) as usize)?,
        };
        (first.checked_add(tpl.spans())? <= SEQ_LIMIT).then_some((tpl, first))
    }

    /// When request `k` is due at `--rate` (spans, not requests, are paced, so request size doesn't matter).
    fn due(&self, k: u64) -> Option<Instant> {
        let rate = self.rate?;
        let secs = (k * self.spans_per_request) as f64 / rate;
        Some(self.start + Duration::try_from_secs_f64(secs).ok()?)
    }
}

/// Runs the `send` subcommand and prints its summary.
pub async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let spr = args.spans_per_request;
    if let Some(r) = args.rate
        && !(r.is_finite() && r > 0.0)
    {
        bail!("--rate must be a positive number of spans per second");
    }
    let (requests, tail) = match (args.total, args.duration) {
        (Some(0), _) => bail!("--total must be at least 1"),
        (Some(total), _) => {
            if total > SEQ_LIMIT {
                bail!("--total exceeds the 48-bit span sequence");
            }
            let rem = total % spr;
            let tail = (rem != 0)
                .then(|| Template::build(TEMPLATES, rem, args.spans_per_trace))
                .transpose()?;
            (total.div_ceil(spr), tail)
        }
        (None, _) => (SEQ_LIMIT / spr, None),
    };
    let templates = (0..TEMPLATES)
        .map(|v| Template::build(v, spr, args.spans_per_trace))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("building request templates")?;
    let seed = args.seed.unwrap_or_else(clock_seed);

    let mut clients = Vec::new();
    for _ in 0..args.connections {
        clients.push(
            Client::connect(&args)
                .await
                .with_context(|| format!("connecting to {}", args.endpoint))?,
        );
    }
    let start = Instant::now();
    let start_unix_ms = unix_ms();
    let shared = Arc::new(Shared {
        templates,
        tail,
        spans_per_request: spr,
        requests,
        next: AtomicU64::new(0),
        seed,
        start,
        deadline: args.duration.map(|d| start + d),
        rate: args.rate,
        stop: CancellationToken::new(),
        request_timeout: args.request_timeout,
        max_retries: args.max_retries,
    });
    let watchdog = tokio::spawn(watch(shared.stop.clone(), start + args.hard_timeout));
    let workers: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(worker(shared.clone(), c)))
        .collect();

    let mut total = Stats::default();
    for w in workers {
        // A worker returns within one request timeout of `stop`; the bound only guards against a hung socket.
        let left = (start + args.hard_timeout + args.request_timeout + JOIN_GRACE)
            .saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, w).await {
            Ok(Ok(s)) => total.merge(s),
            Ok(Err(e)) => eprintln!("spanpipe-loadgen: a connection task failed: {e}"),
            Err(_) => {
                eprintln!("spanpipe-loadgen: a connection did not finish after the hard timeout")
            }
        }
    }
    watchdog.abort();
    let elapsed = start.elapsed();
    let all_acked = total.all_acked();
    let summary = total.summary(elapsed, start_unix_ms, seed, &args);
    println!("{}", summary.line);
    println!("{}", summary.json);
    Ok(if all_acked {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// Cancels `stop` at the hard deadline or on Ctrl-C, so a run always ends.
async fn watch(stop: CancellationToken, hard_deadline: Instant) {
    tokio::select! {
        _ = sleep_until(hard_deadline.into()) => eprintln!("spanpipe-loadgen: hard timeout reached, stopping"),
        _ = tokio::signal::ctrl_c() => eprintln!("spanpipe-loadgen: interrupted, stopping"),
        _ = stop.cancelled() => {}
    }
    stop.cancel();
}

/// One connection: take the next request number, wait for its slot at `--rate`, send with retries, record.
async fn worker(shared: Arc<Shared>, mut client: Client) -> Stats {
    let mut stats = Stats::default();
    // Bounded by the run's request count; the deadline and `stop` end it earlier.
    for _ in 0..shared.requests {
        if shared.stop.is_cancelled() || shared.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let k = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some((tpl, first_seq)) = shared.request(k) else {
            break;
        };
        if let Some(due) = shared.due(k) {
            tokio::select! {
                _ = sleep_until(due.into()) => {}
                _ = shared.stop.cancelled() => break,
            }
            if shared.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        let body = client.prepare(Bytes::from(tpl.render(shared.seed, first_seq)));
        let spans = tpl.spans();
        stats.sent += spans;
        let t0 = Instant::now();
        match send_with_retries(&shared, &mut client, body, &mut stats).await {
            Ok(()) => stats.acked(spans, t0.elapsed()),
            Err(f) => stats.failed(spans, f.label),
        }
    }
    stats
}

/// Sends one request, retrying transient refusals with exponential backoff; the latency recorded by the caller
/// includes the retries, as a client would see it.
async fn send_with_retries(
    shared: &Shared,
    client: &mut Client,
    body: Bytes,
    stats: &mut Stats,
) -> Result<(), Failure> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        let result = tokio::select! {
            r = tokio::time::timeout(shared.request_timeout, client.export(body.clone())) => {
                r.unwrap_or_else(|_| Err(Failure::retryable("timeout")))
            }
            _ = shared.stop.cancelled() => return Err(Failure::permanent("hard_timeout")),
        };
        match result {
            Err(f) if f.retryable && attempt < shared.max_retries => {
                attempt += 1;
                stats.retries += 1;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shared.stop.cancelled() => return Err(Failure::permanent("hard_timeout")),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A seed from the clock, so two runs against the same sink don't collide unless asked to.
fn clock_seed() -> u16 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    ((nanos >> 10) ^ std::process::id()) as u16
}
