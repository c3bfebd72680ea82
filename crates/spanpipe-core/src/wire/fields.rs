//! Field numbers of the OTLP trace messages (opentelemetry-proto v1), so no component writes a bare `9` for
//! "span attributes" again.

/// `ExportTraceServiceRequest`.
pub mod request {
    pub const RESOURCE_SPANS: u32 = 1;
}

/// `ResourceSpans`.
pub mod resource_spans {
    pub const RESOURCE: u32 = 1;
    pub const SCOPE_SPANS: u32 = 2;
    pub const SCHEMA_URL: u32 = 3;
}

/// `Resource`.
pub mod resource {
    pub const ATTRIBUTES: u32 = 1;
}

/// `ScopeSpans`.
pub mod scope_spans {
    pub const SCOPE: u32 = 1;
    pub const SPANS: u32 = 2;
    pub const SCHEMA_URL: u32 = 3;
}

/// `InstrumentationScope`.
pub mod scope {
    pub const NAME: u32 = 1;
    pub const VERSION: u32 = 2;
    pub const ATTRIBUTES: u32 = 3;
}

/// `Span`.
pub mod span {
    pub const TRACE_ID: u32 = 1;
    pub const SPAN_ID: u32 = 2;
    pub const TRACE_STATE: u32 = 3;
    pub const PARENT_SPAN_ID: u32 = 4;
    pub const NAME: u32 = 5;
    pub const KIND: u32 = 6;
    pub const START_TIME_UNIX_NANO: u32 = 7;
    pub const END_TIME_UNIX_NANO: u32 = 8;
    pub const ATTRIBUTES: u32 = 9;
    pub const EVENTS: u32 = 11;
    pub const LINKS: u32 = 13;
    pub const STATUS: u32 = 15;
}

/// `Span.Event`.
pub mod event {
    pub const NAME: u32 = 2;
    pub const ATTRIBUTES: u32 = 3;
}

/// `Span.Link`.
pub mod link {
    pub const TRACE_STATE: u32 = 3;
    pub const ATTRIBUTES: u32 = 4;
}

/// `Status`.
pub mod status {
    pub const MESSAGE: u32 = 2;
    pub const CODE: u32 = 3;
}

/// `KeyValue`.
pub mod key_value {
    pub const KEY: u32 = 1;
    pub const VALUE: u32 = 2;
    /// `key_strindex` (int32, a dictionary index used by profiles).
    pub const KEY_INDEX: u32 = 3;
}

/// `AnyValue`'s oneof.
pub mod any_value {
    pub const STRING: u32 = 1;
    pub const BOOL: u32 = 2;
    pub const INT: u32 = 3;
    pub const DOUBLE: u32 = 4;
    pub const ARRAY: u32 = 5;
    pub const KVLIST: u32 = 6;
    pub const BYTES: u32 = 7;
    /// `string_value_strindex` (int32, a dictionary index used by profiles).
    pub const STRING_INDEX: u32 = 8;
}

/// `ArrayValue` and `KeyValueList` both hold their entries in field 1.
pub const LIST_VALUES: u32 = 1;
