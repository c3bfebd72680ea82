//! `file`: writes each batch as one record — a line of OTLP/JSON (an `Export*ServiceRequest`), the format the OTel
//! Collector's file exporter and receiver use, or length-prefixed protobuf / zstd-compressed records — with the
//! Collector's `flush_interval`, `rotation`, `append` and `compression`.

mod config;
mod rotate;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use spanpipe_core::{
    Batch, BuildContext, BuiltExporter, ComponentError, ConfigError, ExportError, Exporter,
    ExporterFactory, ExporterSettings, Node, Signal,
};
use tokio_util::sync::CancellationToken;

pub use config::{FileCompression, FileConfig, FileFormat, Rotation};

use crate::json::protobuf_to_json;

/// With `flush_interval`, buffered records are written early once they reach this size.
const FLUSH_AT: usize = 4 << 20;
/// With `flush_interval`, exports are refused (and retried) while this much waits for a failing disk.
const BUFFER_CAP: usize = 64 << 20;

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
        let path = match &cfg.path {
            Some(p) if !p.as_os_str().is_empty() => p.clone(),
            _ => return Err(ctx.invalid(node, &["path"], "is required")),
        };
        if let Some(r) = &cfg.rotation
            && r.max_megabytes == 0
        {
            return Err(ctx.invalid(
                node,
                &["rotation", "max_megabytes"],
                "must be greater than 0",
            ));
        }
        let settings = ExporterSettings::new(
            ctx,
            node,
            cfg.sending_queue.clone(),
            cfg.retry_on_failure.clone(),
            cfg.timeout.0,
        )?;
        Ok(BuiltExporter {
            exporter: Arc::new(FileExporter {
                inner: Arc::new(Inner {
                    id: ctx.id.to_string(),
                    path,
                    cfg,
                    state: Mutex::new(State::default()),
                }),
                stop: CancellationToken::new(),
            }),
            settings,
        })
    }
}

/// The open file and what waits to be written to it.
#[derive(Default)]
struct State {
    file: Option<File>,
    /// Its size, for rotation.
    size: u64,
    /// Records buffered by `flush_interval`, and since when.
    pending: Vec<u8>,
    pending_since: Option<Instant>,
}

/// Writes batches to one file.
pub struct FileExporter {
    inner: Arc<Inner>,
    /// Ends the `flush_interval` task.
    stop: CancellationToken,
}

/// What the exporter and its flush task share. The mutex makes each record one uninterrupted append, whatever the
/// number of queue workers.
struct Inner {
    id: String,
    path: PathBuf,
    cfg: FileConfig,
    state: Mutex<State>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves at worst a rolled-back or complete record: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One batch as the bytes written for it.
    fn record(&self, batch: &Batch) -> Result<Vec<u8>, ExportError> {
        let body = match self.cfg.format {
            FileFormat::Json => protobuf_to_json(batch.signal, &batch.payload.to_bytes())
                .map_err(|e| e.into_export_error())?,
            FileFormat::Proto => batch.payload.to_vec(),
        };
        let body = match self.cfg.compression {
            Some(FileCompression::Zstd) => zstd::bulk::compress(&body, 0)
                .map_err(|e| ExportError::permanent(format!("zstd: {e}")))?,
            None if self.cfg.format == FileFormat::Json => {
                let mut line = body;
                line.push(b'\n');
                return Ok(line);
            }
            None => body,
        };
        let len = u32::try_from(body.len())
            .map_err(|_| ExportError::permanent("record larger than 4 GiB"))?;
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Appends `bytes` whole (a failed write is cut off again, so a retry neither duplicates nor corrupts),
    /// rotating first when they would take the file past `rotation.max_megabytes`.
    fn write(&self, st: &mut State, bytes: &[u8]) -> Result<(), String> {
        if let Some(r) = &self.cfg.rotation
            && st.size > 0
            && st.size + bytes.len() as u64 > r.max_megabytes << 20
        {
            self.rotate(st, r)?;
        }
        let Some(file) = st.file.as_mut() else {
            return Err("exporter not started".into());
        };
        let start = file.seek(SeekFrom::End(0)).ok();
        if let Err(e) = file.write_all(bytes).and_then(|()| file.flush()) {
            if let Some(len) = start {
                let _ = file.set_len(len);
            }
            return Err(format!("write {}: {e}", self.path.display()));
        }
        st.size = start.unwrap_or(st.size) + bytes.len() as u64;
        Ok(())
    }

    fn rotate(&self, st: &mut State, r: &Rotation) -> Result<(), String> {
        if let Some(f) = st.file.take() {
            let _ = f.sync_data();
        }
        let backup = rotate::backup_path(&self.path, SystemTime::now());
        std::fs::rename(&self.path, &backup).map_err(|e| {
            format!(
                "rotate {} to {}: {e}",
                self.path.display(),
                backup.display()
            )
        })?;
        st.file = Some(self.open(true)?);
        st.size = 0;
        rotate::prune(&self.path, r);
        Ok(())
    }

    fn open(&self, append: bool) -> Result<File, String> {
        OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))
    }

    /// Writes what `flush_interval` buffered; on failure it stays buffered for the next flush.
    fn flush_pending(&self, st: &mut State) {
        if st.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut st.pending);
        match self.write(st, &pending) {
            Ok(()) => st.pending_since = None,
            Err(e) => {
                tracing::warn!(exporter = %self.id, error = %e, "buffered records not written; retrying at the next flush");
                st.pending = pending;
            }
        }
    }
}

