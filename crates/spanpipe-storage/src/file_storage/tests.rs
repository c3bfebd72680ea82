use super::*;

fn build(yaml: &str) -> Result<Arc<dyn Extension>, ConfigError> {
    let node = spanpipe_config::load_str("test.yaml", yaml).unwrap();
    let id: spanpipe_core::ComponentId = "file_storage/q".parse().unwrap();
    let ctx = BuildContext::new(id, "extensions.file_storage/q".into());
    FileStorageFactory.build(&ctx, &node)
}

#[test]
fn owners_map_to_distinct_safe_names() {
    assert_eq!(escape("exporter/otlp/a_b"), "exporter%2Fotlp%2Fa_b");
    assert_eq!(escape(".."), "%2E.");
    assert_ne!(escape("exporter/a/b"), escape("exporter/a%2Fb"));
}

#[test]
fn config_errors_name_the_key() {
    let e = build("fsync: true").err().unwrap().to_string();
    assert!(e.contains("directory") && e.contains("required"), "{e}");
    let e = build("{directory: /tmp/x, max_size: 0}")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("max_size"), "{e}");
    let e = build("{directory: /tmp/x, bogus: 1}")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("bogus"), "{e}");
}

#[tokio::test]
async fn start_checks_or_creates_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("a/b");
    let ext = build(&format!("directory: {}", missing.display())).unwrap();
    let e = ext.start().await.err().unwrap().to_string();
    assert!(e.contains("create_directory"), "{e}");
    let ext = build(&format!(
        "{{directory: {}, create_directory: true, max_size: 1MiB}}",
        missing.display()
    ))
    .unwrap();
    ext.start().await.unwrap();
    assert!(missing.is_dir());
    let storage = ext.storage().unwrap();
    let mut client = storage.open("exporter/otlp/x").unwrap();
    assert_eq!(client.max_bytes(), Some(1 << 20));
    client.append(b"hello", 1).unwrap();
    assert!(missing.join("exporter%2Fotlp%2Fx").is_dir());
    assert!(
        storage.open("exporter/otlp/x").is_err(),
        "one client per owner"
    );
}
