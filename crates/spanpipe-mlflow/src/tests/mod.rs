//! Unit tests that need shared fixtures: OTLP requests, config nodes, and an in-process fake MLflow.

mod client_auth_tests;
mod config_tests;
pub mod data;
mod exporter_tests;
pub mod fake;
mod guard_tests;
mod remote_tests;
