//! The config loader on arbitrary YAML: `load_str` (anchors, aliases, merge keys, nesting limits), `${env:...}`
//! expansion and `CollectorConfig::from_node` (the layout and id checks): errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanpipe_config::{CollectorConfig, expand_env, load_str};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut node) = load_str("fuzz.yaml", text) else {
        return;
    };
    // A fixed environment, so a run is reproducible.
    let env = |name: &str| {
        name.len()
            .is_multiple_of(2)
            .then(|| format!("value-of-{name}"))
    };
    if expand_env(&mut node, &env).is_err() {
        return;
    }
    let _ = CollectorConfig::from_node(&node);
});
