use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::any_value::Value;

use super::*;
use crate::test_util::{attr, batch, build, decode, kv, request, resource_spans, s, span, spans};

fn sample() -> Vec<u8> {
    request(vec![
        resource_spans(
            vec![kv("service.name", s("agent"))],
            vec![
                span(1, 1, "llm", 3, vec![kv("user.email", s("a@b.c"))]),
                span(1, 2, "tool", 1, vec![kv("user.email", s("d@e.f"))]),
            ],
        ),
        resource_spans(
            vec![kv("service.name", s("other"))],
            vec![span(2, 3, "llm", 3, vec![kv("user.email", s("g@h.i"))])],
        ),
    ])
}

#[tokio::test]
async fn include_selects_the_spans_actions_apply_to() {
    let (p, cap) = build(
        &AttributesProcessorFactory,
        "actions:\n  - {action: delete, key: user.email}\n  - {action: insert, key: team, value: ml}\ninclude:\n  match_type: strict\n  services: [agent]\n  span_kinds: [SPAN_KIND_CLIENT]\n",
    )
    .unwrap();
    p.consume(batch(sample())).await.unwrap();
    let out = cap.take();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].items, 3);
    let got = spans(&decode(&out[0].payload.to_vec()));
    assert_eq!(attr(&got[0].attributes, "user.email"), None);
    assert_eq!(
        attr(&got[0].attributes, "team"),
        Some(&Value::StringValue("ml".into()))
    );
    assert!(
        attr(&got[1].attributes, "user.email").is_some(),
        "internal kind not selected"
    );
    assert!(
        attr(&got[2].attributes, "user.email").is_some(),
        "other service not selected"
    );
}

#[tokio::test]
async fn exclude_and_untouched_batches_keep_their_buffer() {
    let (p, cap) = build(
        &AttributesProcessorFactory,
        "actions:\n  - {action: update, key: absent, value: x}\n",
    )
    .unwrap();
    let b = batch(sample());
    let ptr = b.payload.parts()[0].as_ptr();
    p.consume(b).await.unwrap();
    assert_eq!(
        cap.take()[0].payload.parts()[0].as_ptr(),
        ptr,
        "nothing changed: same bytes"
    );

    let (p, cap) = build(
        &AttributesProcessorFactory,
        "actions:\n  - {action: hash, key: user.email}\nexclude:\n  match_type: regexp\n  span_names: ['^tool$']\n",
    )
    .unwrap();
    p.consume(batch(sample())).await.unwrap();
    let got = spans(&decode(&cap.take()[0].payload.to_vec()));
    assert_ne!(
        attr(&got[0].attributes, "user.email"),
        Some(&Value::StringValue("a@b.c".into()))
    );
    assert_eq!(
        attr(&got[1].attributes, "user.email"),
        Some(&Value::StringValue("d@e.f".into()))
    );
}

#[tokio::test]
async fn from_context_uses_batch_metadata_and_malformed_is_rejected() {
    let (p, cap) = build(
        &AttributesProcessorFactory,
        "actions:\n  - {action: upsert, key: tenant, from_context: metadata.x-tenant}\n",
    )
    .unwrap();
    let mut b = batch(sample());
    b.metadata = spanpipe_core::Metadata(Some(Arc::from(vec![(
        "x-tenant".to_string(),
        "acme".to_string(),
    )])));
    p.consume(b).await.unwrap();
    let out = cap.take();
    assert_eq!(out[0].metadata.get("x-tenant"), Some("acme"));
    for sp in spans(&decode(&out[0].payload.to_vec())) {
        assert_eq!(
            attr(&sp.attributes, "tenant"),
            Some(&Value::StringValue("acme".into()))
        );
    }
    let bad = spanpipe_core::Batch::new(
        Signal::Traces,
        bytes::Bytes::from_static(b"\x0a\x09\x12"),
        1,
    );
    assert!(matches!(
        p.consume(bad).await,
        Err(ConsumeError::Rejected { .. })
    ));
}

#[test]
fn config_errors_have_file_line_and_key() {
    let err = build(
        &AttributesProcessorFactory,
        "actions:\n  - {action: insert, key: a, value: 1}\n  - {action: extract, key: a, pattern: '(x)'}\n",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.starts_with("t.yaml:3:"), "{err}");
    assert!(
        err.contains("processors.attributes.actions[1].pattern"),
        "{err}"
    );
    let err = build(
        &AttributesProcessorFactory,
        "actions:\n  - {action: delete, key: a}\ninclude:\n  span_names: [x]\n",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("processors.attributes.include.match_type"),
        "{err}"
    );
    let err = build(&AttributesProcessorFactory, "actions: []\nbogus: 1\n")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bogus"), "{err}");
}
