use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value as V,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Event};
use prost::Message;
use spanpipe_core::{BuildContext, ComponentId};

use super::*;

fn kv(k: &str, v: V) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(k: &str, v: &str) -> KeyValue {
    kv(k, V::StringValue(v.into()))
}

fn span(i: u8, attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        name: format!("span-{i}"),
        attributes: attrs,
        ..Default::default()
    }
}

fn request(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "scope".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: "https://schema".into(),
        }],
    }
}

fn redactor(yaml: &str) -> Redactor {
    let node = spanpipe_config::load_str("t.yaml", yaml).expect("yaml");
    let cfg: RedactionConfig = node.deserialize("processors.redaction").expect("config");
    cfg.validate().expect("valid");
    Redactor::new(&cfg).expect("compiles")
}

fn run(
    r: &Redactor,
    req: &ExportTraceServiceRequest,
) -> (Option<ExportTraceServiceRequest>, Stats) {
    let mut stats = Stats::default();
    let out = r
        .redact_request(&req.encode_to_vec(), &mut stats)
        .expect("valid request");
    (
        out.map(|b| ExportTraceServiceRequest::decode(b.as_slice()).expect("output decodes")),
        stats,
    )
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a V> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
}

fn spans(req: &ExportTraceServiceRequest) -> &[Span] {
    &req.resource_spans[0].scope_spans[0].spans
}

#[test]
fn nothing_to_do_keeps_the_bytes_and_allocates_nothing() {
    let r = redactor("allow_all_keys: true\nblocked_value_presets: [email]\n");
    let req = request(
        vec![s("service.name", "svc")],
        vec![span(1, vec![s("a", "clean text")])],
    );
    assert_eq!(run(&r, &req), (None, Stats::default()));
}

#[test]
fn masks_deletes_and_keeps_other_spans_byte_for_byte() {
    let r = redactor(
        "allowed_keys: [mlflow.spanType, mlflow.spanInputs, note, service.name, scope.secret]\n\
         blocked_value_presets: [email]\n",
    );
    let clean = span(2, vec![s("mlflow.spanType", "\"LLM\"")]);
    let mut req = request(
        vec![s("service.name", "svc"), s("host.name", "h1")],
        vec![
            span(
                1,
                vec![
                    s("mlflow.spanType", "\"CHAIN\""),
                    s("mlflow.spanInputs", r#"{"q": "mail a@b.io"}"#),
                    s("user.email", "a@b.io"),
                    s("note", "ok"),
                ],
            ),
            clean.clone(),
        ],
    );
    if let Some(scope) = req.resource_spans[0].scope_spans[0].scope.as_mut() {
        scope.attributes.push(s("scope.secret", "x@y.io"));
    }
    let (out, stats) = run(&r, &req);
    let out = out.expect("changed");
    assert_eq!(
        stats,
        Stats {
            masked: 2,
            truncated: 0,
            deleted: 2
        }
    );
    let res = &out.resource_spans[0]
        .resource
        .as_ref()
        .expect("resource")
        .attributes;
    assert!(attr(res, "host.name").is_none() && attr(res, "service.name").is_some());
    let s0 = &spans(&out)[0].attributes;
    assert_eq!(
        attr(s0, "mlflow.spanInputs"),
        Some(&V::StringValue(r#"{"q": "mail ****"}"#.into()))
    );
    assert_eq!(
        attr(s0, "mlflow.spanType"),
        Some(&V::StringValue("\"CHAIN\"".into()))
    );
    assert!(attr(s0, "user.email").is_none());
    assert_eq!(attr(s0, "note"), Some(&V::StringValue("ok".into())));
    let scope = out.resource_spans[0].scope_spans[0]
        .scope
        .as_ref()
        .expect("scope");
    assert_eq!(
        attr(&scope.attributes, "scope.secret"),
        Some(&V::StringValue("****".into()))
    );
    assert_eq!(spans(&out)[1], clean);
    let enc = req.encode_to_vec();
    let clean_bytes = clean.encode_to_vec();
    let out_bytes = r
        .redact_request(&enc, &mut Stats::default())
        .expect("ok")
        .expect("changed");
    assert!(
        out_bytes
            .windows(clean_bytes.len())
            .any(|w| w == clean_bytes),
        "untouched span copied verbatim"
    );
    assert_eq!(out.resource_spans[0].schema_url, "https://schema");
}

#[test]
fn key_patterns_ignored_keys_all_types_events_and_arrays() {
    let r = redactor(
        "allow_all_keys: true\nignored_keys: [safe]\nblocked_key_patterns: ['.*token.*']\n\
         blocked_values: ['4[0-9]{15}']\nredact_all_types: true\napply_to_resource: false\n",
    );
    let mut sp = span(
        1,
        vec![
            s("auth_token", "abc"),
            s("safe", "4111111111111111"),
            kv("card.number", V::IntValue(4111111111111111)),
            kv(
                "cards",
                V::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(V::StringValue("x 4111111111111111".into())),
                    }],
                }),
            ),
            kv("count", V::IntValue(3)),
        ],
    );
    sp.events.push(Event {
        name: "e".into(),
        attributes: vec![s("msg", "4111111111111111")],
        ..Default::default()
    });
    let req = request(vec![s("resource.card", "4111111111111111")], vec![sp]);
    let (out, stats) = run(&r, &req);
    let out = out.expect("changed");
    assert_eq!(stats.masked, 4, "{stats:?}");
    let a = &spans(&out)[0].attributes;
    assert_eq!(attr(a, "auth_token"), Some(&V::StringValue("****".into())));
    assert_eq!(
        attr(a, "safe"),
        Some(&V::StringValue("4111111111111111".into()))
    );
    assert_eq!(attr(a, "card.number"), Some(&V::StringValue("****".into())));
    assert_eq!(attr(a, "count"), Some(&V::IntValue(3)));
    let Some(V::ArrayValue(arr)) = attr(a, "cards") else {
        panic!("array kept")
    };
    assert_eq!(arr.values[0].value, Some(V::StringValue("x ****".into())));
    assert_eq!(
        attr(&spans(&out)[0].events[0].attributes, "msg"),
        Some(&V::StringValue("****".into()))
    );
    let res = &out.resource_spans[0]
        .resource
        .as_ref()
        .expect("resource")
        .attributes;
    assert_eq!(
        attr(res, "resource.card"),
        Some(&V::StringValue("4111111111111111".into())),
        "resource left alone"
    );
}

