//! The `file` exporter's configuration: the OTel Collector's option names, spanpipe's defaults where they
//! differ (`append: true`, `flush_interval: 0s` — every batch reaches the file when it is exported).

use std::path::PathBuf;

use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;
use spanpipe_core::{QueueSettings, RetrySettings};

/// Record format.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// OTLP/JSON, one request per line (length-prefixed when compressed).
    #[default]
    Json,
    /// OTLP protobuf, each request prefixed with its length (4 bytes, big-endian), as the Collector writes it.
    Proto,
}

/// Per-record compression.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileCompression {
    Zstd,
}

/// `rotation` (lumberjack's settings, as the Collector uses them).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Rotation {
    /// Rotate before the file would grow past this many MiB.
    pub max_megabytes: u64,
    /// Delete backups older than this many days (by modification time); 0: keep.
    pub max_days: u64,
    /// Keep at most this many backups; 0: keep all.
    pub max_backups: u64,
    /// Accepted; backup names always carry the UTC time.
    pub localtime: bool,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_megabytes: 100,
            max_days: 0,
            max_backups: 100,
            localtime: false,
        }
    }
}

/// Configuration of the `file` exporter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// The file to write (created if missing; its directory must exist). Required.
    pub path: Option<PathBuf>,
    pub format: FileFormat,
    pub compression: Option<FileCompression>,
    /// Keep what the file holds (true) or truncate it at start (false, the Collector's default).
    pub append: bool,
    /// Buffer records and write them at most this often (and at shutdown); 0: write each batch when exported.
    pub flush_interval: ConfigDuration,
    pub rotation: Option<Rotation>,
    pub sending_queue: QueueSettings,
    pub retry_on_failure: RetrySettings,
    /// None by default: a local write is not worth cutting off half-way.
    pub timeout: ConfigDuration,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            path: None,
            format: FileFormat::Json,
            compression: None,
            append: true,
            flush_interval: ConfigDuration::default(),
            rotation: None,
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
            timeout: ConfigDuration::default(),
        }
    }
}
