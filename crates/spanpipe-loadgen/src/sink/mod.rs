//! `sink`: an OTLP trace server that acknowledges at once and counts span ids, then reports on SIGTERM/SIGINT,
//! after `--idle-exit` without data, or at `--max-duration`. With `--fault` steps it is also the scriptable fake
//! backend of the fault-injection tests (down windows, error statuses with Retry-After, resets, latency), still
//! speaking real OTLP over gRPC and HTTP.

mod counter;
mod faults;
mod grpc;
mod http;
mod id_set;
mod listen;

pub use faults::{Step as FaultStep, parse_step as parse_fault};

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::args::SinkArgs;
use counter::Counter;
use faults::Faults;

/// How often the exit conditions are checked.
const TICK: Duration = Duration::from_millis(20);

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the `sink` subcommand until an exit condition, then prints (and writes) the report.
pub async fn run(args: SinkArgs) -> anyhow::Result<ExitCode> {
    if args.grpc.is_none() && args.http.is_none() {
        bail!("give --grpc and/or --http");
    }
    let counter = Arc::new(Counter::new(args.expect, args.arrivals.is_some()));
    let faults = Arc::new(Faults::new(args.faults.clone(), args.latency));
    let stop = CancellationToken::new();
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    if let Some(addr) = args.grpc {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding gRPC {addr}"))?;
        eprintln!("spanpipe-loadgen sink: OTLP/gRPC on {}", l.local_addr()?);
        tokio::spawn(grpc::serve(
            l,
            counter.clone(),
            faults.clone(),
            args.max_request_bytes,
            stop.clone(),
        ));
    }
    if let Some(addr) = args.http {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding HTTP {addr}"))?;
        eprintln!("spanpipe-loadgen sink: OTLP/HTTP on {}", l.local_addr()?);
        tokio::spawn(http::serve(
            l,
            counter.clone(),
            faults.clone(),
            args.max_request_bytes,
            stop.clone(),
        ));
    }
    let started = Instant::now();
    let idle_ms = args.idle_exit.as_millis() as u64;
    let mut tick = tokio::time::interval(TICK);
    // Bounded: --max-duration ends it.
    let reason = loop {
        tokio::select! {
            _ = tick.tick() => {
                faults.tick();
                if started.elapsed() >= args.max_duration {
                    break "max_duration";
                }
                if counter.idle_ms().is_some_and(|ms| ms >= idle_ms) {
                    break "idle";
                }
            }
            _ = sigterm.recv() => break "sigterm",
            _ = sigint.recv() => break "sigint",
        }
    };
    stop.cancel();
    let mut report = counter.report(reason);
    if (!args.faults.is_empty() || !args.latency.is_zero())
        && let Some(obj) = report.as_object_mut()
    {
        obj.insert("faults".into(), faults.report());
    }
    if let Some(path) = &args.arrivals {
        write_atomically(path, &counter.arrivals_text())?;
    }
    let report = report.to_string();
    println!("{report}");
    if let Some(path) = &args.report {
        write_atomically(path, &format!("{report}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Write then rename, so a reader polling for the file never sees half of it.
fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
