use super::*;
use crate::test_util::{
    batch, build, decode, kv, request, resource_spans, s, span, spans, with_status,
};

fn sample() -> Vec<u8> {
    request(vec![
        resource_spans(
            vec![kv("service.name", s("agent"))],
            vec![
                span(1, 1, "root", 2, vec![kv("http.route", s("/chat"))]),
                with_status(
                    span(1, 2, "llm", 3, vec![kv("gen_ai.system", s("openai"))]),
                    2,
                ),
                span(2, 3, "GET /health", 2, vec![kv("http.route", s("/health"))]),
            ],
        ),
        resource_spans(
            vec![kv("service.name", s("noise"))],
            vec![span(3, 4, "poll", 1, vec![])],
        ),
    ])
}

fn names(b: &Batch) -> Vec<String> {
    spans(&decode(&b.payload.to_vec()))
        .into_iter()
        .map(|s| s.name)
        .collect()
}

async fn run(yaml: &str) -> Vec<Batch> {
    let (p, cap) = build(&FilterProcessorFactory, yaml).unwrap();
    p.consume(batch(sample())).await.unwrap();
    cap.take()
}

#[tokio::test]
async fn ottl_conditions_are_ored() {
    let out = run(
        "traces:\n  span:\n    - 'attributes[\"http.route\"] == \"/health\"'\n    - 'resource.attributes[\"service.name\"] == \"noise\"'\n",
    )
    .await;
    assert_eq!(names(&out[0]), ["root", "llm"]);
    assert_eq!(out[0].items, 2);
    let req = decode(&out[0].payload.to_vec());
    assert_eq!(
        req.resource_spans.len(),
        1,
        "the emptied resource is removed"
    );
}

#[tokio::test]
async fn status_kind_and_logic() {
    let out = run("traces:\n  span: ['status.code == STATUS_CODE_ERROR or (kind == SPAN_KIND_SERVER and not IsMatch(name, \"^root\"))']\n").await;
    assert_eq!(names(&out[0]), ["root", "poll"]);
}

#[tokio::test]
async fn legacy_exclude_and_include() {
    let out =
        run("spans:\n  exclude:\n    match_type: regexp\n    span_names: ['health', '^poll$']\n")
            .await;
    assert_eq!(names(&out[0]), ["root", "llm"]);
    let out = run("spans:\n  include:\n    match_type: strict\n    services: [agent]\n    span_kinds: [SPAN_KIND_SERVER]\n").await;
    assert_eq!(names(&out[0]), ["root", "GET /health"]);
    let out = run("spans:\n  include:\n    match_type: strict\n    attributes: [{key: gen_ai.system, value: openai}]\n").await;
    assert_eq!(names(&out[0]), ["llm"]);
}

#[tokio::test]
async fn drop_whole_trace_takes_the_siblings() {
    let out =
        run("drop_whole_trace: true\ntraces:\n  span: ['status.code == STATUS_CODE_ERROR']\n")
            .await;
    assert_eq!(names(&out[0]), ["GET /health", "poll"]);
    assert_eq!(out[0].items, 2);
    let out = run("drop_whole_trace: true\ntraces:\n  span: ['name == \"nothing\"']\n").await;
    assert_eq!(names(&out[0]), ["root", "llm", "GET /health", "poll"]);
}

#[tokio::test]
async fn all_dropped_is_acknowledged_not_forwarded_and_counted() {
    let (p, cap) = build(&FilterProcessorFactory, "traces:\n  span: ['true']\n").unwrap();
    let fp = FilterProcessorFactory
        .build(
            &BuildContext::new("filter/x".parse().unwrap(), "processors.filter/x".into()),
            &spanpipe_config::load_str("t.yaml", "traces:\n  span: ['name == \"poll\"']\n")
                .unwrap(),
            Signal::Traces,
            cap.clone(),
        )
        .unwrap();
    p.consume(batch(sample())).await.unwrap();
    assert!(cap.take().is_empty());
    fp.consume(batch(sample())).await.unwrap();
    assert_eq!(cap.take()[0].items, 3);
}

#[tokio::test]
async fn nothing_matching_keeps_the_buffer() {
    let (p, cap) = build(
        &FilterProcessorFactory,
        "traces:\n  span: ['name == \"x\"']\n",
    )
    .unwrap();
    let b = batch(sample());
    let ptr = b.payload.parts()[0].as_ptr();
    p.consume(b).await.unwrap();
    let out = cap.take();
    assert_eq!(out[0].payload.parts()[0].as_ptr(), ptr);
    assert_eq!(out[0].items, 4);
    let (p, cap) = build(&FilterProcessorFactory, "").unwrap();
    p.consume(batch(sample())).await.unwrap();
    assert_eq!(cap.take()[0].items, 4, "no rule: everything passes");
}

#[test]
fn config_errors_name_the_condition() {
    let err = |yaml: &str| {
        build(&FilterProcessorFactory, yaml)
            .err()
            .unwrap()
            .to_string()
    };
    let e = err("traces:\n  span:\n    - 'name == \"a\"'\n    - 'IsString(name)'\n");
    assert!(e.starts_with("t.yaml:4:"), "{e}");
    assert!(e.contains("processors.filter.traces.span[1]"), "{e}");
    assert!(e.contains("IsString is not supported"), "{e}");
    let e = err(
        "spans:\n  exclude: {match_type: strict, span_names: [a]}\ntraces:\n  span: ['true']\n",
    );
    assert!(e.contains("traces.span: cannot be combined"), "{e}");
    let e = err("traces:\n  spanevent: ['name == \"x\"']\n");
    assert!(e.contains("traces.spanevent"), "{e}");
    let e = err("spans:\n  include: {span_names: [a]}\n");
    assert!(
        e.contains("processors.filter.spans.include.match_type"),
        "{e}"
    );
    let e = err("metrics:\n  metric: ['name == \"x\"']\n");
    assert!(e.contains("processors.filter.metrics.metric"), "{e}");
    let e = err("logs:\n  include: {record_attributes: [{key: a}]}\n");
    assert!(e.contains("record_attributes"), "{e}");
}
