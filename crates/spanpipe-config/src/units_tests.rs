use super::*;

fn d(text: &str) -> std::time::Duration {
    Duration::parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .0
}

#[test]
fn durations() {
    use std::time::Duration as Std;
    assert_eq!(d("200ms"), Std::from_millis(200));
    assert_eq!(d("5s"), Std::from_secs(5));
    assert_eq!(d("1m"), Std::from_secs(60));
    assert_eq!(d("1h"), Std::from_secs(3600));
    assert_eq!(d("1.5s"), Std::from_millis(1500));
    assert_eq!(d("1m30s"), Std::from_secs(90));
    assert_eq!(d("0s"), Std::ZERO);
    assert_eq!(d("0"), Std::ZERO);
    assert_eq!(d("10us"), Std::from_micros(10));
    assert_eq!(d("10µs"), Std::from_micros(10));
    assert_eq!(d("100ns"), Std::from_nanos(100));
    assert_eq!(d(".5h"), Std::from_secs(1800));
    assert_eq!(d("1h2m3.004005006s"), Std::new(3723, 4_005_006));
    for bad in [
        "5",
        "12",
        "-5s",
        "5 parsecs",
        "s",
        "",
        "1.2.3s",
        "5x",
        "1s5",
        "1e3s",
        ".s",
        "99999999999999999999h",
    ] {
        let err = Duration::parse(bad).unwrap_err();
        assert!(
            err.starts_with(&format!("bad duration {bad:?}")),
            "{bad}: {err}"
        );
    }
    assert!(
        Duration::parse("5")
            .unwrap_err()
            .contains("expected a duration such as 200ms or 5s")
    );
}

#[test]
fn duration_display_round_trips() {
    for (value, text) in [
        (std::time::Duration::ZERO, "0s"),
        (std::time::Duration::from_millis(200), "200ms"),
        (std::time::Duration::from_micros(10), "10us"),
        (std::time::Duration::from_nanos(100), "100ns"),
        (std::time::Duration::from_secs(90), "1m30s"),
        (std::time::Duration::from_secs(3600), "1h"),
        (std::time::Duration::from_millis(1500), "1.5s"),
        (std::time::Duration::new(3605, 10), "1h5.00000001s"),
    ] {
        assert_eq!(Duration(value).to_string(), text);
        assert_eq!(d(text), value);
    }
}

#[test]
fn byte_sizes() {
    let b = |t: &str| ByteSize::parse(t).unwrap_or_else(|e| panic!("{t}: {e}")).0;
    assert_eq!(b("0"), 0);
    assert_eq!(b("512"), 512);
    assert_eq!(b("512B"), 512);
    assert_eq!(b("1KB"), 1000);
    assert_eq!(b("1kb"), 1000);
    assert_eq!(b("3MB"), 3_000_000);
    assert_eq!(b("1GB"), 1_000_000_000);
    assert_eq!(b("1KiB"), 1024);
    assert_eq!(b("20 MiB"), 20 << 20);
    assert_eq!(b("2gib"), 2 << 30);
    assert_eq!(b("1.5KiB"), 1536);
    for bad in [
        "-1",
        "1 parsec",
        "KiB",
        "1.2.3MB",
        "",
        "99999999999TiB",
        "1 0MB",
    ] {
        assert!(ByteSize::parse(bad).is_err(), "{bad}");
    }
    for n in [
        0u64,
        1,
        999,
        1000,
        1024,
        1536,
        20 << 20,
        5_000_000,
        u64::MAX,
    ] {
        let shown = ByteSize(n).to_string();
        assert_eq!(ByteSize::parse(&shown), Ok(ByteSize(n)), "{shown}");
    }
    assert_eq!(ByteSize(20 << 20).to_string(), "20MiB");
    assert_eq!(ByteSize(2000).to_string(), "2KB");
}

#[test]
fn serialize_as_text() {
    struct Collect(String);
    // Serialize through a tiny serializer: `collect_str` is all our impls use.
    impl std::fmt::Write for Collect {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.push_str(s);
            Ok(())
        }
    }
    let mut out = Collect(String::new());
    std::fmt::write(
        &mut out,
        format_args!(
            "{} {}",
            Duration(std::time::Duration::from_millis(1500)),
            ByteSize(1024)
        ),
    )
    .unwrap();
    assert_eq!(out.0, "1.5s 1KiB");
    let std_d: std::time::Duration = Duration::from(std::time::Duration::from_secs(2)).into();
    assert_eq!(std_d, std::time::Duration::from_secs(2));
}
