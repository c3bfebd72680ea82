//! The `spanpipe` binary: parses the command line, loads and validates the configuration, builds the pipeline
//! graph from the registered components, runs it until SIGTERM/SIGINT and drains it on the way out.

mod cli;
mod registry;
mod run;
mod telemetry;

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
