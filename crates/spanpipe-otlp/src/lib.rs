//! OTLP in and out: the `otlp` receiver (gRPC + HTTP, protobuf and JSON) and the `otlp` (gRPC), `otlp_http`,
//! `debug` and `file` exporters.
//!
//! Data stays encoded: the receiver validates and counts with a scan of the protobuf bytes and passes them on;
//! the gRPC and HTTP/protobuf exporters send the same bytes. Only JSON (in or out) and `debug` decode.

/// Body compression now lives in spanpipe-net (the client and server layer); the old path stays.
pub use spanpipe_net::compression;
pub mod exporter;
pub mod grpc_codec;
pub mod json;
pub mod receiver;

use spanpipe_core::Registry;

/// Registers every component of this crate.
pub fn register(registry: &mut Registry) {
    registry.receiver(receiver::OtlpReceiverFactory);
    registry.exporter(exporter::otlp_grpc::OtlpGrpcExporterFactory, &["otlp_grpc"]);
    registry.exporter(exporter::otlp_http::OtlpHttpExporterFactory, &["otlphttp"]);
    registry.exporter(exporter::debug::DebugExporterFactory, &[]);
    registry.exporter(exporter::file::FileExporterFactory, &[]);
    registry.exporter(exporter::logging::LoggingExporterFactory, &[]);
    registry.deprecated(
        "exporters",
        "logging",
        "the `debug` exporter (`verbosity: basic | normal | detailed`)",
    );
}
