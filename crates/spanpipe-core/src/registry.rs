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
    /// What the service warns about a configured type: deprecated aliases, types accepted but not served.
    /// Keyed by (section, type).
    pub notices: BTreeMap<(String, String), String>,
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

    /// Marks `type_name` of `section` (`exporters`, ...) as deprecated: configs using it get a warning saying
    /// `advice` (what to use instead).
    pub fn deprecated(&mut self, section: &str, type_name: &str, advice: &str) -> &mut Self {
        let message = format!("type \"{type_name}\" is deprecated; use {advice}");
        self.notices
            .insert((section.to_string(), type_name.to_string()), message);
        self
    }

    /// Attaches `message` to every configured component of `type_name` in `section`, shown as a warning.
    pub fn notice(&mut self, section: &str, type_name: &str, message: &str) -> &mut Self {
        self.notices.insert(
            (section.to_string(), type_name.to_string()),
            message.to_string(),
        );
        self
    }

    /// The warnings `cfg`'s components earn (see [`Registry::deprecated`], [`Registry::notice`]), in order.
    pub fn warnings(
        &self,
        cfg: &spanpipe_config::CollectorConfig,
    ) -> Vec<spanpipe_config::Warning> {
        let sections = [
            ("receivers", &cfg.receivers),
            ("processors", &cfg.processors),
            ("exporters", &cfg.exporters),
            ("connectors", &cfg.connectors),
            ("extensions", &cfg.extensions),
        ];
        let mut out = Vec::new();
        for (name, section) in sections {
            for (id, key, _) in section {
                let k = (name.to_string(), id.type_name().to_string());
                if let Some(message) = self.notices.get(&k) {
                    out.push(spanpipe_config::Warning {
                        location: key.location.clone(),
                        key: format!("{name}.{id}"),
                        message: message.clone(),
                    });
                }
            }
        }
        out
    }
}

/// The known name closest to `unknown` when it is close enough to be a likely typo (`otlphtp` → `otlphttp`,
/// `prometheus_remotewrite` → `prometheusremotewrite`); `None` when nothing is near.
pub fn closest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let target = norm(unknown);
    let mut best: Option<((usize, usize), &str)> = None;
    for name in known {
        // Ties (`otlp_http` and `otlphttp` normalise alike) go to the spelling nearer what was written.
        let d = (
            edit_distance(&target, &norm(name)),
            edit_distance(unknown, name),
        );
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, name));
        }
    }
    let limit = (target.chars().count() / 3).max(2);
    best.filter(|((d, _), _)| *d <= limit).map(|(_, n)| n)
}

/// Levenshtein distance over characters (inputs are short type names).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diag + usize::from(ca != *cb));
            diag = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names_only() {
        let known = [
            "otlp",
            "otlphttp",
            "otlp_http",
            "debug",
            "prometheusremotewrite",
        ];
        assert_eq!(closest("otlphtp", known), Some("otlphttp"));
        assert_eq!(closest("otlp_htpp", known), Some("otlp_http"));
        assert_eq!(
            closest("prometheus_remotewrite", known),
            Some("prometheusremotewrite")
        );
        assert_eq!(closest("degub", known), Some("debug"));
        assert_eq!(closest("kafka", known), None);
        assert_eq!(closest("x", known), None);
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
