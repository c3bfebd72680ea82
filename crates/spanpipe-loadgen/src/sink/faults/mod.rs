//! The sink's fault script: a timeline of steps (`--fault`) that makes it misbehave like a real backend in
//! trouble — down (ports closed, open connections reset), answering an error status (with `Retry-After` /
//! gRPC `RetryInfo`), resetting connections — then healthy again, plus a fixed answer latency (`--latency`).
//! Every refusal and every up/down change is logged with its time, so a test can check that a client honoured
//! the waits it was told.
//!
//! The timeline starts with the first request (or at once when the first step is `down`); a step ends after its
//! number of requests or its duration; after the last step the sink is healthy.

mod parse;
#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

pub use parse::parse_step;

/// How long a step lasts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lasts {
    Requests(u64),
    For(Duration),
}

/// `Retry-After` (HTTP) / `RetryInfo` (gRPC) attached to an error answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RetryAfter {
    /// `Retry-After: N` (delay-seconds).
    Secs(u64),
    /// `Retry-After: <HTTP-date N seconds from now>`; gRPC gets `RetryInfo` of N seconds.
    Date(u64),
}

/// What one step does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Ok,
    /// Listeners closed and open connections reset.
    Down,
    /// An error answer: the HTTP status, and the gRPC code sent instead on the gRPC listener.
    Status {
        http: u16,
        grpc: i32,
        retry_after: Option<RetryAfter>,
    },
    /// The request's connection is reset (TCP RST) instead of answered.
    Reset,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub kind: Kind,
    pub lasts: Lasts,
}

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    Ok,
    Status {
        http: u16,
        grpc: i32,
        retry_after: Option<RetryAfter>,
    },
    Reset,
}

/// Log entries kept at most (a long benchmark must not grow without bound).
const MAX_LOG: usize = 100_000;

struct State {
    /// Index of the current step (`steps.len()`: past the end, healthy).
    idx: usize,
    /// When the current step began; `None` until the timeline starts.
    step_started: Option<Instant>,
    step_requests: u64,
    log: Vec<Value>,
    log_dropped: u64,
    refused: u64,
    resets: u64,
}

/// The fault script and its progress, shared by both listeners.
pub struct Faults {
    steps: Vec<Step>,
    latency: Duration,
    state: Mutex<State>,
    down: watch::Sender<bool>,
}

impl Faults {
    pub fn new(steps: Vec<Step>, latency: Duration) -> Faults {
        let faults = Faults {
            steps,
            latency,
            state: Mutex::new(State {
                idx: 0,
                step_started: None,
                step_requests: 0,
                log: Vec::new(),
                log_dropped: 0,
                refused: 0,
                resets: 0,
            }),
            down: watch::channel(false).0,
        };
        if faults.steps.first().is_some_and(|s| s.kind == Kind::Down) {
            let mut st = faults.lock();
            faults.enter(&mut st, 0, Instant::now());
        }
        faults
    }

    /// The answer latency (`--latency`).
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Follows whether the listeners must be closed.
    pub fn down_watch(&self) -> watch::Receiver<bool> {
        self.down.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log(st: &mut State, event: &str, extra: Value) {
        if st.log.len() >= MAX_LOG {
            st.log_dropped += 1;
            return;
        }
        let mut e = json!({ "unix_ms": super::unix_ms(), "event": event });
        if let (Some(obj), Value::Object(more)) = (e.as_object_mut(), extra) {
            obj.extend(more);
        }
        st.log.push(e);
    }

    /// Makes step `idx` current (logging up/down changes).
    fn enter(&self, st: &mut State, idx: usize, now: Instant) {
        let was_down = self.is_down_step(st.idx) && st.step_started.is_some();
        st.idx = idx;
        st.step_started = Some(now);
        st.step_requests = 0;
        let down = self.is_down_step(idx);
        if down != was_down {
            Self::log(st, if down { "down" } else { "up" }, json!({ "step": idx }));
        }
        self.down.send_replace(down);
    }

    fn is_down_step(&self, idx: usize) -> bool {
        self.steps.get(idx).is_some_and(|s| s.kind == Kind::Down)
    }

    /// Moves past steps whose time is up. Bounded by the number of steps.
    fn advance_time(&self, st: &mut State, now: Instant) {
        while let (Some(step), Some(started)) = (self.steps.get(st.idx), st.step_started) {
            match step.lasts {
                Lasts::For(d) if now.duration_since(started) >= d => {
                    let next = st.idx + 1;
                    self.enter(st, next, started + d);
                }
                _ => break,
            }
        }
    }

    /// Called periodically, so that a `down` window ends (and begins) without requests arriving.
    pub fn tick(&self) {
        let mut st = self.lock();
        self.advance_time(&mut st, Instant::now());
    }

    /// Decides the fate of one request.
    pub fn on_request(&self) -> Action {
        if self.steps.is_empty() {
            return Action::Ok;
        }
        let now = Instant::now();
        let mut st = self.lock();
        if st.step_started.is_none() {
            self.enter(&mut st, 0, now);
        }
        self.advance_time(&mut st, now);
        let Some(step) = self.steps.get(st.idx).copied() else {
            return Action::Ok;
        };
        st.step_requests += 1;
        let action = match step.kind {
            Kind::Ok => Action::Ok,
            // A request on a connection that raced the close: reset it too.
            Kind::Down | Kind::Reset => Action::Reset,
            Kind::Status {
                http,
                grpc,
                retry_after,
            } => Action::Status {
                http,
                grpc,
                retry_after,
            },
        };
        match action {
            Action::Ok => {}
            Action::Reset => {
                st.resets += 1;
                let step_idx = st.idx;
                Self::log(&mut st, "reset", json!({ "step": step_idx }));
            }
            Action::Status { http, grpc, .. } => {
                st.refused += 1;
                let step_idx = st.idx;
                Self::log(
                    &mut st,
                    "status",
                    json!({ "step": step_idx, "http": http, "grpc": grpc }),
                );
            }
        }
        if step.lasts == Lasts::Requests(st.step_requests) {
            let next = st.idx + 1;
            self.enter(&mut st, next, now);
        }
        action
    }

    /// The report's `faults` section.
    pub fn report(&self) -> Value {
        let st = self.lock();
        json!({
            "steps": self.steps.len(),
            "current_step": st.idx,
            "refused": st.refused,
            "resets": st.resets,
            "latency_ms": self.latency.as_millis() as u64,
            "log": st.log,
            "log_dropped": st.log_dropped,
        })
    }
}

/// The gRPC code an HTTP error status stands for on the gRPC listener (the inverse of gRPC's HTTP mapping where
/// it has one: 429 is RESOURCE_EXHAUSTED, which clients retry only with `RetryInfo`).
pub fn grpc_code_for(http: u16) -> i32 {
    match http {
        400 => 3,        // INVALID_ARGUMENT
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        404 => 5,        // NOT_FOUND
        408 => 4,        // DEADLINE_EXCEEDED
        409 => 10,       // ABORTED
        413 | 429 => 8,  // RESOURCE_EXHAUSTED
        500 => 13,       // INTERNAL
        501 => 12,       // UNIMPLEMENTED
        502..=504 => 14, // UNAVAILABLE
        _ => 2,          // UNKNOWN
    }
}
