//! Cost per span of the `redaction` processor on realistic agent spans (~500 B, 10 attributes, JSON-encoded
//! `mlflow.spanInputs` / `mlflow.spanOutputs`): `allow_all_keys` alone (no scan), a key pattern that matches
//! nothing (a scan of every key, bytes passed on), masking with the four presets
//! when no value matches (the common case: a scan per string value), masking an e-mail in every span's JSON
//! input, allow-list mode deleting keys, and truncating a 64 KiB input to 4 KiB.
//! Run: `cargo bench -p spanpipe-benches --bench redaction`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;
use spanpipe_benches::agent_request;
use spanpipe_redaction::{RedactionConfig, Redactor, Stats};

const SPANS: u64 = 500;

fn redactor(yaml: &str) -> Redactor {
    let node = spanpipe_config::load_str("bench.yaml", yaml).expect("yaml");
    let cfg: RedactionConfig = node.deserialize("processors.redaction").expect("config");
    cfg.validate().expect("valid");
    Redactor::new(&cfg).expect("compiles")
}

/// 50 traces of 10 agent spans; `edit` changes each span's `mlflow.spanInputs`.
fn request(edit: impl Fn(&mut String)) -> Vec<u8> {
    let mut req = agent_request(1, 50, 10);
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            for s in &mut ss.spans {
                for a in &mut s.attributes {
                    if a.key == "mlflow.spanInputs"
                        && let Some(AnyValue {
                            value: Some(any_value::Value::StringValue(v)),
                        }) = a.value.as_mut()
                    {
                        edit(v);
                    }
                }
            }
        }
    }
    req.encode_to_vec()
}

fn per_span(c: &mut Criterion) {
    let plain = request(|_| {});
    let with_email = request(|v| *v = v.replace("Plan a trip", "Mail jane@example.com a trip"));
    let big = request(|v| {
        *v = format!(
            "{{\"messages\": [{{\"role\": \"user\", \"content\": \"{}\"}}]}}",
            "x".repeat(64 << 10)
        )
    });
    let presets = "allow_all_keys: true\nblocked_value_presets: [email, api_key, bearer_token, credit_card]\n";
    // (name, config, request, whether the request changes)
    let cases: [(&str, &str, &[u8], bool); 6] = [
        ("noop_allow_all", "allow_all_keys: true\n", &plain, false),
        (
            "key_pattern_no_match",
            "allow_all_keys: true\nblocked_key_patterns: ['.*password.*']\n",
            &plain,
            false,
        ),
        ("presets_no_match", presets, &plain, false),
        ("presets_email_in_json_input", presets, &with_email, true),
        (
            "allow_list_deletes_6_of_10_keys",
            "allowed_keys: [mlflow.spanType, mlflow.spanInputs, mlflow.spanOutputs, gen_ai.operation.name]\n",
            &plain,
            true,
        ),
        (
            "truncate_64KiB_input_to_4KiB",
            "allow_all_keys: true\ntruncate: { max_bytes: 4KiB }\n",
            &big,
            true,
        ),
    ];
    let mut g = c.benchmark_group("redaction_500_agent_spans");
    g.throughput(Throughput::Elements(SPANS));
    for (name, yaml, bytes, changes) in cases {
        let r = redactor(yaml);
        let mut probe = Stats::default();
        let changed = r
            .redact_request(bytes, &mut probe)
            .expect("valid")
            .is_some();
        assert_eq!(changed, changes, "{name}: {probe:?}");
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut stats = Stats::default();
                r.redact_request(bytes, &mut stats)
                    .expect("valid")
                    .map(|v| v.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, per_span);
criterion_main!(benches);
