//! The collector layout (receivers, processors, exporters, connectors, extensions, service) read from the merged
//! tree, with the cross-reference checks the OTel Collector performs before anything starts.

use std::collections::HashSet;
use std::fmt;

use crate::error::{ConfigError, Location, join_path};
use crate::ids::{ComponentId, PipelineId};
use crate::node::{Node, Value};
use crate::units::{ByteSize, Duration};

/// One component section: each entry is (id, key node for its location, config node — `Null` for `otlp:`).
pub type Section = Vec<(ComponentId, Node, Node)>;

/// The collector layout parsed from the merged tree. Component configs stay raw [`Node`]s because only the
/// component itself knows their type; order is preserved as written.
#[derive(Clone, Debug)]
pub struct CollectorConfig {
    /// `receivers:` section.
    pub receivers: Section,
    /// `processors:` section.
    pub processors: Section,
    /// `exporters:` section.
    pub exporters: Section,
    /// `connectors:` section (components that are an exporter of one pipeline and a receiver of another).
    pub connectors: Section,
    /// `extensions:` section.
    pub extensions: Section,
    /// `service:` section.
    pub service: ServiceConfig,
}

/// The `service:` section: which extensions run and how components are wired into pipelines.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Enabled extensions, in order, with where each was listed.
    pub extensions: Vec<(ComponentId, Location)>,
    /// The pipelines, in the order written.
    pub pipelines: Vec<Pipeline>,
    /// service.telemetry raw node (logs: level/encoding, metrics: address) — typed by the binary. Null if absent.
    pub telemetry: Node,
    /// service.shutdown_timeout (spanpipe extension; default 30s) — how long draining may take.
    pub shutdown_timeout: Duration,
    /// service.memory_limit (spanpipe extension; default 32MiB; 0 = unlimited) — the bytes of requests held
    /// anywhere in the pipelines at once; past it receivers refuse with 503 / UNAVAILABLE.
    pub memory_limit: ByteSize,
}

/// One pipeline: receivers feed processors (in order) which feed all exporters.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// The pipeline id, e.g. `traces/mlflow`.
    pub id: PipelineId,
    /// Where the pipeline's key was written.
    pub location: Location,
    /// Receivers (or connectors acting as receivers), with where each was listed.
    pub receivers: Vec<(ComponentId, Location)>,
    /// Processors in order, with where each was listed.
    pub processors: Vec<(ComponentId, Location)>,
    /// Exporters (or connectors acting as exporters), with where each was listed.
    pub exporters: Vec<(ComponentId, Location)>,
}

/// A problem that does not stop the collector (e.g. a component configured but unused); shown to the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Where the offending item was written.
    pub location: Location,
    /// Dotted key path of the item.
    pub key: String,
    /// Human-readable description.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ConfigError::new(
            self.location.clone(),
            self.key.clone(),
            self.message.clone(),
        )
        .fmt(f)
    }
}

const TOP_LEVEL_KEYS: &str = "receivers, processors, exporters, connectors, extensions, service";
const SERVICE_KEYS: &str = "extensions, pipelines, telemetry, shutdown_timeout, memory_limit";
/// `service.memory_limit` when absent.
pub const DEFAULT_MEMORY_LIMIT: ByteSize = ByteSize(32 << 20);
const DEFAULT_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Entries of a mapping node; null counts as empty; anything else is an error naming `what`.
fn entries<'a>(node: &'a Node, key: &str, what: &str) -> Result<&'a [(Node, Node)], ConfigError> {
    match &node.value {
        Value::Map(entries) => Ok(entries),
        _ if node.is_null() => Ok(&[]),
        _ => Err(ConfigError::new(
            node.location.clone(),
            key,
            format!("expected {what}"),
        )),
    }
}

fn key_text(key: &Node) -> &str {
    key.as_str().unwrap_or_default()
}

/// The entries of a component section; a bad id is recorded in `errors` and its entry skipped.
fn section(name: &str, node: &Node, errors: &mut Vec<ConfigError>) -> Section {
    let mut out = Section::new();
    let list = match entries(
        node,
        name,
        "a mapping from component id to its configuration",
    ) {
        Ok(list) => list,
        Err(e) => {
            errors.push(e);
            return out;
        }
    };
    for (key, config) in list {
        let path = join_path(name, key_text(key));
        match key_text(key).parse::<ComponentId>() {
            Ok(id) => out.push((id, key.clone(), config.clone())),
            Err(e) => errors.push(ConfigError::new(key.location.clone(), path, e.0)),
        }
    }
    out
}

