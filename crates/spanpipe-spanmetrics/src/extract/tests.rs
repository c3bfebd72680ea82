use std::sync::Arc;

use super::*;
use crate::test_util::{request, settings, span};

fn facts_of(
    s: &Settings,
    bytes: &[u8],
    md: &Metadata,
) -> (Vec<SpanFacts<'static>>, Vec<TraceLabels>) {
    let f = extract(s, bytes, md, 0).unwrap();
    let spans = f
        .spans
        .into_iter()
        .map(|x| SpanFacts {
            span_type: Cow::Owned(x.span_type.into_owned()),
            experiment: Cow::Owned(x.experiment.into_owned()),
            ..x
        })
        .collect();
    (spans, f.roots.into_iter().map(|(_, l)| l).collect())
}

fn labels(l: &TraceLabels) -> Vec<Option<&str>> {
    l.iter().map(|v| v.as_deref()).collect()
}

#[test]
fn value_root_status_and_type_per_span() {
    let s = settings("");
    let bytes = request(
        &[],
        vec![
            span(1, 2, 1, 12.5, 2, &[("mlflow.spanType", "\"LLM\"")]),
            span(
                1,
                3,
                1,
                0.25,
                0,
                &[("gen_ai.operation.name", "execute_tool")],
            ),
            span(1, 1, 0, 1500.0, 1, &[("openinference.span.kind", "AGENT")]),
        ],
    );
    let (f, roots) = facts_of(&s, &bytes, &Metadata::default());
    let got: Vec<_> = f
        .iter()
        .map(|x| {
            (
                x.value_ms,
                x.root,
                x.status,
                x.span_type.as_ref(),
                x.experiment.as_ref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (12.5, false, Status::Error, "LLM", "0"),
            (0.25, false, Status::Unset, "TOOL", "0"),
            (1500.0, true, Status::Ok, "AGENT", "0"),
        ]
    );
    assert_eq!(f[0].trace_id, [1; 16]);
    assert!(
        roots.is_empty(),
        "no tags or metadata configured: no root labels"
    );
}

#[test]
fn a_span_ending_before_it_starts_counts_zero() {
    let mut sp = span(1, 1, 0, 1.0, 0, &[]);
    sp.end_time_unix_nano = sp.start_time_unix_nano - 5;
    let (f, _) = facts_of(&settings(""), &request(&[], vec![sp]), &Metadata::default());
    assert_eq!(f[0].value_ms, 0.0);
}

#[test]
fn experiment_sources_in_order_then_default() {
    let s = settings(
        "experiment_id_from:\n  - span_attribute: mlflow.experimentId\n  - resource_attribute: mlflow.experimentId\n  - request_header: x-mlflow-experiment-id\ndefault_experiment_id: '9'\n",
    );
    let md = Metadata(Some(Arc::from(vec![(
        "x-mlflow-experiment-id".to_string(),
        "7".to_string(),
    )])));
    let spans = vec![
        span(1, 1, 0, 1.0, 0, &[("mlflow.experimentId", "\"42\"")]),
        span(1, 2, 1, 1.0, 0, &[]),
    ];
    let (f, _) = facts_of(
        &s,
        &request(&[("mlflow.experimentId", "5")], spans.clone()),
        &md,
    );
    assert_eq!(
        (f[0].experiment.as_ref(), f[1].experiment.as_ref()),
        ("42", "5")
    );
    let (f, _) = facts_of(&s, &request(&[], spans.clone()), &md);
    assert_eq!(f[1].experiment, "7");
    let (f, _) = facts_of(&s, &request(&[], spans), &Metadata::default());
    assert_eq!(f[1].experiment, "9");
}

#[test]
fn root_labels_follow_mlflow_tag_rules() {
    let s = settings(
        "tags: [team, env, region, telemetry.sdk.name]\nmetadata: [mlflow.trace.user, mlflow.trace.session, mlflow.trace_schema.version]\n",
    );
    let resource = [
        ("env", "from-resource"),
        ("region", "eu"),
        ("telemetry.sdk.name", "opentelemetry"),
    ];
    let root = span(
        1,
        1,
        0,
        1.0,
        1,
        &[
            ("mlflow.traceTag.team", "rust"),
            ("mlflow.traceTag.env", "staging"),
            ("mlflow.traceTag.ignored", "x"),
            ("user.id", "\"alice\""),
            ("gen_ai.conversation.id", "conv-1"),
        ],
    );
    let child = span(
        1,
        2,
        1,
        1.0,
        1,
        &[("mlflow.traceTag.team", "child-does-not-count")],
    );
    let (_, roots) = facts_of(
        &s,
        &request(&resource, vec![child, root]),
        &Metadata::default(),
    );
    assert_eq!(roots.len(), 1);
    assert_eq!(
        labels(&roots[0]),
        [
            Some("rust"),
            Some("staging"),
            Some("eu"),
            None,
            Some("alice"),
            Some("conv-1"),
            Some("3")
        ]
    );
    // session.id wins over the conversation id.
    let root = span(
        1,
        1,
        0,
        1.0,
        1,
        &[("session.id", "s-1"), ("gen_ai.conversation.id", "c")],
    );
    let (_, roots) = facts_of(&s, &request(&[], vec![root]), &Metadata::default());
    assert_eq!(labels(&roots[0])[5], Some("s-1"));
}

#[test]
fn malformed_requests_are_errors_and_bad_attributes_are_skipped() {
    use prost::Message;
    use spanpipe_core::wire::put_bytes_field;
    let s = settings("");
    assert!(extract(&s, b"\x0a\x05\x12", &Metadata::default(), 0).is_err());
    // A span whose second attribute is garbage: the first one still counts, and so does the span.
    let mut span_bytes = span(1, 1, 0, 3.0, 1, &[("mlflow.spanType", "\"LLM\"")]).encode_to_vec();
    span_bytes.extend_from_slice(&[0x4a, 0x02, 0x0a, 0xff]);
    let mut scope = Vec::new();
    put_bytes_field(&mut scope, 2, &span_bytes);
    let mut rs = Vec::new();
    put_bytes_field(&mut rs, 2, &scope);
    let mut req = Vec::new();
    put_bytes_field(&mut req, 1, &rs);
    let (f, _) = facts_of(&s, &req, &Metadata::default());
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].span_type.as_ref(), f[0].value_ms), ("LLM", 3.0));
}

