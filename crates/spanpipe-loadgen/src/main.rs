//! `spanpipe-loadgen`: the two ends of an end-to-end benchmark of spanpipe.
//!
//! - `send` drives a collector with realistic GenAI agent spans (OTLP gRPC or HTTP/protobuf), every span id unique
//!   across the run, and reports acknowledged throughput and ack latency. Requests are copied from a few
//!   pre-encoded templates with their ids patched in place, so generating load costs far less CPU than the
//!   collector spends on it (both share the same cores).
//! - `sink` is an OTLP trace server that acknowledges at once and counts span ids (received, unique, duplicated),
//!   so a run can prove that nothing was lost or delivered twice.

mod args;
mod ids;
mod send;
mod sink;
mod template;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let threads = cli.threads;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spanpipe-loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            args::Command::Send(a) => send::run(a).await,
            args::Command::Sink(a) => sink::run(a).await,
        }
    });
    // Connection tasks may still be parked on sockets; don't wait for them.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("spanpipe-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
