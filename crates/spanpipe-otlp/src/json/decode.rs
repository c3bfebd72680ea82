//! OTLP/JSON request bodies to the protobuf encoding pipelines carry.
//!
//! The opentelemetry-proto serde impl does the heavy lifting (hex ids, camelCase names, 64-bit ints as strings
//! or numbers) but reads only camelCase keys, takes enums only as integers, rejects `null` for scalars and does
//! not check id lengths. So the parsed document is normalized first (snake_case keys renamed, `null` members
//! dropped, enum names and quoted 32-bit ints turned into numbers), and ids are checked after typing. Every object
//! key in OTLP/JSON is a field name (attributes are `{"key": ..., "value": ...}` lists), so the renaming never
//! touches user data.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, Exemplar, metric};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use prost::Message;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use spanpipe_core::Signal;
use spanpipe_core::wire::count_items;

/// Why a body is not a valid OTLP/JSON request; the message is meant for the client (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid OTLP/JSON: {0}")]
pub struct JsonError(pub String);

/// Converts an OTLP/JSON `Export*ServiceRequest` of `signal` into its protobuf encoding and item count.
///
/// Accepts camelCase and snake_case keys, 64-bit ints as strings or numbers, enums as integers or names, and
/// `null` for any field (meaning default). Rejects malformed hex and ids of the wrong length.
pub fn json_to_protobuf(signal: Signal, body: &[u8]) -> Result<(Vec<u8>, usize), JsonError> {
    let mut doc = parse(body)?;
    if !doc.is_object() {
        return Err(JsonError("the request must be a JSON object".into()));
    }
    normalize(&mut doc);
    let encoded = match signal {
        Signal::Traces => {
            let req: ExportTraceServiceRequest = typed(doc)?;
            check_trace_ids(&req)?;
            req.encode_to_vec()
        }
        Signal::Metrics => {
            let req: ExportMetricsServiceRequest = typed(doc)?;
            check_metric_ids(&req)?;
            req.encode_to_vec()
        }
        Signal::Logs => {
            let req: ExportLogsServiceRequest = typed(doc)?;
            check_log_ids(&req)?;
            req.encode_to_vec()
        }
    };
    let items = count_items(signal, &encoded).map_err(|e| JsonError(e.to_string()))?;
    Ok((encoded, items))
}

/// Deepest JSON nesting a request may have: what the door lets in at its deepest `max_attribute_depth` with the
/// costliest shape (a key-value list is four JSON levels: value object, list object, `values` array, entry
/// object), in a span event's attributes (eleven levels into the request), plus slack. serde_json's own limit
/// (128) is below that, so a value the protobuf door accepts would be refused as JSON — and a spanpipe behind an
/// `otlp_http` exporter with `encoding: json` would refuse a whole batch for it.
const MAX_JSON_DEPTH: usize = 4 * spanpipe_core::wire::MAX_DEPTH + 16;

/// Parses with serde_json's recursion limit replaced by [`MAX_JSON_DEPTH`], checked first by an iterative scan
/// (so the recursive parser, `normalize` and the typed conversion never go deeper than that).
fn parse(body: &[u8]) -> Result<Value, JsonError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(JsonError(format!(
                        "nested deeper than {MAX_JSON_DEPTH} levels"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    de.disable_recursion_limit();
    let doc = serde::Deserialize::deserialize(&mut de).map_err(|e| JsonError(e.to_string()))?;
    de.end().map_err(|e| JsonError(e.to_string()))?;
    Ok(doc)
}

fn typed<T: DeserializeOwned>(doc: Value) -> Result<T, JsonError> {
    serde_json::from_value(doc).map_err(|e| JsonError(e.to_string()))
}

/// Rewrites the parsed document in place so the serde impl accepts it (see the module docs).
/// Recursion depth is bounded by [`MAX_JSON_DEPTH`], checked before parsing.
fn normalize(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(normalize),
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            if map.keys().any(|k| k.contains('_')) {
                rename_keys(map);
            }
            for (key, value) in map.iter_mut() {
                if let Value::String(s) = value {
                    if let Some(n) = number_for(key, s) {
                        *value = Value::from(n);
                    }
                } else {
                    normalize(value);
                }
            }
        }
        _ => {}
    }
}