/// Client-chosen label values (experiment id, span type, tags) are cut to `max_label_value_length` bytes on a
/// UTF-8 boundary, and every cut is counted.
#[test]
fn long_label_values_are_cut_on_a_char_boundary_and_counted() {
    let s = settings("tags: [team]\nmax_label_value_length: 8\n");
    let md = Metadata::default();
    let long_id = format!("\"{}\"", "7".repeat(30_000));
    let team = "é".repeat(10); // 20 bytes, 2 per char
    let bytes = request(
        &[],
        vec![span(
            1,
            1,
            0,
            1.0,
            0,
            &[
                ("mlflow.experimentId", long_id.as_str()),
                ("mlflow.spanType", "\"ABCDEFGHIJKL\""),
                ("mlflow.traceTag.team", team.as_str()),
            ],
        )],
    );
    let f = extract(&s, &bytes, &md, 0).unwrap();
    assert_eq!(f.spans[0].experiment, "77777777");
    assert_eq!(f.spans[0].span_type, "ABCDEFGH");
    assert_eq!(labels(&f.roots[0].1), [Some("éééé")]);
    assert_eq!(f.truncated, 3);
    // Short values are untouched and not counted.
    let bytes = request(
        &[],
        vec![span(1, 1, 0, 1.0, 0, &[("mlflow.experimentId", "\"42\"")])],
    );
    let f = extract(&s, &bytes, &md, 0).unwrap();
    assert_eq!(f.spans[0].experiment, "42");
    assert_eq!(f.truncated, 0);
}
