use super::*;
use std::time::{Duration, Instant};

fn p<'a>(
    s: &'a [Option<Arc<str>>; SLOTS],
    token: TokenType,
    trace: &'a TraceLabels,
) -> PointRef<'a> {
    PointRef {
        metric: Metric::TokenUsage,
        token,
        slots: s,
        trace,
    }
}

fn slots(model: &str) -> [Option<Arc<str>>; SLOTS] {
    let mut s: [Option<Arc<str>>; SLOTS] = Default::default();
    s[crate::extract::REQUEST_MODEL] = Some(Arc::from(model));
    s[crate::extract::TOOL_NAME] = Some(Arc::from("not used by token usage"));
    s
}

#[test]
fn series_are_found_by_the_metric_s_labels_capped_and_expired() {
    let t0 = Instant::now();
    let trace: TraceLabels = vec![None].into();
    let mut st = Store::new(2);
    let a = slots("a");
    assert_eq!(
        st.record(&p(&a, TokenType::Input, &trace), 5.0, t0, 1),
        Outcome::Created
    );
    // A slot the metric does not carry does not split the series.
    let mut a2 = slots("a");
    a2[crate::extract::TOOL_NAME] = Some(Arc::from("other"));
    assert_eq!(
        st.record(&p(&a2, TokenType::Input, &trace), 7.0, t0, 1),
        Outcome::Existing
    );
    assert_eq!(
        st.record(&p(&a, TokenType::Output, &trace), 1.0, t0, 1),
        Outcome::Created
    );
    assert_eq!(
        st.record(&p(&slots("b"), TokenType::Input, &trace), 1.0, t0, 1),
        Outcome::Overflow
    );
    assert_eq!(st.len(), 2);
    let s = st.series().find(|s| s.token == TokenType::Input).unwrap();
    assert!(matches!(&s.value, Value::Hist(h) if h.sum == 12.0 && h.count == 2));
    assert!(st.overflow(Metric::TokenUsage).is_some());
    // Only the idle series go.
    let t1 = t0 + Duration::from_secs(10);
    st.record(&p(&a, TokenType::Input, &trace), 1.0, t1, 2);
    assert_eq!(
        st.expire(t1 + Duration::from_secs(5), Duration::from_secs(8)),
        2
    );
    assert_eq!(st.len(), 1);
    assert!(st.overflow(Metric::TokenUsage).is_none());
    assert_eq!(
        st.record(&p(&slots("c"), TokenType::Input, &trace), 1.0, t1, 3),
        Outcome::Created,
        "room again"
    );
}
