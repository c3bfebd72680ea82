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

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its index in `mi_option_e`, the same in mimalloc v2 and v3; the Rust bindings
/// name no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays mapped before mimalloc returns it to the OS (this mimalloc's default is 1 s). Short,
/// so peak RSS follows the memory budget: under a flood with a slow backend 1-2 s held 15-25 MiB more (issue 13's
/// 128 MiB bound). The page clearing this costs on the hot path is avoided by recycling receive buffers instead
/// (`spanpipe_otlp` receiver's buffer pool). `MIMALLOC_PURGE_DELAY` in the environment still wins.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

fn main() -> ExitCode {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option before any thread exists; mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
    cli::main()
}
