//! The one place that names concrete components: every component type the binary offers is registered here.

use spanpipe_core::Registry;

/// All component types of this build.
pub fn registry() -> Registry {
    let mut r = Registry::default();
    spanpipe_otlp::register(&mut r);
    spanpipe_processors::register(&mut r);
    spanpipe_mlflow::register(&mut r);
    spanpipe_spanmetrics::register(&mut r);
    spanpipe_prometheus::register(&mut r);
    spanpipe_redaction::register(&mut r);
    spanpipe_storage::register(&mut r);
    spanpipe_extensions::register(&mut r);
    spanpipe_auth::register(&mut r);
    spanpipe_transform::register(&mut r);
    spanpipe_genai::register(&mut r);
    spanpipe_loadbalancing::register(&mut r);
    spanpipe_tailsampling::register(&mut r);
    r
}