#[test]
fn truncation_keeps_json_valid_and_masks_first() {
    let r = redactor(
        "allow_all_keys: true\nblocked_value_presets: [email]\ntruncate: { max_bytes: 1KiB }\n",
    );
    let big = serde_json::json!({"prompt": format!("reach me at joe@example.com {}", "lorem ".repeat(400_000))}).to_string();
    assert!(big.len() > 2_000_000);
    let req = request(
        vec![],
        vec![span(
            1,
            vec![s("mlflow.spanInputs", &big), s("other", &"y".repeat(5000))],
        )],
    );
    let (out, stats) = run(&r, &req);
    assert_eq!(
        stats,
        Stats {
            masked: 1,
            truncated: 1,
            deleted: 0
        }
    );
    let out = out.expect("changed");
    let Some(V::StringValue(v)) = attr(&spans(&out)[0].attributes, "mlflow.spanInputs") else {
        panic!("string")
    };
    assert!(v.len() <= 1024, "{}", v.len());
    let parsed: serde_json::Value = serde_json::from_str(v).expect("valid JSON");
    let prompt = parsed["prompt"].as_str().expect("prompt kept");
    assert!(
        prompt.starts_with("reach me at **** lorem") && prompt.ends_with("...[truncated]"),
        "{prompt}"
    );
    let Some(V::StringValue(o)) = attr(&spans(&out)[0].attributes, "other") else {
        panic!("string")
    };
    assert_eq!(o.len(), 5000, "keys not named are not truncated");
}

