//! Command line of both subcommands.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "spanpipe-loadgen",
    version,
    about = "Load generator and counting OTLP sink for spanpipe"
)]
pub struct Cli {
    /// Tokio worker threads (the benchmark machine has 2 cores shared with the collector).
    #[arg(long, global = true, default_value_t = 2)]
    pub threads: usize,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Send realistic agent spans with unique ids to an OTLP endpoint.
    Send(SendArgs),
    /// Run an OTLP trace server that acknowledges at once and counts span ids.
    Sink(SinkArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Zstd,
}

#[derive(Args, Debug, Clone)]
pub struct SendArgs {
    /// `host:port` of the OTLP receiver.
    #[arg(long, default_value = "127.0.0.1:4317")]
    pub endpoint: String,
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    pub protocol: Protocol,
    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connections: u32,
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub spans_per_request: u64,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub spans_per_trace: u64,
    /// Spans to send in all (the last request is cut to fit exactly).
    #[arg(long, conflicts_with = "duration")]
    pub total: Option<u64>,
    /// Send for this long instead of a fixed total (e.g. `30s`, `2m`).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Target spans per second across all connections; flat out when absent.
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    /// 16-bit prefix of every span id; makes ids unique across runs too. Default: from the clock.
    #[arg(long)]
    pub seed: Option<u16>,
    /// Per-attempt timeout of one request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Retries of a request refused as transient (UNAVAILABLE, RESOURCE_EXHAUSTED, 429, 502-504, connection errors).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_retries: u32,
    /// Everything stops after this, whatever is still in flight (counted as failed `hard_timeout`).
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub hard_timeout: Duration,
}

#[derive(Args, Debug, Clone)]
pub struct SinkArgs {
    /// Address of the OTLP/gRPC listener.
    #[arg(long)]
    pub grpc: Option<SocketAddr>,
    /// Address of the OTLP/HTTP listener (`/v1/traces`, protobuf).
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Write the JSON report here too.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// Exit this long after the last request, once data has arrived.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub idle_exit: Duration,
    /// Exit after this long in any case.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub max_duration: Duration,
    /// Spans expected; the report then includes `lost = expect - unique`.
    #[arg(long)]
    pub expect: Option<u64>,
    /// Largest request accepted, after decompression (a batch can exceed the 4 MiB gRPC default).
    #[arg(long, default_value_t = 256 << 20)]
    pub max_request_bytes: usize,
    /// A step of the fault script, in order (repeatable): `ok:N|DUR`, `down:DUR` (port closed, connections
    /// reset), `reset:N|DUR`, `STATUS:N|DUR[:retry-after=S|:retry-after-date=S][:grpc=CODE]` (e.g.
    /// `429:1:retry-after=2`). N counts requests, DUR is a duration. The timeline starts with the first request
    /// (at once when the first step is `down`); healthy after the last step.
    #[arg(long = "fault", value_parser = crate::sink::parse_fault)]
    pub faults: Vec<crate::sink::FaultStep>,
    /// Wait this long before answering each request.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub latency: Duration,
    /// Write `span_id_hex arrival_unix_ms` for every span received to this file at exit.
    #[arg(long)]
    pub arrivals: Option<std::path::PathBuf>,
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
