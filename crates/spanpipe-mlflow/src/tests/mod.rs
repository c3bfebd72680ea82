//! Unit tests that need shared fixtures: OTLP requests, config nodes, and an in-process fake MLflow.

mod config_tests;
pub mod data;
mod exporter_tests;
pub mod fake;
mod remote_tests;
