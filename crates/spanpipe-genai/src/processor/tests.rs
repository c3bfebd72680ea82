use super::*;
use crate::test_util::{PRICES, V, request, span};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use spanpipe_core::wire::rewrite_spans;

fn attrs(payload: &[u8]) -> Vec<Vec<(String, Option<Value>)>> {
    let r = ExportTraceServiceRequest::decode(payload).unwrap();
    r.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| {
            s.attributes
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone().and_then(|v| v.value)))
                .collect()
        })
        .collect()
}

#[test]
fn writes_cost_attributes_and_keeps_existing_costs() {
    let t = PriceTable::parse("p", PRICES).unwrap();
    let req = request(
        &[],
        vec![
            span(
                1,
                1,
                0,
                1.0,
                0,
                &[
                    ("llm.model_name", V::S("gpt-test")),
                    ("llm.token_count.prompt", V::I(1_000_000)),
                    ("llm.token_count.completion", V::I(1_000_000)),
                ],
            ),
            span(
                1,
                2,
                0,
                1.0,
                0,
                &[
                    ("gen_ai.request.model", V::S("gpt-test")),
                    ("gen_ai.usage.input_tokens", V::I(5)),
                    ("gen_ai.usage.cost.amount", V::D(1.5)),
                ],
            ),
            span(
                1,
                3,
                0,
                1.0,
                0,
                &[
                    ("gen_ai.request.model", V::S("unknown-model")),
                    ("gen_ai.usage.input_tokens", V::I(5)),
                ],
            ),
            span(
                1,
                4,
                0,
                1.0,
                0,
                &[("gen_ai.request.model", V::S("gpt-test"))],
            ),
        ],
    );
    let mut e = CostEditor {
        table: &t,
        mlflow_cost: true,
        unpriced: Vec::new(),
        priced: 0,
    };
    let out = rewrite_spans(&req, &mut e).unwrap().payload.unwrap();
    let a = attrs(&out);
    let get = |i: usize, k: &str| {
        a[i].iter()
            .find(|(key, _)| key == k)
            .and_then(|(_, v)| v.clone())
    };
    assert_eq!(
        get(0, "gen_ai.usage.cost.amount"),
        Some(Value::DoubleValue(10.0))
    );
    assert_eq!(
        get(0, "gen_ai.usage.cost.currency"),
        Some(Value::StringValue("USD".into()))
    );
    let Some(Value::StringValue(j)) = get(0, "mlflow.llm.cost") else {
        panic!("no mlflow.llm.cost")
    };
    let j: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(
        (
            j["input_cost"].as_f64(),
            j["output_cost"].as_f64(),
            j["total_cost"].as_f64()
        ),
        (Some(2.0), Some(8.0), Some(10.0))
    );
    assert_eq!(
        get(1, "gen_ai.usage.cost.amount"),
        Some(Value::DoubleValue(1.5)),
        "kept"
    );
    assert_eq!(
        a[1].iter()
            .filter(|(k, _)| k == "gen_ai.usage.cost.amount")
            .count(),
        1
    );
    assert!(
        get(1, "mlflow.llm.cost").is_some(),
        "MLflow's form added from the table"
    );
    assert!(get(2, "mlflow.llm.cost").is_none() && get(3, "mlflow.llm.cost").is_none());
    assert_eq!(
        (e.priced, e.unpriced.clone()),
        (2, vec!["unknown-model".to_string()])
    );
    // The rewritten request passes the receiver's door again.
    spanpipe_core::wire::check_traces(&out, spanpipe_core::wire::MAX_DEPTH).unwrap();
}