/// Moves every entry under its camelCase name; only called for the (rare) objects that have snake_case keys,
/// so camelCase documents are never rebuilt.
fn rename_keys(map: &mut Map<String, Value>) {
    let old = std::mem::take(map);
    for (key, value) in old {
        let key = if key.contains('_') {
            camel_case(&key)
        } else {
            key
        };
        map.insert(key, value);
    }
}

/// `resource_spans` → `resourceSpans`.
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The number a string stands for in an enum or 32-bit integer field (which the serde impl takes only as JSON
/// numbers): enum names (`SPAN_KIND_SERVER`) and quoted integers (`"3"`), as protobuf's JSON mapping allows.
fn number_for(key: &str, s: &str) -> Option<i64> {
    let by_name = match key {
        "kind" => SpanKind::from_str_name(s).map(|e| e as i32),
        "code" => StatusCode::from_str_name(s).map(|e| e as i32),
        "severityNumber" => SeverityNumber::from_str_name(s).map(|e| e as i32),
        "aggregationTemporality" => AggregationTemporality::from_str_name(s).map(|e| e as i32),
        "droppedAttributesCount"
        | "droppedEventsCount"
        | "droppedLinksCount"
        | "flags"
        | "scale"
        | "offset" => None,
        _ => return None,
    };
    by_name
        .map(i64::from)
        .or_else(|| s.trim().parse::<i64>().ok())
}

/// Checks an id's length; `what` names it in the error and is only built on failure (this runs per span).
fn check_len(
    id: &[u8],
    len: usize,
    may_be_empty: bool,
    what: impl FnOnce() -> String,
) -> Result<(), JsonError> {
    if id.len() == len || (may_be_empty && id.is_empty()) {
        return Ok(());
    }
    let expected = if may_be_empty {
        format!("{len} or none")
    } else {
        len.to_string()
    };
    Err(JsonError(format!(
        "{} is {} bytes, expected {expected}",
        what(),
        id.len()
    )))
}

fn check_trace_ids(req: &ExportTraceServiceRequest) -> Result<(), JsonError> {
    let spans = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans);
    for (i, span) in spans.enumerate() {
        check_len(&span.trace_id, 16, false, || format!("span {i}: traceId"))?;
        check_len(&span.span_id, 8, false, || format!("span {i}: spanId"))?;
        check_len(&span.parent_span_id, 8, true, || {
            format!("span {i}: parentSpanId")
        })?;
        for link in &span.links {
            check_len(&link.trace_id, 16, false, || {
                format!("span {i}: link traceId")
            })?;
            check_len(&link.span_id, 8, false, || format!("span {i}: link spanId"))?;
        }
    }
    Ok(())
}

fn check_log_ids(req: &ExportLogsServiceRequest) -> Result<(), JsonError> {
    let records = req
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records);
    for (i, record) in records.enumerate() {
        check_len(&record.trace_id, 16, true, || {
            format!("log record {i}: traceId")
        })?;
        check_len(&record.span_id, 8, true, || {
            format!("log record {i}: spanId")
        })?;
    }
    Ok(())
}

fn check_exemplars(metric: &str, exemplars: &[Exemplar]) -> Result<(), JsonError> {
    for e in exemplars {
        check_len(&e.trace_id, 16, true, || {
            format!("metric {metric:?}: exemplar traceId")
        })?;
        check_len(&e.span_id, 8, true, || {
            format!("metric {metric:?}: exemplar spanId")
        })?;
    }
    Ok(())
}

