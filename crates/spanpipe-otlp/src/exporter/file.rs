//! `file`: appends each batch as one line of OTLP/JSON (an `Export*ServiceRequest`), the format the OTel
//! Collector's file exporter and receiver use, so the file can be replayed or inspected with `jq`.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;
use spanpipe_core::{
    Batch, BuildContext, BuiltExporter, ComponentError, ConfigError, ExportError, Exporter,
    ExporterFactory, ExporterSettings, Node, QueueSettings, RetrySettings, Signal,
};

use crate::json::protobuf_to_json;

/// Line format; an enum so `proto` (length-prefixed) can be added without a config change.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    #[default]
    Json,
}

/// Configuration of the `file` exporter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// The file to append to (created if missing; its directory must exist). Required.
    pub path: Option<PathBuf>,
    pub format: FileFormat,
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
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
            timeout: ConfigDuration::default(),
        }
    }
}

/// Builds `file` exporters.
pub struct FileExporterFactory;

impl ExporterFactory for FileExporterFactory {
    fn type_name(&self) -> &'static str {
        "file"
    }

    fn signals(&self) -> &'static [Signal] {
        super::ALL_SIGNALS
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<BuiltExporter, ConfigError> {
        let cfg: FileConfig = ctx.config(node)?;
        let path = match cfg.path {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => return Err(ctx.invalid(node, &["path"], "is required")),
        };
        let settings = ExporterSettings::new(
            ctx,
            node,
            cfg.sending_queue,
            cfg.retry_on_failure,
            cfg.timeout.0,
        )?;
        Ok(BuiltExporter {
            exporter: Arc::new(FileExporter {
                id: ctx.id.to_string(),
                path,
                file: Mutex::new(None),
            }),
            settings,
        })
    }
}

/// Appends batches to one file. The mutex makes each line one uninterrupted append, whatever the number of
/// queue workers.
pub struct FileExporter {
    id: String,
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl FileExporter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<File>> {
        // A panic while holding the lock leaves at worst a rolled-back or complete line: keep going.
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Exporter for FileExporter {
    async fn start(&self) -> Result<(), ComponentError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| {
                ComponentError::new(
                    &self.id,
                    format!("cannot open {}: {e}", self.path.display()),
                )
            })?;
        *self.lock() = Some(file);
        Ok(())
    }

    /// A failed write is retryable: disk full, quotas and network filesystems often recover, and the partial
    /// line is cut off again so a retry neither duplicates nor corrupts. The retry settings bound the attempts.
    /// The write is synchronous on purpose: a timeout cannot cancel it half-way and then retry into a duplicate.
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let mut line =
            protobuf_to_json(batch.signal, &batch.payload).map_err(|e| e.into_export_error())?;
        line.push(b'\n');
        let mut guard = self.lock();
        let Some(file) = guard.as_mut() else {
            return Err(ExportError::permanent("exporter not started"));
        };
        let start = file.seek(SeekFrom::End(0)).ok();
        if let Err(e) = file.write_all(&line).and_then(|()| file.flush()) {
            if let Some(len) = start {
                let _ = file.set_len(len);
            }
            return Err(ExportError::retryable(format!(
                "write {}: {e}",
                self.path.display()
            )));
        }
        Ok(())
    }

    async fn shutdown(&self) {
        if let Some(f) = self.lock().take() {
            let _ = f.sync_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::test_util::{build_err, ctx, node, trace_batch};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spanpipe-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn build(yaml: &str) -> Result<BuiltExporter, ConfigError> {
        FileExporterFactory.build(&ctx("file"), &node(yaml))
    }

    fn span_ids(line: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let spans = v["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
            .clone();
        spans
            .iter()
            .map(|s| s["spanId"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn config_requires_path_and_rejects_unknown_fields() {
        assert!(build_err(build("format: json")).starts_with("exporters.file.path: is required"));
        assert!(build_err(build("path: /tmp/x\nformat: proto")).contains("format"));
        assert!(build_err(build("path: /tmp/x\nrotation: {}")).contains("rotation"));
        assert_eq!(
            build("path: /tmp/x").unwrap().settings.timeout,
            std::time::Duration::ZERO
        );
    }

    #[tokio::test]
    async fn build_does_not_touch_the_disk_and_start_needs_the_directory() {
        let dir = temp_dir("start");
        let path = dir.join("missing/out.json");
        let built = build(&format!("path: {}", path.display())).unwrap();
        assert!(!path.exists());
        assert!(built.exporter.start().await.is_err());
    }

    #[tokio::test]
    async fn two_batches_make_two_lines() {
        let dir = temp_dir("two");
        let path = dir.join("out.json");
        let e = build(&format!("path: {}", path.display()))
            .unwrap()
            .exporter;
        e.start().await.unwrap();
        e.export(&trace_batch(2)).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            1,
            "flushed per batch"
        );
        e.export(&trace_batch(3)).await.unwrap();
        e.shutdown().await;
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(span_ids(lines[0]), ["00000000000000aa", "00000000000000ab"]);
        assert_eq!(span_ids(lines[1]).len(), 3);
        assert!(matches!(
            e.export(&trace_batch(1)).await,
            Err(ExportError::Permanent { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_exports_never_interleave() {
        let dir = temp_dir("concurrent");
        let path = dir.join("out.json");
        let e = build(&format!("path: {}", path.display()))
            .unwrap()
            .exporter;
        e.start().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..16u64 {
            let e = e.clone();
            tasks.push(tokio::spawn(async move {
                let batch = trace_batch(50 + i);
                for _ in 0..5 {
                    e.export(&batch).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = 0;
        for line in text.lines() {
            let n = span_ids(line).len();
            assert!((50..66).contains(&n), "{n}");
            lines += 1;
        }
        assert_eq!(lines, 80);
    }
}