fn defines(section: &Section, id: &ComponentId) -> bool {
    section.iter().any(|(defined, _, _)| defined == id)
}

impl CollectorConfig {
    /// Parse the layout from the merged tree and check it: component and pipeline ids, allowed keys, non-empty
    /// pipelines, references to configured components, no duplicates within a pipeline list, at least one
    /// pipeline, enabled extensions exist, no receiver and connector sharing an id. Returns warnings for
    /// components that no pipeline uses and extensions not enabled in `service.extensions`.
    pub fn from_node(root: &Node) -> Result<(CollectorConfig, Vec<Warning>), ConfigError> {
        Self::from_node_all(root).map_err(|mut errors| errors.remove(0))
    }

    /// As [`CollectorConfig::from_node`], reporting every problem found rather than the first (never an empty
    /// list on `Err`).
    pub fn from_node_all(root: &Node) -> Result<(CollectorConfig, Vec<Warning>), Vec<ConfigError>> {
        let (config, errors) = Self::parse_all(root);
        if !errors.is_empty() {
            return Err(errors);
        }
        let warnings = config.warnings();
        Ok((config, warnings))
    }

    /// The layout as far as it can be read, and every problem found: the components of a config whose
    /// pipelines are wrong can still be checked (`validate` reports both).
    pub fn parse_all(root: &Node) -> (CollectorConfig, Vec<ConfigError>) {
        let mut errors = Vec::new();
        let mut config = CollectorConfig {
            receivers: Section::new(),
            processors: Section::new(),
            exporters: Section::new(),
            connectors: Section::new(),
            extensions: Section::new(),
            service: ServiceConfig {
                extensions: Vec::new(),
                pipelines: Vec::new(),
                telemetry: Node::new(Value::Null, Location::default_value()),
                shutdown_timeout: Duration(DEFAULT_SHUTDOWN_TIMEOUT),
                memory_limit: DEFAULT_MEMORY_LIMIT,
            },
        };
        let mut service: Option<(&Node, &Node)> = None;
        let top = match entries(root, "", "the configuration to be a mapping") {
            Ok(top) => top,
            Err(e) => return (config, vec![e]),
        };
        for (key, value) in top {
            let e = &mut errors;
            match key_text(key) {
                "receivers" => config.receivers = section("receivers", value, e),
                "processors" => config.processors = section("processors", value, e),
                "exporters" => config.exporters = section("exporters", value, e),
                "connectors" => config.connectors = section("connectors", value, e),
                "extensions" => config.extensions = section("extensions", value, e),
                "service" => service = Some((key, value)),
                other => {
                    errors.push(ConfigError::new(
                        key.location.clone(),
                        other,
                        format!(
                            "unknown top-level key `{other}`: expected one of {TOP_LEVEL_KEYS}"
                        ),
                    ));
                }
            }
        }
        for (id, key, _) in &config.connectors {
            if defines(&config.receivers, id) || defines(&config.exporters, id) {
                errors.push(ConfigError::new(
                    key.location.clone(),
                    format!("connectors.{id}"),
                    format!(
                        "ambiguous id: \"{id}\" is configured both as a connector and as a receiver or exporter"
                    ),
                ));
            }
        }
        let service_location =
            service.map_or_else(|| root.location.clone(), |(key, _)| key.location.clone());
        let mut pipelines_written = false;
        if let Some((_, node)) = service {
            pipelines_written = config.parse_service(node, &mut errors);
        }
        if config.service.pipelines.is_empty() && !pipelines_written {
            errors.push(ConfigError::new(
                service_location,
                "service.pipelines",
                "no pipelines configured",
            ));
        }
        (config, errors)
    }

