//! `file_storage`: the OTel Collector's extension of that name — durable storage in a local `directory` — backing
//! persistent sending queues. Each exporter gets its own sub-directory (its id, percent-escaped), holding a
//! [`SegmentLog`].

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use spanpipe_config::ByteSize;
use spanpipe_core::{
    BuildContext, ComponentError, ConfigError, Extension, ExtensionFactory, Node, Storage,
    StorageClient, StorageError,
};

use crate::log::{LogOptions, SegmentLog};

/// Configuration of `file_storage`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FileStorageConfig {
    /// Where queues are kept. Required: queued data should live somewhere chosen, not in a default path.
    pub directory: Option<PathBuf>,
    /// Create `directory` (mode 0750) at start if missing; otherwise a missing directory is an error.
    pub create_directory: bool,
    /// Sync every write before acknowledging it: survives power loss, at the cost of a disk flush per request.
    /// Without it a write survives a crash or kill of spanpipe (the kernel's page cache keeps it).
    pub fsync: bool,
    /// Cap on the bytes one exporter's queue holds on disk; then its `sending_queue.on_full` policy applies.
    pub max_size: ByteSize,
    /// Size at which a segment file is closed and a new one started; fully delivered segments are deleted.
    pub segment_size: ByteSize,
}

impl Default for FileStorageConfig {
    fn default() -> Self {
        FileStorageConfig {
            directory: None,
            create_directory: false,
            fsync: false,
            max_size: ByteSize(1 << 30),
            segment_size: ByteSize(8 << 20),
        }
    }
}

/// Builds `file_storage` extensions.
pub struct FileStorageFactory;

impl ExtensionFactory for FileStorageFactory {
    fn type_name(&self) -> &'static str {
        "file_storage"
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<Arc<dyn Extension>, ConfigError> {
        let cfg: FileStorageConfig = ctx.config(node)?;
        let directory = match &cfg.directory {
            Some(d) if !d.as_os_str().is_empty() => d.clone(),
            _ => return Err(ctx.invalid(node, &["directory"], "is required")),
        };
        if cfg.max_size.0 == 0 {
            return Err(ctx.invalid(node, &["max_size"], "must be greater than 0"));
        }
        if cfg.segment_size.0 < 4096 {
            return Err(ctx.invalid(node, &["segment_size"], "must be at least 4KiB"));
        }
        Ok(Arc::new(FileStorageExtension {
            create_directory: cfg.create_directory,
            storage: Arc::new(FileStorage {
                directory,
                opts: LogOptions {
                    fsync: cfg.fsync,
                    segment_size: cfg.segment_size.0,
                    max_bytes: Some(cfg.max_size.0),
                },
            }),
        }))
    }
}

/// The extension: checks the directory at start and offers [`FileStorage`].
pub struct FileStorageExtension {
    create_directory: bool,
    storage: Arc<FileStorage>,
}

#[async_trait]
impl Extension for FileStorageExtension {
    async fn start(&self) -> Result<(), ComponentError> {
        let dir = &self.storage.directory;
        let id = "file_storage";
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(ComponentError::new(
                id,
                format!("{} is not a directory", dir.display()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.create_directory => {
                create_dir(dir).map_err(|e| {
                    ComponentError::new(id, format!("cannot create {}: {e}", dir.display()))
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ComponentError::new(
                id,
                format!(
                    "directory {} does not exist (create it or set create_directory: true)",
                    dir.display()
                ),
            )),
            Err(e) => Err(ComponentError::new(
                id,
                format!("cannot use {}: {e}", dir.display()),
            )),
        }
    }

    fn storage(&self) -> Option<Arc<dyn Storage>> {
        Some(self.storage.clone())
    }
}

fn create_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
}

/// Hands out one [`SegmentLog`] per owner, in `directory/<escaped owner>`.
pub struct FileStorage {
    directory: PathBuf,
    opts: LogOptions,
}

/// A file name for `owner`: ASCII letters, digits, `-`, `.` and `_` kept, anything else `%XX` (so `/` cannot
/// escape the directory and distinct owners never share a name).
pub fn escape(owner: &str) -> String {
    let mut out = String::with_capacity(owner.len());
    for b in owner.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl FileStorage {
    /// Storage in `directory` (which must exist by the time a client opens).
    pub fn new(directory: PathBuf, opts: LogOptions) -> Self {
        FileStorage { directory, opts }
    }
}

impl Storage for FileStorage {
    fn open(&self, owner: &str) -> Result<Box<dyn StorageClient>, StorageError> {
        let log = SegmentLog::open(&self.directory.join(escape(owner)), self.opts)?;
        Ok(Box::new(log))
    }
}
