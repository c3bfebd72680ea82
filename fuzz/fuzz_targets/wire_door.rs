//! The receiver's door (`check_traces`) and the readers every component builds on it. Never a panic; and the
//! door's promise: a request with no invalid span decodes fully with prost (what `file`, `debug`, `otlp_http`
//! json and the redaction/transform processors rely on). A request with invalid spans loses exactly those to
//! `drop_invalid_spans` (the `on_invalid_span: drop` policy), and what is left passes the door and decodes.
//! On admitted input `walk_spans`, `SpanView::read`, `for_each_attr`, `find_attr` and `AnyValueRef` reads
//! (nested arrays and maps walked to the door's depth) never fail.
//!
//! The first byte picks `max_attribute_depth` (0..=40, past `MAX_DEPTH` is capped); the rest is the request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use spanpipe_core::wire::fields::{resource, scope, span};
use spanpipe_core::wire::{
    AnyValueRef, MAX_DEPTH, RawValue, SpanView, check_traces, drop_invalid_spans, find_attr,
    for_each_attr, for_each_entry, for_each_item, scan_traces, walk_spans,
};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let depth = usize::from(sel) % (MAX_DEPTH + 1);
    let Ok(report) = check_traces(body, depth) else {
        return;
    };
    assert!(report.invalid_spans <= report.spans);
    assert_eq!(
        report.invalid_spans == 0,
        report.first_error.is_none(),
        "{report:?}"
    );
    if report.invalid_spans == 0 {
        admitted(body, depth, report.spans);
        return;
    }
    let outcome =
        drop_invalid_spans(body, depth).expect("a request the door reports on can be cut");
    assert_eq!(
        outcome.dropped, report.invalid_spans,
        "drop removed other spans than the door refused"
    );
    let kept = outcome.payload.as_deref().unwrap_or(body);
    let again = check_traces(kept, depth).expect("what drop keeps passes the door");
    assert_eq!(
        again.invalid_spans, 0,
        "drop kept an invalid span: {again:?}"
    );
    assert_eq!(again.spans, report.spans - report.invalid_spans);
    admitted(kept, depth, again.spans);
});

/// Everything a component may do with a request the door admitted.
fn admitted(buf: &[u8], depth: usize, spans: usize) {
    let decoded = ExportTraceServiceRequest::decode(buf);
    assert!(
        decoded.is_ok(),
        "door admitted what prost refuses: {decoded:?}"
    );
    let decoded_spans: usize = decoded
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    assert_eq!(decoded_spans, spans, "door and prost count different spans");
    assert_eq!(
        scan_traces(buf, |_, _| {}).map(|s| s.spans).ok(),
        Some(spans),
        "the old scan refuses what the door admitted"
    );
    let summary = walk_spans(buf, |ctx| {
        attrs(ctx.resource, resource::ATTRIBUTES, depth);
        attrs(ctx.scope, scope::ATTRIBUTES, depth);
        attrs(ctx.raw, span::ATTRIBUTES, depth);
        let mut seen = 0usize;
        let view = SpanView::read(ctx.raw, |_, v| {
            seen += 1;
            value(v, depth);
        })
        .expect("an admitted span reads");
        view.check_ids(0).expect("admitted ids have their lengths");
        assert!(std::str::from_utf8(view.name).is_ok());
        assert!(std::str::from_utf8(view.status_message).is_ok());
        for key in ["service.name", "mlflow.spanType", ""] {
            find_attr(ctx.raw, span::ATTRIBUTES, key).expect("find_attr on an admitted span");
            find_attr(ctx.resource, resource::ATTRIBUTES, key).expect("find_attr on a resource");
        }
        Ok(())
    })
    .expect("an admitted request walks");
    assert_eq!(summary.spans, spans);
}

fn attrs(msg: &[u8], number: u32, depth: usize) {
    for_each_attr(msg, number, |k, v| {
        assert!(std::str::from_utf8(k).is_ok(), "admitted key is not UTF-8");
        value(v, depth);
    })
    .expect("for_each_attr on an admitted message");
}

/// Walks a value to the bottom with an explicit stack, as components do; never deeper than the door allowed.
fn value(v: RawValue<'_>, depth: usize) {
    let mut stack = vec![(v, 1usize)];
    while let Some((v, level)) = stack.pop() {
        assert!(level <= depth.max(1), "value deeper than the door allows");
        let parsed = v.parse().expect("an admitted value parses");
        let _ = (parsed.as_str(), parsed.is_nested(), v.get(), v.bytes());
        match parsed {
            AnyValueRef::Array(a) => for_each_item(a, |item| {
                stack.push((item, level + 1));
                Ok(())
            })
            .expect("an admitted array walks"),
            AnyValueRef::Kvlist(m) => for_each_entry(m, |k, item| {
                assert!(
                    std::str::from_utf8(k).is_ok(),
                    "admitted map key is not UTF-8"
                );
                stack.push((item, level + 1));
                Ok(())
            })
            .expect("an admitted map walks"),
            _ => {}
        }
    }
}