    /// Reads `service`, recording problems in `errors`; true when some pipeline was written (even a bad one).
    fn parse_service(&mut self, node: &Node, errors: &mut Vec<ConfigError>) -> bool {
        let mut pipelines_written = false;
        let list = match entries(node, "service", "a mapping") {
            Ok(list) => list,
            Err(e) => {
                errors.push(e);
                return true;
            }
        };
        for (key, value) in list {
            let path = join_path("service", key_text(key));
            match key_text(key) {
                "extensions" => {
                    let listed = match id_list(value, &path) {
                        Ok(listed) => listed,
                        Err(e) => {
                            errors.push(e);
                            continue;
                        }
                    };
                    for (id, location) in &listed {
                        if !defines(&self.extensions, id) {
                            errors.push(ConfigError::new(
                                location.clone(),
                                &path,
                                format!(
                                    "service.extensions references extension \"{id}\" which is not configured"
                                ),
                            ));
                        }
                    }
                    self.service.extensions = listed;
                }
                "pipelines" => {
                    let list = match entries(value, &path, "a mapping from pipeline id to pipeline")
                    {
                        Ok(list) => list,
                        Err(e) => {
                            errors.push(e);
                            pipelines_written = true;
                            continue;
                        }
                    };
                    for (pipeline_key, pipeline) in list {
                        pipelines_written = true;
                        let mut found = Vec::new();
                        let pipeline = self.parse_pipeline(pipeline_key, pipeline, &mut found);
                        match pipeline {
                            Ok(p) if found.is_empty() => self.service.pipelines.push(p),
                            Ok(_) => errors.append(&mut found),
                            Err(e) => {
                                errors.append(&mut found);
                                errors.push(e);
                            }
                        }
                    }
                }
                "telemetry" => self.service.telemetry = value.clone(),
                "shutdown_timeout" => match value.deserialize(&path) {
                    Ok(d) => self.service.shutdown_timeout = d,
                    Err(e) => errors.push(e),
                },
                "memory_limit" => match value.deserialize(&path) {
                    Ok(b) => self.service.memory_limit = b,
                    Err(e) => errors.push(e),
                },
                other => {
                    errors.push(ConfigError::new(
                        key.location.clone(),
                        path.clone(),
                        format!("unknown key `{other}` in service: expected one of {SERVICE_KEYS}"),
                    ));
                }
            }
        }
        pipelines_written
    }

    /// One pipeline; references to components that are not configured are recorded in `errors` (all of them),
    /// anything else that is wrong with it is the `Err`.
    fn parse_pipeline(
        &self,
        key: &Node,
        node: &Node,
        errors: &mut Vec<ConfigError>,
    ) -> Result<Pipeline, ConfigError> {
        let path = join_path("service.pipelines", key_text(key));
        let id: PipelineId = key_text(key)
            .parse()
            .map_err(|e: crate::ids::IdError| ConfigError::new(key.location.clone(), &path, e.0))?;
        let mut pipeline = Pipeline {
            id,
            location: key.location.clone(),
            receivers: vec![],
            processors: vec![],
            exporters: vec![],
        };
        let mut list_locations = [key.location.clone(), key.location.clone()];
        for (list_key, list) in entries(
            node,
            &path,
            "a mapping with receivers, processors and exporters",
        )? {
            let list_path = join_path(&path, key_text(list_key));
            let ids = id_list(list, &list_path)?;
            let (allowed, kind): (&[&Section], &str) = match key_text(list_key) {
                "receivers" => {
                    list_locations[0] = list.location.clone();
                    (&[&self.receivers, &self.connectors], "receiver")
                }
                "processors" => (&[&self.processors], "processor"),
                "exporters" => {
                    list_locations[1] = list.location.clone();
                    (&[&self.exporters, &self.connectors], "exporter")
                }
                other => {
                    return Err(ConfigError::new(
                        list_key.location.clone(),
                        list_path.clone(),
                        format!(
                            "unknown key `{other}` in pipeline {}: expected receivers, processors or exporters",
                            pipeline.id
                        ),
                    ));
                }
            };
            for (index, (component, location)) in ids.iter().enumerate() {
                if !allowed.iter().any(|section| defines(section, component)) {
                    errors.push(ConfigError::new(
                        location.clone(),
                        format!("{list_path}[{index}]"),
                        format!(
                            "pipeline {} references {kind} \"{component}\" which is not configured",
                            pipeline.id
                        ),
                    ));
                }
            }
            match key_text(list_key) {
                "receivers" => pipeline.receivers = ids,
                "processors" => pipeline.processors = ids,
                _ => pipeline.exporters = ids,
            }
        }
        for (list, location, what) in [
            (&pipeline.receivers, &list_locations[0], "receivers"),
            (&pipeline.exporters, &list_locations[1], "exporters"),
        ] {
            if list.is_empty() {
                return Err(ConfigError::new(
                    location.clone(),
                    join_path(&path, what),
                    format!("pipeline {} has no {what}", pipeline.id),
                ));
            }
        }
        Ok(pipeline)
    }

