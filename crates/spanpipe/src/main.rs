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

/// How long freed memory stays mapped before mimalloc returns it to the OS. mimalloc's 10 ms default makes every
/// batch buffer (megabytes, one per `batch` timeout) fresh memory the kernel must zero again: at a steady
/// 100k spans/s that page clearing cost ~18% of spanpipe's CPU (benches/README.md). Two seconds keeps a few
/// batches' worth of pages; `MIMALLOC_PURGE_DELAY` in the environment still wins.
const PURGE_DELAY_MS: std::ffi::c_long = 2000;

fn main() -> ExitCode {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option before any thread exists; mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
    cli::main()
}