/// Writes what `flush_interval` buffered every interval, until `stop`.
async fn flush_every(inner: Arc<Inner>, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                let mut st = inner.lock();
                inner.flush_pending(&mut st);
            }
        }
    }
}

#[async_trait]
impl Exporter for FileExporter {
    async fn start(&self) -> Result<(), ComponentError> {
        let inner = &self.inner;
        let file = inner
            .open(inner.cfg.append)
            .map_err(|m| ComponentError::new(&inner.id, m))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        {
            let mut st = inner.lock();
            st.file = Some(file);
            st.size = size;
        }
        let every = inner.cfg.flush_interval.0;
        if !every.is_zero() {
            tokio::spawn(flush_every(inner.clone(), every, self.stop.clone()));
        }
        Ok(())
    }

    /// A failed write is retryable: disk full, quotas and network filesystems often recover. The retry settings
    /// bound the attempts. The write is synchronous on purpose: a timeout cannot cancel it half-way and then retry
    /// into a duplicate. With `flush_interval` the record is buffered and written by the next flush.
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let inner = &self.inner;
        let record = inner.record(batch)?;
        let mut st = inner.lock();
        if st.file.is_none() {
            return Err(ExportError::permanent("exporter not started"));
        }
        if inner.cfg.flush_interval.0.is_zero() {
            return inner
                .write(&mut st, &record)
                .map_err(ExportError::retryable);
        }
        if st.pending.len() >= BUFFER_CAP {
            return Err(ExportError::retryable(format!(
                "{} bytes wait for {}",
                st.pending.len(),
                inner.path.display()
            )));
        }
        st.pending.extend_from_slice(&record);
        let since = *st.pending_since.get_or_insert_with(Instant::now);
        if st.pending.len() >= FLUSH_AT || since.elapsed() >= inner.cfg.flush_interval.0 {
            inner.flush_pending(&mut st);
        }
        Ok(())
    }

    async fn shutdown(&self) {
        self.stop.cancel();
        let inner = &self.inner;
        let mut st = inner.lock();
        inner.flush_pending(&mut st);
        if let Some(f) = st.file.take() {
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
        assert!(build_err(build("path: /tmp/x\nformat: yaml")).contains("format"));
        assert!(build_err(build("path: /tmp/x\ngroup_by: {}")).contains("group_by"));
        assert!(
            build(
                "path: /tmp/x\nformat: proto\ncompression: zstd\nrotation: {}\nflush_interval: 1s"
            )
            .is_ok()
        );
        let zero = build("path: /tmp/x\nrotation: { max_megabytes: 0 }");
        assert!(build_err(zero).contains("rotation.max_megabytes"));
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

#[cfg(test)]
mod options_tests;
