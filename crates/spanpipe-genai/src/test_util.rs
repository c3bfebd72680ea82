//! Builders for unit tests.