    fn warnings(&self) -> Vec<Warning> {
        let pipelines = &self.service.pipelines;
        let used = |pick: fn(&Pipeline) -> &Vec<(ComponentId, Location)>| -> HashSet<&ComponentId> {
            pipelines
                .iter()
                .flat_map(|p| pick(p).iter().map(|(id, _)| id))
                .collect()
        };
        let as_receiver = used(|p| &p.receivers);
        let as_processor = used(|p| &p.processors);
        let as_exporter = used(|p| &p.exporters);
        let enabled: HashSet<&ComponentId> =
            self.service.extensions.iter().map(|(id, _)| id).collect();
        let mut warnings = Vec::new();
        let mut warn = |section: &str, key: &Node, id: &ComponentId, message: String| {
            warnings.push(Warning {
                location: key.location.clone(),
                key: format!("{section}.{id}"),
                message,
            });
        };
        let unused = |kind: &str, id: &ComponentId| {
            format!("{kind} \"{id}\" is configured but not used in any pipeline")
        };
        for (id, key, _) in &self.receivers {
            if !as_receiver.contains(id) {
                warn("receivers", key, id, unused("receiver", id));
            }
        }
        for (id, key, _) in &self.processors {
            if !as_processor.contains(id) {
                warn("processors", key, id, unused("processor", id));
            }
        }
        for (id, key, _) in &self.exporters {
            if !as_exporter.contains(id) {
                warn("exporters", key, id, unused("exporter", id));
            }
        }
        for (id, key, _) in &self.connectors {
            match (as_exporter.contains(id), as_receiver.contains(id)) {
                (false, false) => warn("connectors", key, id, unused("connector", id)),
                (true, false) => warn(
                    "connectors",
                    key,
                    id,
                    format!(
                        "connector \"{id}\" is used as an exporter but not as a receiver of any pipeline"
                    ),
                ),
                (false, true) => warn(
                    "connectors",
                    key,
                    id,
                    format!(
                        "connector \"{id}\" is used as a receiver but not as an exporter of any pipeline"
                    ),
                ),
                (true, true) => {}
            }
        }
        for (id, key, _) in &self.extensions {
            if !enabled.contains(id) {
                warn(
                    "extensions",
                    key,
                    id,
                    format!(
                        "extension \"{id}\" is configured but not enabled in service.extensions"
                    ),
                );
            }
        }
        warnings
    }
}

/// Reads a list of component ids (null = empty), rejecting bad ids and duplicates.
fn id_list(node: &Node, path: &str) -> Result<Vec<(ComponentId, Location)>, ConfigError> {
    let items: &[Node] = match &node.value {
        Value::Seq(items) => items,
        _ if node.is_null() => &[],
        _ => {
            return Err(ConfigError::new(
                node.location.clone(),
                path,
                "expected a list of component ids",
            ));
        }
    };
    let mut out: Vec<(ComponentId, Location)> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{index}]");
        let text = item.as_str().ok_or_else(|| {
            ConfigError::new(item.location.clone(), &item_path, "expected a component id")
        })?;
        let id: ComponentId = text.parse().map_err(|e: crate::ids::IdError| {
            ConfigError::new(item.location.clone(), &item_path, e.0)
        })?;
        if let Some((_, first)) = out.iter().find(|(seen, _)| *seen == id) {
            return Err(ConfigError::new(
                item.location.clone(),
                item_path,
                format!("\"{id}\" is listed more than once in {path} (first at {first})"),
            ));
        }
        out.push((id, item.location.clone()));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
