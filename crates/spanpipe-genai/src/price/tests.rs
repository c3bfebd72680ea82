use super::*;
use crate::test_util::PRICES;

fn usage(i: u64, o: u64) -> Usage {
    Usage {
        input: Some(i),
        output: Some(o),
        ..Usage::default()
    }
}

#[test]
fn days_are_civil_dates() {
    assert_eq!(parse_day("1970-01-01"), Some(0));
    assert_eq!(parse_day("2024-03-01"), Some(19783));
    assert_eq!(parse_day("2024-13-01"), None);
    assert_eq!(parse_day("yesterday"), None);
    assert_eq!(day_of(86_400_000_000_000 * 3 + 5), 3);
}

#[test]
fn exact_then_regex_latest_effective_price_wins() {
    let t = PriceTable::parse("p.yaml", PRICES).unwrap();
    let d2025 = parse_day("2025-06-01").unwrap();
    let d2031 = parse_day("2031-06-01").unwrap();
    let c = t
        .cost("gpt-test", None, d2025, &usage(1_000_000, 500_000))
        .unwrap();
    assert!(
        (c.input - 2.0).abs() < 1e-12 && (c.output - 4.0).abs() < 1e-12,
        "{c:?}"
    );
    let c = t
        .cost("gpt-test", None, d2031, &usage(1_000_000, 500_000))
        .unwrap();
    assert!(
        (c.total() - 3.0).abs() < 1e-12,
        "the 2030 price applies from 2030: {c:?}"
    );
    let c = t.cost("claude-x", None, d2025, &usage(1000, 1000)).unwrap();
    assert!((c.total() - 0.018).abs() < 1e-12);
    assert!(
        t.cost("xclaude-x", None, d2025, &usage(1, 1)).is_none(),
        "regex matches the whole name"
    );
    assert!(t.cost("unknown", None, d2025, &usage(1, 1)).is_none());
}

#[test]
fn cached_and_reasoning_parts_have_their_own_rates() {
    let t = PriceTable::parse("p.yaml", PRICES).unwrap();
    let u = Usage {
        input: Some(1_000_000),
        output: Some(0),
        cache_read: Some(400_000),
        ..Usage::default()
    };
    let c = t.cost("gpt-test", None, 0, &u).unwrap();
    assert!((c.input - (0.6 * 2.0 + 0.4 * 0.5)).abs() < 1e-12, "{c:?}");
}

#[test]
fn invalid_tables_are_refused_with_the_entry() {
    for (bad, want) in [
        ("currency: ''\nprices: []", "currency"),
        (
            "currency: USD\nprices: [{model: a, input: -1, output: 1}]",
            "prices[0]",
        ),
        (
            "currency: USD\nprices: [{input: 1, output: 1}]",
            "exactly one",
        ),
        (
            "currency: USD\nprices: [{model: a, model_regex: b, input: 1, output: 1}]",
            "exactly one",
        ),
        (
            "currency: USD\nprices: [{model_regex: '(', input: 1, output: 1}]",
            "model_regex",
        ),
        (
            "currency: USD\nprices: [{model: a, input: 1, output: 1, effective_from: soon}]",
            "effective_from",
        ),
        (
            "currency: USD\nprices: [{model: a, input: 1, output: 1, price: 3}]",
            "price",
        ),
    ] {
        let e = PriceTable::parse("p.yaml", bad).unwrap_err();
        assert!(e.contains(want), "{bad}: {e}");
    }
    let json = r#"{"currency": "EUR", "prices": [{"model": "m", "input": 1, "output": 2}]}"#;
    assert_eq!(PriceTable::parse("p.json", json).unwrap().currency, "EUR");
}
