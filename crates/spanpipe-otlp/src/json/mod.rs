//! OTLP/JSON (hex ids, camelCase keys, 64-bit ints as strings) to and from the protobuf encoding that flows
//! through pipelines. JSON is the slow path: it decodes fully; protobuf never comes here.

mod decode;
mod encode;

pub use decode::{JsonError, json_to_protobuf};
pub use encode::protobuf_to_json;
pub use encode::{JsonEncodeError, protobuf_to_json_pretty};
