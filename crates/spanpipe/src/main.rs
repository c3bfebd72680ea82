//! The `spanpipe` binary: parses the command line, loads and validates the configuration, builds the pipeline
//! graph from the registered components, runs it until SIGTERM/SIGINT and drains it on the way out.

mod cli;
mod print_config;
mod registry;
mod run;
#[cfg(test)]
mod secret_fields;
mod telemetry;

use std::process::ExitCode;

/// mimalloc with its own defaults, including the 10 ms purge delay (freed memory goes back to the OS quickly). A
/// 2 s delay once saved page clearing for multi-megabyte batch buffers; batches are now lists of the received
/// buffers, and the longer delay cost up to ~20 MiB of peak RSS under a flood (issue 13's 128 MiB bound).
/// `MIMALLOC_PURGE_DELAY` (milliseconds) still tunes it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
