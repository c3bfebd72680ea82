//! `flush_interval`, `format: proto`, `compression: zstd`, `rotation`, `append`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::exporter::test_util::{ctx, node, trace_batch};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spanpipe-fileopt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn exporter(path: &Path, extra: &str) -> Arc<dyn Exporter> {
    let yaml = format!("path: {}\n{extra}", path.display());
    FileExporterFactory
        .build(&ctx("file"), &node(&yaml))
        .unwrap()
        .exporter
}

/// Length-prefixed records of `bytes`.
fn records(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        out.push(bytes[4..4 + len].to_vec());
        bytes = &bytes[4 + len..];
    }
    out
}

#[tokio::test]
async fn flush_interval_buffers_until_the_interval() {
    let path = dir("flush").join("out.json");
    let e = exporter(&path, "flush_interval: 300ms");
    e.start().await.unwrap();
    e.export(&trace_batch(2)).await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "", "buffered");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    e.export(&trace_batch(3)).await.unwrap();
    e.shutdown().await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        2,
        "flushed at shutdown"
    );
}

#[tokio::test]
async fn proto_and_zstd_records_are_length_prefixed() {
    let d = dir("proto");
    let proto = d.join("out.pb");
    let e = exporter(&proto, "format: proto");
    e.start().await.unwrap();
    let batch = trace_batch(2);
    e.export(&batch).await.unwrap();
    e.export(&batch).await.unwrap();
    e.shutdown().await;
    let got = records(&std::fs::read(&proto).unwrap());
    assert_eq!(got, vec![batch.payload.to_vec(), batch.payload.to_vec()]);

    let zst = d.join("out.json.zst");
    let e = exporter(&zst, "compression: zstd");
    e.start().await.unwrap();
    e.export(&batch).await.unwrap();
    e.shutdown().await;
    let got = records(&std::fs::read(&zst).unwrap());
    let json = zstd::bulk::decompress(&got[0], 1 << 20).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert!(v["resourceSpans"].is_array());
}

#[tokio::test]
async fn rotation_keeps_max_backups() {
    let d = dir("rotate");
    let path = d.join("spans.json");
    let e = exporter(&path, "rotation: { max_megabytes: 1, max_backups: 2 }");
    e.start().await.unwrap();
    let big = trace_batch(3000);
    for _ in 0..12 {
        e.export(&big).await.unwrap();
        // Backup names carry milliseconds: keep them distinct.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    e.shutdown().await;
    let names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let backups = names.iter().filter(|n| n.starts_with("spans-")).count();
    assert_eq!(backups, 2, "{names:?}");
    // Each file holds what fits in 1 MiB, or one record alone when a record is larger.
    let current = std::fs::read_to_string(&path).unwrap();
    assert!(current.len() <= 1 << 20 || current.lines().count() == 1);
}

#[tokio::test]
async fn append_false_truncates_at_start() {
    let path = dir("append").join("out.json");
    std::fs::write(&path, "old\n").unwrap();
    let e = exporter(&path, "append: false");
    e.start().await.unwrap();
    e.export(&trace_batch(1)).await.unwrap();
    e.shutdown().await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("old"));
    assert_eq!(text.lines().count(), 1);
}