fn check_metric_ids(req: &ExportMetricsServiceRequest) -> Result<(), JsonError> {
    let metrics = req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics);
    for m in metrics {
        let name = m.name.as_str();
        match &m.data {
            Some(metric::Data::Gauge(g)) => g
                .data_points
                .iter()
                .try_for_each(|p| check_exemplars(name, &p.exemplars))?,
            Some(metric::Data::Sum(s)) => s
                .data_points
                .iter()
                .try_for_each(|p| check_exemplars(name, &p.exemplars))?,
            Some(metric::Data::Histogram(h)) => h
                .data_points
                .iter()
                .try_for_each(|p| check_exemplars(name, &p.exemplars))?,
            Some(metric::Data::ExponentialHistogram(h)) => h
                .data_points
                .iter()
                .try_for_each(|p| check_exemplars(name, &p.exemplars))?,
            Some(metric::Data::Summary(_)) | None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::metrics::v1::number_data_point;
    use serde_json::json;

    /// opentelemetry-proto's examples/trace.json (OTLP/JSON as the spec writes it: uppercase hex is allowed).
    const TRACE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name",
        "value":{"stringValue":"my.service"}}]},"scopeSpans":[{"scope":{"name":"my.library","version":"1.0.0",
        "attributes":[{"key":"my.scope.attribute","value":{"stringValue":"some scope attribute"}}]},
        "spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
        "parentSpanId":"EEE19B7EC3C1B173","name":"I'm a server span","startTimeUnixNano":"1544712660000000000",
        "endTimeUnixNano":"1544712661000000000","kind":2,"attributes":[{"key":"my.span.attr",
        "value":{"stringValue":"some value"}}]}]}]}]}"#;

    /// The same request with the proto field names, as the Go collector also accepts.
    const TRACE_SNAKE: &str = r#"{"resource_spans":[{"resource":{"attributes":[{"key":"service.name",
        "value":{"string_value":"my.service"}}]},"scope_spans":[{"scope":{"name":"my.library","version":"1.0.0",
        "attributes":[{"key":"my.scope.attribute","value":{"string_value":"some scope attribute"}}]},
        "spans":[{"trace_id":"5B8EFFF798038103D269B633813FC60C","span_id":"EEE19B7EC3C1B174",
        "parent_span_id":"EEE19B7EC3C1B173","name":"I'm a server span","start_time_unix_nano":"1544712660000000000",
        "end_time_unix_nano":"1544712661000000000","kind":2,"attributes":[{"key":"my.span.attr",
        "value":{"string_value":"some value"}}]}]}]}]}"#;

    /// A key-value list `depth` deep (a scalar is 1) in a span event's attributes, as OTLP/JSON text.
    fn deep_event_attr(depth: usize) -> String {
        let open = r#"{"kvlistValue":{"values":[{"key":"k","value":"#;
        let value = format!(
            "{}{}{}",
            open.repeat(depth - 1),
            r#"{"stringValue":"x"}"#,
            "}]}}".repeat(depth - 1)
        );
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"deep","events":[{{"name":"e","attributes":[{{"key":"d","value":{value}}}]}}]}}]}}]}}]}}"#
        )
    }

    /// What the protobuf door accepts at its deepest, OTLP/JSON carries too; far deeper is refused before parsing.
    #[test]
    fn json_as_deep_as_the_door_allows_is_read_and_deeper_is_refused() {
        let max = spanpipe_core::wire::MAX_DEPTH;
        let (bytes, n) = json_to_protobuf(Signal::Traces, deep_event_attr(max).as_bytes())
            .expect("the door's deepest value over JSON");
        assert_eq!(n, 1);
        let report = spanpipe_core::wire::check_traces(&bytes, max).unwrap();
        assert_eq!(report.invalid_spans, 0, "{:?}", report.first_error);
        // One level more parses (the door refuses it, with a message); 12,000 levels never reach the parser.
        assert!(json_to_protobuf(Signal::Traces, deep_event_attr(max + 1).as_bytes()).is_ok());
        let e = json_to_protobuf(Signal::Traces, deep_event_attr(12_000).as_bytes()).unwrap_err();
        assert!(e.0.contains("nested deeper than"), "{e}");
        // Brackets inside strings (escaped quotes too) do not count.
        let s = format!(
            r#"{{"resourceSpans":[],"x":"{}\"{}"}}"#,
            "[".repeat(500),
            "{".repeat(500)
        );
        assert!(json_to_protobuf(Signal::Traces, s.as_bytes()).is_ok());
    }

    fn traces(doc: &str) -> Result<(ExportTraceServiceRequest, usize), JsonError> {
        let (bytes, n) = json_to_protobuf(Signal::Traces, doc.as_bytes())?;
        Ok((ExportTraceServiceRequest::decode(&bytes[..]).unwrap(), n))
    }

    fn span_doc(span: serde_json::Value) -> String {
        json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).to_string()
    }

    fn first_span(req: &ExportTraceServiceRequest) -> &opentelemetry_proto::tonic::trace::v1::Span {
        &req.resource_spans[0].scope_spans[0].spans[0]
    }

    #[test]
    fn spec_trace_example_decodes() {
        let (req, n) = traces(TRACE).unwrap();
        assert_eq!(n, 1);
        let s = first_span(&req);
        assert_eq!(s.trace_id, const_hex("5b8efff798038103d269b633813fc60c"));
        assert_eq!(s.span_id, const_hex("eee19b7ec3c1b174"));
        assert_eq!(s.parent_span_id, const_hex("eee19b7ec3c1b173"));
        assert_eq!(s.kind, 2);
        assert_eq!(s.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(s.attributes[0].key, "my.span.attr");
        let res = req.resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(
            res.attributes[0].value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("my.service".into()))
        );
    }

    fn const_hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn snake_case_keys_give_the_same_bytes() {
        let camel = json_to_protobuf(Signal::Traces, TRACE.as_bytes()).unwrap();
        let snake = json_to_protobuf(Signal::Traces, TRACE_SNAKE.as_bytes()).unwrap();
        assert_eq!(camel, snake);
        assert_eq!(camel_case("resource_spans"), "resourceSpans");
        assert_eq!(camel_case("traceId"), "traceId");
    }

    #[test]
    fn ints_as_strings_or_numbers_and_enums_as_names() {
        let doc = span_doc(json!({
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "startTimeUnixNano": 1544712660000000000u64, "endTimeUnixNano": "1544712661000000000",
            "kind": "SPAN_KIND_CLIENT", "droppedAttributesCount": "3", "flags": 257,
            "status": {"code": "STATUS_CODE_ERROR", "message": null},
            "attributes": [
                {"key": "a", "value": {"intValue": "5"}},
                {"key": "b", "value": {"intValue": -7}},
                {"key": "c", "value": {"doubleValue": 1.5}},
                {"key": "d", "value": null}
            ]
        }));
        let (req, _) = traces(&doc).unwrap();
        let s = first_span(&req);
        assert_eq!(s.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(s.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!((s.kind, s.dropped_attributes_count, s.flags), (3, 3, 257));
        assert_eq!(s.status.as_ref().unwrap().code, 2);
        let ints: Vec<_> = s
            .attributes
            .iter()
            .map(|a| a.value.as_ref().and_then(|v| v.value.clone()))
            .collect();
        assert_eq!(ints[0], Some(any_value::Value::IntValue(5)));
        assert_eq!(ints[1], Some(any_value::Value::IntValue(-7)));
        assert_eq!(ints[2], Some(any_value::Value::DoubleValue(1.5)));
        assert_eq!(ints[3], None);
    }

    #[test]
    fn bad_hex_and_wrong_id_lengths_are_rejected() {
        let ok_trace = "5b8efff798038103d269b633813fc60c";
        let cases = [
            (
                json!({"traceId": "zz8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}),
                "invalid character",
            ),
            (json!({"traceId": "5b8", "spanId": "eee19b7ec3c1b174"}), ""),
            (
                json!({"traceId": "5b8efff798038103d269b633813fc6", "spanId": "eee19b7ec3c1b174"}),
                "traceId is 15",
            ),
            (
                json!({"traceId": ok_trace, "spanId": "eee19b7ec3c1b1"}),
                "spanId is 7",
            ),
            (json!({"traceId": ok_trace}), "spanId is 0"),
            (
                json!({"traceId": ok_trace, "spanId": "eee19b7ec3c1b174", "parentSpanId": "eeee"}),
                "parentSpanId is 2",
            ),
            (
                json!({"traceId": ok_trace, "spanId": "eee19b7ec3c1b174",
                       "links": [{"traceId": ok_trace, "spanId": "ee"}]}),
                "link spanId is 1",
            ),
            (
                json!({"traceId": ok_trace, "spanId": "eee19b7ec3c1b174", "kind": "SPAN_KIND_NOPE"}),
                "",
            ),
        ];
        for (span, want) in cases {
            let err = traces(&span_doc(span.clone())).unwrap_err();
            assert!(err.0.contains(want), "{span}: {err}");
        }
        let ok = json!({"traceId": ok_trace, "spanId": "eee19b7ec3c1b174", "parentSpanId": ""});
        assert_eq!(traces(&span_doc(ok)).unwrap().1, 1);
    }

    #[test]
    fn malformed_documents_are_rejected() {
        for doc in [
            "",
            "{",
            "[]",
            "5",
            "null",
            r#"{"resourceSpans": 5}"#,
            r#"{"resourceSpans": [{"scopeSpans": {}}]}"#,
        ] {
            assert!(
                json_to_protobuf(Signal::Traces, doc.as_bytes()).is_err(),
                "{doc}"
            );
        }
        let (bytes, n) = json_to_protobuf(Signal::Traces, b"{}").unwrap();
        assert!(bytes.is_empty());
        assert_eq!(n, 0);
    }

    #[test]
    fn spec_metrics_example_counts_points() {
        let doc = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "my.counter", "sum": {"aggregationTemporality": 1, "isMonotonic": true, "dataPoints": [
                {"asDouble": 5, "startTimeUnixNano": "1544712660300000000", "timeUnixNano": "1544712660300000000"}]}},
            {"name": "my.gauge", "gauge": {"dataPoints": [{"asInt": "10", "timeUnixNano": "1544712660300000000"},
                {"as_int": 11, "time_unix_nano": 1544712660300000000u64}]}},
            {"name": "my.histogram", "histogram": {"aggregation_temporality": "AGGREGATION_TEMPORALITY_DELTA",
                "dataPoints": [{"count": "2", "sum": 2, "bucketCounts": ["1", 1], "explicitBounds": [1]}]}},
            {"name": "my.exponential.histogram", "exponentialHistogram": {"aggregationTemporality": 1,
                "dataPoints": [{"count": "3", "scale": 0, "zeroCount": "1",
                    "positive": {"offset": 1, "bucketCounts": ["0", "2"]},
                    "exemplars": [{"asDouble": 1, "spanId": "eee19b7ec3c1b174"}]}]}}
        ]}]}]});
        let (bytes, n) = json_to_protobuf(Signal::Metrics, doc.to_string().as_bytes()).unwrap();
        assert_eq!(n, 5);
        let req = ExportMetricsServiceRequest::decode(&bytes[..]).unwrap();
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let Some(metric::Data::Gauge(g)) = &metrics[1].data else {
            panic!("gauge")
        };
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsInt(10))
        );
        assert_eq!(
            g.data_points[1].value,
            Some(number_data_point::Value::AsInt(11))
        );
        let Some(metric::Data::Histogram(h)) = &metrics[2].data else {
            panic!("histogram")
        };
        assert_eq!(
            (
                h.aggregation_temporality,
                h.data_points[0].bucket_counts.clone()
            ),
            (1, vec![1, 1])
        );

        let bad = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "g", "gauge": {"dataPoints": [
            {"asInt": 1, "exemplars": [{"asInt": 1, "traceId": "abcd"}]}]}}]}]}]});
        let err = json_to_protobuf(Signal::Metrics, bad.to_string().as_bytes()).unwrap_err();
        assert!(err.0.contains("exemplar traceId is 2 bytes"), "{err}");
    }

    #[test]
    fn spec_logs_example_and_log_ids() {
        let record = |trace: &str| {
            json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
                "timeUnixNano": "1544712660300000000", "observedTimeUnixNano": "1544712660300000000",
                "severityNumber": 10, "severityText": "Information", "traceId": trace, "spanId": "EEE19B7EC3C1B174",
                "body": {"stringValue": "Example log record"},
                "attributes": [{"key": "int.attribute", "value": {"intValue": "10"}},
                    {"key": "map.attribute", "value": {"kvlistValue": {"values": [
                        {"key": "some.map.key", "value": {"stringValue": "some value"}}]}}}]
            }, {"severity_number": "SEVERITY_NUMBER_WARN", "body": {"string_value": "no ids"}}]}]}]})
            .to_string()
        };
        let (bytes, n) = json_to_protobuf(
            Signal::Logs,
            record("5B8EFFF798038103D269B633813FC60C").as_bytes(),
        )
        .unwrap();
        assert_eq!(n, 2);
        let req = ExportLogsServiceRequest::decode(&bytes[..]).unwrap();
        let logs = &req.resource_logs[0].scope_logs[0].log_records;
        assert_eq!((logs[0].severity_number, logs[1].severity_number), (10, 13));
        assert_eq!(logs[0].trace_id.len(), 16);
        let err = json_to_protobuf(Signal::Logs, record("5B8EFF").as_bytes()).unwrap_err();
        assert!(err.0.contains("traceId is 3 bytes"), "{err}");
    }
}
