//! The OTLP/HTTP receiver's body path as it runs in the server (`decode_http_body`: decompression capped at the
//! body limit, then protobuf validation or JSON conversion), with every signal, format and content encoding:
//! never a panic, and what is accepted is valid protobuf with the counted items.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use spanpipe_core::Signal;
use spanpipe_core::wire::count_items;
use spanpipe_otlp::compression::Compression;
use spanpipe_otlp::receiver::config::OnInvalidSpan;
use spanpipe_otlp::receiver::{Door, HttpFormat, decode_http_body};

/// Small, so decompression bombs hit the cap quickly.
const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let signal = match sel % 3 {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        _ => Signal::Logs,
    };
    let format = if sel & 4 == 0 {
        HttpFormat::Protobuf
    } else {
        HttpFormat::Json
    };
    let compression = match (sel >> 3) % 4 {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Zstd,
        _ => Compression::Deflate,
    };
    let door = Door {
        max_attribute_depth: 32,
        on_invalid_span: if sel & 0x20 == 0 { OnInvalidSpan::Reject } else { OnInvalidSpan::Drop },
    };
    if let Ok(admitted) = decode_http_body(
        signal,
        format,
        compression,
        Bytes::copy_from_slice(body),
        LIMIT,
        door,
    ) {
        assert_eq!(count_items(signal, &admitted.payload).ok(), Some(admitted.items));
        if signal == Signal::Traces {
            // What the door lets in, a full decode accepts (the guarantee every exporter relies on).
            use prost::Message;
            assert!(opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                &admitted.payload[..]
            )
            .is_ok());
        }
    }
});
