//! Command line, shaped like the OTel Collector's: `--config` (repeatable, merged in order), `--set`, and the
//! `validate`, `print-config` and `components` commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spanpipe_config::{CollectorConfig, ConfigError, Node, Warning};
use spanpipe_core::graph::Graph;

use crate::registry::registry;
use crate::telemetry::TelemetryConfig;

/// The configuration used when no `--config` is given: identical to configs/local.yaml.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/local.yaml");
const DEFAULT_CONFIG_NAME: &str = "<embedded configs/local.yaml>";

#[derive(Parser, Debug)]
#[command(
    name = "spanpipe",
    version,
    about = "An OTLP trace pipeline for GenAI agents and MLflow"
)]
struct Cli {
    /// Configuration file; repeat to merge several in order (maps merge, lists replace).
    #[arg(long = "config", global = true, value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Override one value, e.g. --set exporters::otlp/a::endpoint=127.0.0.1:4317 (dots work too).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check the configuration without starting anything (exit 0 valid, 1 invalid).
    Validate,
    /// Print the merged, expanded configuration (secrets redacted).
    PrintConfig,
    /// List the component types this build offers.
    Components,
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads, merges, expands and overrides the configuration into one tree.
pub fn load(files: &[PathBuf], sets: &[String]) -> Result<Node, ConfigError> {
    if !files.is_empty() {
        return spanpipe_config::load_files(files, sets, &env_lookup);
    }
    let mut node = spanpipe_config::load_str(DEFAULT_CONFIG_NAME, DEFAULT_CONFIG)?;
    spanpipe_config::expand_env(&mut node, &env_lookup)?;
    for s in sets {
        spanpipe_config::apply_set(&mut node, s)?;
    }
    Ok(node)
}

/// Loads and fully validates: layout, `service.telemetry`, component configs, graph. Reports every problem it
/// can find (a YAML syntax error or a bad `--set` stops loading, so those come alone), in the order written.
pub fn validate(files: &[PathBuf], sets: &[String]) -> Result<Vec<Warning>, Vec<ConfigError>> {
    let node = load(files, sets).map_err(|e| vec![e])?;
    let (cfg, mut errors) = CollectorConfig::parse_all(&node);
    if let Err(e) = TelemetryConfig::from_node(&cfg.service.telemetry) {
        errors.push(e);
    }
    let layout_ok = errors.is_empty();
    errors.extend(Graph::check(&cfg, &registry(), layout_ok));
    if !errors.is_empty() {
        errors.sort_by(|a, b| {
            let key =
                |e: &ConfigError| (e.location.file.clone(), e.location.line, e.location.column);
            key(a).cmp(&key(b))
        });
        return Err(errors);
    }
    CollectorConfig::from_node_all(&node).map(|(cfg, mut warnings)| {
        warnings.extend(registry().warnings(&cfg));
        warnings
    })
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Components) => {
            let r = registry();
            let list = |kind: &str, names: Vec<&String>| {
                println!("{kind}:");
                for n in names {
                    println!("  - {n}");
                }
            };
            list("receivers", r.receivers.keys().collect());
            list("processors", r.processors.keys().collect());
            list("exporters", r.exporters.keys().collect());
            list("connectors", r.connectors.keys().collect());
            list("extensions", r.extensions.keys().collect());
            ExitCode::SUCCESS
        }
        Some(Command::PrintConfig) => match load(&cli.config, &cli.set) {
            Ok(node) => {
                print!("{}", crate::print_config::render(&node));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Validate) => match validate(&cli.config, &cli.set) {
            Ok(warnings) => {
                for w in warnings {
                    eprintln!("warning: {w}");
                }
                eprintln!("configuration is valid");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("error: {e}");
                }
                let n = errors.len();
                eprintln!(
                    "configuration is invalid: {n} error{}",
                    if n == 1 { "" } else { "s" }
                );
                ExitCode::FAILURE
            }
        },
        None => match crate::run::run(&cli.config, &cli.set) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
