//! The component types a binary knows, by type name (aliases included).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::component::{
    ConnectorFactory, ExporterFactory, ExtensionFactory, ProcessorFactory, ReceiverFactory,
};

/// Factories by type name. The binary fills it; the core looks components up here and nowhere else.
#[derive(Default, Clone)]
pub struct Registry {
    pub receivers: BTreeMap<String, Arc<dyn ReceiverFactory>>,
    pub processors: BTreeMap<String, Arc<dyn ProcessorFactory>>,
    pub exporters: BTreeMap<String, Arc<dyn ExporterFactory>>,
    pub connectors: BTreeMap<String, Arc<dyn ConnectorFactory>>,
    pub extensions: BTreeMap<String, Arc<dyn ExtensionFactory>>,
}

impl Registry {
    pub fn receiver(&mut self, f: impl ReceiverFactory + 'static) -> &mut Self {
        self.receivers
            .insert(f.type_name().to_string(), Arc::new(f));
        self
    }

    pub fn processor(&mut self, f: impl ProcessorFactory + 'static) -> &mut Self {
        self.processors
            .insert(f.type_name().to_string(), Arc::new(f));
        self
    }

    /// Registers an exporter under its type name and any aliases (`otlp_http` is also `otlphttp`).
    pub fn exporter(&mut self, f: impl ExporterFactory + 'static, aliases: &[&str]) -> &mut Self {
        let f: Arc<dyn ExporterFactory> = Arc::new(f);
        for name in aliases {
            self.exporters.insert((*name).to_string(), f.clone());
        }
        self.exporters.insert(f.type_name().to_string(), f);
        self
    }

    pub fn connector(&mut self, f: impl ConnectorFactory + 'static) -> &mut Self {
        self.connectors
            .insert(f.type_name().to_string(), Arc::new(f));
        self
    }

    pub fn extension(&mut self, f: impl ExtensionFactory + 'static) -> &mut Self {
        self.extensions
            .insert(f.type_name().to_string(), Arc::new(f));
        self
    }
}
