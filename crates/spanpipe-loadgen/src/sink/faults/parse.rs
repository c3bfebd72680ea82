//! `--fault` syntax: `KIND:LENGTH[:OPTION...]`, LENGTH a request count (`3`) or a duration (`500ms`, `30s`).
//!
//! - `ok:LENGTH` — healthy
//! - `down:DURATION` — listeners closed, open connections reset
//! - `reset:LENGTH` — each request's connection is reset instead of answered
//! - `STATUS:LENGTH[:retry-after=SECS|:retry-after-date=SECS][:grpc=CODE]` — answer HTTP STATUS (gRPC: the
//!   matching code, or CODE), with `Retry-After: SECS`, `Retry-After: <HTTP-date SECS ahead>` (gRPC: `RetryInfo`)

use super::{Kind, Lasts, RetryAfter, Step, grpc_code_for};
use crate::args::parse_duration;

/// Parses one `--fault` value.
pub fn parse_step(s: &str) -> Result<Step, String> {
    let mut parts = s.split(':');
    let kind = parts.next().unwrap_or("").trim();
    let length = parts
        .next()
        .ok_or_else(|| format!("{s:?}: missing length (KIND:COUNT or KIND:DURATION)"))?
        .trim();
    let lasts = match length.parse::<u64>() {
        Ok(0) => return Err(format!("{s:?}: a count must be at least 1")),
        Ok(n) => Lasts::Requests(n),
        Err(_) => Lasts::For(parse_duration(length).map_err(|e| format!("{s:?}: {e}"))?),
    };
    let options: Vec<&str> = parts.collect();
    let kind = match kind {
        "ok" | "reset" | "down" => {
            if let Some(o) = options.first() {
                return Err(format!("{s:?}: {kind} takes no option ({o:?})"));
            }
            match kind {
                "ok" => Kind::Ok,
                "reset" => Kind::Reset,
                _ => {
                    if !matches!(lasts, Lasts::For(_)) {
                        return Err(format!("{s:?}: down needs a duration (e.g. down:30s)"));
                    }
                    Kind::Down
                }
            }
        }
        code => {
            let http: u16 = code
                .parse()
                .ok()
                .filter(|c| (400..=599).contains(c))
                .ok_or_else(|| {
                    format!(
                        "{s:?}: unknown kind {code:?} (ok, down, reset or an HTTP status 400-599)"
                    )
                })?;
            let mut grpc = grpc_code_for(http);
            let mut retry_after = None;
            for o in options {
                let (k, v) = o
                    .split_once('=')
                    .ok_or_else(|| format!("{s:?}: option {o:?} is not key=value"))?;
                let n: u64 = v
                    .parse()
                    .map_err(|_| format!("{s:?}: {k} needs a whole number"))?;
                match k {
                    "retry-after" => retry_after = Some(RetryAfter::Secs(n)),
                    "retry-after-date" => retry_after = Some(RetryAfter::Date(n)),
                    "grpc" if (1..=16).contains(&n) => grpc = n as i32,
                    "grpc" => return Err(format!("{s:?}: grpc code must be 1-16")),
                    _ => return Err(format!("{s:?}: unknown option {k:?}")),
                }
            }
            Kind::Status {
                http,
                grpc,
                retry_after,
            }
        }
    };
    Ok(Step { kind, lasts })
}
