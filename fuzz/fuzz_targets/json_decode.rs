//! OTLP/JSON decoding (the HTTP receiver's `application/json` path) for every signal: never a panic; what
//! decodes is valid protobuf with the counted items, and survives the JSON encoder (file/debug exporters).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanpipe_core::Signal;
use spanpipe_core::wire::count_items;
use spanpipe_otlp::json::{json_to_protobuf, protobuf_to_json};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let signal = match sel % 3 {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        _ => Signal::Logs,
    };
    let Ok((encoded, items)) = json_to_protobuf(signal, body) else {
        return;
    };
    assert_eq!(
        count_items(signal, &encoded).ok(),
        Some(items),
        "decoded JSON does not scan"
    );
    let json = protobuf_to_json(signal, &encoded).expect("decoded JSON re-encodes");
    let (again, n) = json_to_protobuf(signal, &json).expect("encoded JSON decodes");
    assert_eq!(n, items);
    assert_eq!(count_items(signal, &again).ok(), Some(items));
});