#[test]
fn summary_counts_and_keys_merge_with_earlier_ones() {
    let r = redactor("allowed_keys: [a, b]\nblocked_values: ['secret']\nsummary: debug\n");
    let req = request(
        vec![],
        vec![span(
            1,
            vec![
                s("a", "my secret"),
                s("c", "x"),
                s("b", "fine"),
                s("redaction.redacted.keys", "z"),
                kv("redaction.redacted.count", V::IntValue(1)),
            ],
        )],
    );
    let (out, _) = run(&r, &req);
    let out = out.expect("changed");
    let a = &spans(&out)[0].attributes;
    assert_eq!(attr(a, "redaction.masked.count"), Some(&V::IntValue(1)));
    assert_eq!(
        attr(a, "redaction.masked.keys"),
        Some(&V::StringValue("a".into()))
    );
    assert_eq!(attr(a, "redaction.redacted.count"), Some(&V::IntValue(2)));
    assert_eq!(
        attr(a, "redaction.redacted.keys"),
        Some(&V::StringValue("c,z".into()))
    );
    assert_eq!(
        a.iter()
            .filter(|kv| kv.key == "redaction.redacted.count")
            .count(),
        1
    );
    let info = redactor("allowed_keys: [a]\nsummary: info\n");
    let (out, _) = run(
        &info,
        &request(vec![], vec![span(1, vec![s("a", "1"), s("b", "2")])]),
    );
    let out = out.expect("changed");
    let a = &spans(&out)[0].attributes;
    assert_eq!(attr(a, "redaction.redacted.count"), Some(&V::IntValue(1)));
    assert!(
        attr(a, "redaction.redacted.keys").is_none(),
        "info: counts only"
    );
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let r = redactor("allow_all_keys: true\nblocked_value_presets: [email]\n");
    let good = request(
        vec![s("k", "a@b.io")],
        vec![span(1, vec![s("x", "a@b.io")])],
    )
    .encode_to_vec();
    for cut in 0..good.len() {
        let _ = r.redact_request(&good[..cut], &mut Stats::default());
    }
    assert!(
        r.redact_request(b"\x0a\xff\xff", &mut Stats::default())
            .is_err()
    );
}

struct Capture(Mutex<Vec<Batch>>);

#[async_trait]
impl Consumer for Capture {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.0.lock().expect("lock").push(batch);
        Ok(())
    }
}

fn build(yaml: &str, next: Arc<dyn Consumer>) -> Result<Arc<dyn Processor>, ConfigError> {
    let node = spanpipe_config::load_str("c.yaml", yaml).expect("yaml");
    let id: ComponentId = "redaction/x".parse().expect("id");
    let ctx = BuildContext::new(id, "processors.redaction/x".into());
    RedactionProcessorFactory.build(&ctx, &node, Signal::Traces, next)
}

#[tokio::test]
async fn the_processor_passes_untouched_batches_by_reference_and_rewrites_others() {
    let cap = Arc::new(Capture(Mutex::new(Vec::new())));
    let p = build(
        "allow_all_keys: true\nblocked_value_presets: [email]\n",
        cap.clone(),
    )
    .expect("builds");
    let clean = Bytes::from(request(vec![], vec![span(1, vec![s("a", "b")])]).encode_to_vec());
    let dirty = Bytes::from(request(vec![], vec![span(2, vec![s("a", "x@y.io")])]).encode_to_vec());
    p.consume(Batch::new(Signal::Traces, clean.clone(), 1))
        .await
        .expect("ok");
    p.consume(Batch::new(Signal::Traces, dirty.clone(), 1))
        .await
        .expect("ok");
    let got = cap.0.lock().expect("lock");
    assert_eq!(
        got[0].payload.parts()[0].as_ptr(),
        clean.as_ptr(),
        "same buffer, no copy"
    );
    assert_ne!(got[1].payload, dirty);
    assert_eq!(got[1].items, 1);
}

#[test]
fn config_errors_point_at_the_key() {
    let next: Arc<dyn Consumer> = Arc::new(Capture(Mutex::new(Vec::new())));
    let err = build("blocked_values: ['(']\n", next.clone())
        .err()
        .expect("error")
        .to_string();
    assert!(
        err.contains("processors.redaction/x.blocked_values") && err.contains("entry 0"),
        "{err}"
    );
    let err = build("blocked_value_presets: [ssn]\n", next.clone())
        .err()
        .expect("error")
        .to_string();
    assert!(
        err.contains("blocked_value_presets") && err.contains("credit_card"),
        "{err}"
    );
    let err = build("blocked_key_patterns: ['[']\n", next)
        .err()
        .expect("error")
        .to_string();
    assert!(err.contains("blocked_key_patterns"), "{err}");
}
