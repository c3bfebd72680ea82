//! Which components a reload may keep: pure comparisons of two configurations.

use spanpipe_config::{CollectorConfig, ConfigError, load_str};

use super::Diff;

fn config(yaml: &str) -> CollectorConfig {
    config_in("r.yaml", yaml).unwrap()
}

fn config_in(file: &str, yaml: &str) -> Result<CollectorConfig, ConfigError> {
    Ok(CollectorConfig::from_node(&load_str(file, yaml)?)?.0)
}

fn id(s: &str) -> crate::ComponentId {
    s.parse().unwrap()
}

const BASE: &str = "
extensions: {st/a: {dir: x}}
receivers: {hand: }
processors: {hold: {}}
exporters:
  log/a: {tag: A}
  log/b: {tag: B, store: st/a}
connectors: {pass: }
service:
  extensions: [st/a]
  pipelines:
    traces: {receivers: [hand], processors: [hold], exporters: [log/a, pass]}
    traces/2: {receivers: [pass], exporters: [log/b]}
";

#[test]
fn moved_config_is_unchanged_and_edited_config_is_changed() {
    let old = config(BASE);
    // The same values, written in another layout and another file.
    let moved = config_in("other.yaml", &format!("\n\n\n{BASE}")).unwrap();
    let d = Diff::new(&old, &moved);
    assert!(d.exporter_unchanged(&id("log/a")) && d.exporter_unchanged(&id("log/b")));
    assert!(d.receiver_unchanged(&id("hand")) && d.extension_unchanged(&id("st/a")));
    assert!(d.pipeline_unchanged(&"traces".parse().unwrap()));

    let edited = config(&BASE.replace("{tag: A}", "{tag: A2}"));
    let d = Diff::new(&old, &edited);
    assert!(!d.exporter_unchanged(&id("log/a")));
    assert!(d.exporter_unchanged(&id("log/b")));
    assert!(!d.pipeline_unchanged(&"traces".parse().unwrap()));
    assert!(d.pipeline_unchanged(&"traces/2".parse().unwrap()));
    assert!(d.connector_unchanged(&id("pass")));
}

#[test]
fn a_change_below_a_connector_changes_the_pipelines_above_it() {
    let old = config(BASE);
    let new = config(&BASE.replace("{tag: B, store: st/a}", "{tag: B2, store: st/a}"));
    let d = Diff::new(&old, &new);
    assert!(!d.pipeline_unchanged(&"traces/2".parse().unwrap()));
    assert!(!d.connector_unchanged(&id("pass")));
    assert!(!d.pipeline_unchanged(&"traces".parse().unwrap()));
    assert!(d.exporter_unchanged(&id("log/a")));
    assert!(d.processor_unchanged(&id("hold")));
}

#[test]
fn reordered_lists_and_changed_extensions_count_as_changes() {
    let old = config(BASE);
    let new = config(&BASE.replace("exporters: [log/a, pass]", "exporters: [pass, log/a]"));
    let d = Diff::new(&old, &new);
    assert!(!d.pipeline_unchanged(&"traces".parse().unwrap()));
    assert!(d.exporter_unchanged(&id("log/a")));

    // log/b names the extension st/a: changing the extension changes log/b, not log/a.
    let new = config(&BASE.replace("{dir: x}", "{dir: y}"));
    let d = Diff::new(&old, &new);
    assert!(!d.extension_unchanged(&id("st/a")));
    assert!(!d.exporter_unchanged(&id("log/b")));
    assert!(d.exporter_unchanged(&id("log/a")));

    // Disabling it (no longer in service.extensions) is a change too.
    let new = config(&BASE.replace("extensions: [st/a]", "extensions: []"));
    assert!(!Diff::new(&old, &new).extension_unchanged(&id("st/a")));
}

#[test]
fn removed_and_added_components_are_not_unchanged() {
    let old = config(BASE);
    let new = config(
        &BASE
            .replace("log/a: {tag: A}", "log/c: {tag: A}")
            .replace("[log/a, pass]", "[log/c, pass]"),
    );
    let d = Diff::new(&old, &new);
    assert!(!d.exporter_unchanged(&id("log/a")));
    assert!(!d.exporter_unchanged(&id("log/c")));
    assert!(!d.pipeline_unchanged(&"traces".parse().unwrap()));
}
