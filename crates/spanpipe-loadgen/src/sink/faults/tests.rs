use std::time::Duration;

use super::*;

fn steps(specs: &[&str]) -> Vec<Step> {
    specs.iter().map(|s| parse_step(s).expect(s)).collect()
}

#[test]
fn parses_every_kind_and_rejects_nonsense() {
    assert_eq!(
        parse_step("429:1:retry-after=2"),
        Ok(Step {
            kind: Kind::Status {
                http: 429,
                grpc: 8,
                retry_after: Some(RetryAfter::Secs(2))
            },
            lasts: Lasts::Requests(1)
        })
    );
    assert_eq!(
        parse_step("503:2s:retry-after-date=3:grpc=10"),
        Ok(Step {
            kind: Kind::Status {
                http: 503,
                grpc: 10,
                retry_after: Some(RetryAfter::Date(3))
            },
            lasts: Lasts::For(Duration::from_secs(2))
        })
    );
    assert_eq!(parse_step("down:30s").map(|s| s.kind), Ok(Kind::Down));
    assert_eq!(
        parse_step("reset:4").map(|s| s.lasts),
        Ok(Lasts::Requests(4))
    );
    for bad in [
        "",
        "ok",
        "ok:0",
        "down:3",
        "nap:1",
        "200:1",
        "600:1",
        "429:1:retry-after=x",
        "429:1:wait=2",
        "429:1:grpc=0",
        "ok:1:retry-after=2",
        "ok:5d",
    ] {
        assert!(parse_step(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn count_steps_advance_per_request_then_healthy() {
    let f = Faults::new(
        steps(&["429:1:retry-after=2", "503:2", "reset:1"]),
        Duration::ZERO,
    );
    assert!(matches!(
        f.on_request(),
        Action::Status {
            http: 429,
            grpc: 8,
            retry_after: Some(RetryAfter::Secs(2))
        }
    ));
    assert!(matches!(
        f.on_request(),
        Action::Status {
            http: 503,
            grpc: 14,
            retry_after: None
        }
    ));
    assert!(matches!(f.on_request(), Action::Status { http: 503, .. }));
    assert_eq!(f.on_request(), Action::Reset);
    for _ in 0..5 {
        assert_eq!(f.on_request(), Action::Ok);
    }
    let r = f.report();
    assert_eq!(r["refused"], 3);
    assert_eq!(r["resets"], 1);
    assert_eq!(r["log"].as_array().map(Vec::len), Some(4));
}

#[test]
fn down_window_opens_and_closes_on_time() {
    let f = Faults::new(steps(&["ok:1", "down:150ms", "ok:1"]), Duration::ZERO);
    let rx = f.down_watch();
    assert!(!*rx.borrow());
    assert_eq!(f.on_request(), Action::Ok);
    assert!(*rx.borrow(), "down right after the first request");
    // A request racing the close is reset.
    assert_eq!(f.on_request(), Action::Reset);
    std::thread::sleep(Duration::from_millis(200));
    f.tick();
    assert!(!*rx.borrow(), "up again after 150 ms");
    let events: Vec<String> = f.report()["log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(events, ["down", "reset", "up"]);
}

#[test]
fn a_leading_down_step_starts_at_once() {
    let f = Faults::new(steps(&["down:10s"]), Duration::ZERO);
    assert!(*f.down_watch().borrow());
    let none = Faults::new(Vec::new(), Duration::from_millis(5));
    assert!(!*none.down_watch().borrow());
    assert_eq!(none.on_request(), Action::Ok);
    assert_eq!(none.latency(), Duration::from_millis(5));
}
