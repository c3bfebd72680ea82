//! Identifiers used by the collector layout: signals, component ids (`otlp/backend`) and pipeline ids
//! (`traces/mlflow`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an id string was rejected; returned by the `FromStr` impls so callers can use `?` with any error type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub String);

/// The kind of telemetry a pipeline carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric points.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// The lowercase name used in configuration (`traces`, `metrics`, `logs`).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Signal {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        match s {
            "traces" => Ok(Signal::Traces),
            "metrics" => Ok(Signal::Metrics),
            "logs" => Ok(Signal::Logs),
            _ => Err(IdError(format!(
                "unknown signal {s:?}: expected traces, metrics or logs"
            ))),
        }
    }
}

/// A component id `type[/name]` as written in the config (`otlp`, `otlp/backend`): the type selects the
/// component factory, the optional name distinguishes several instances of one type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    /// The component type, e.g. `otlp`.
    pub kind: String,
    /// The instance name after the `/`, if any.
    pub name: Option<String>,
}

impl ComponentId {
    /// An id with the given type and optional name (not validated; use `parse` for user input).
    pub fn new(kind: impl Into<String>, name: Option<&str>) -> Self {
        ComponentId {
            kind: kind.into(),
            name: name.map(str::to_owned),
        }
    }

    /// The component type (the part before `/`), used to pick the factory.
    pub fn type_name(&self) -> &str {
        &self.kind
    }
}

/// Splits `type[/name]` and validates the name part (non-empty, no whitespace).
fn split_name(s: &str) -> Result<(&str, Option<String>), IdError> {
    match s.split_once('/') {
        None => Ok((s, None)),
        Some((_, "")) => Err(IdError(format!(
            "invalid id {s:?}: the name after '/' is empty"
        ))),
        Some((_, name)) if name.chars().any(char::is_whitespace) => Err(IdError(format!(
            "invalid id {s:?}: the name after '/' must not contain whitespace"
        ))),
        Some((kind, name)) => Ok((kind, Some(name.to_owned()))),
    }
}

impl FromStr for ComponentId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let (kind, name) = split_name(s)?;
        let valid = kind.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(IdError(format!(
                "invalid component id {s:?}: the type must start with a letter and contain only letters, digits and '_'"
            )));
        }
        Ok(ComponentId {
            kind: kind.to_owned(),
            name,
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{name}", self.kind),
            None => f.write_str(&self.kind),
        }
    }
}

/// A pipeline id `signal[/name]`, e.g. `traces` or `traces/mlflow`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipelineId {
    /// The signal the pipeline carries.
    pub signal: Signal,
    /// The pipeline name after the `/`, if any.
    pub name: Option<String>,
}

impl FromStr for PipelineId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let (signal, name) = split_name(s)?;
        let signal = signal.parse().map_err(|_| {
            IdError(format!(
                "invalid pipeline id {s:?}: must start with traces, metrics or logs"
            ))
        })?;
        Ok(PipelineId { signal, name })
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{name}", self.signal),
            None => write!(f, "{}", self.signal),
        }
    }
}

macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_via_str!(Signal, ComponentId, PipelineId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_ids() {
        let id: ComponentId = "otlp/backend".parse().unwrap();
        assert_eq!(id, ComponentId::new("otlp", Some("backend")));
        assert_eq!(id.type_name(), "otlp");
        assert_eq!(id.to_string(), "otlp/backend");
        assert_eq!("batch".parse::<ComponentId>().unwrap().to_string(), "batch");
        assert_eq!(
            "otlp/a/b".parse::<ComponentId>().unwrap().name.as_deref(),
            Some("a/b")
        );
        for bad in ["", "1otlp", "ot-lp", "otlp/", "otlp/a b", "/x", "ot lp"] {
            assert!(
                bad.parse::<ComponentId>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn pipeline_ids_and_signals() {
        let id: PipelineId = "traces/mlflow".parse().unwrap();
        assert_eq!(id.signal, Signal::Traces);
        assert_eq!(id.to_string(), "traces/mlflow");
        assert_eq!("logs".parse::<PipelineId>().unwrap().to_string(), "logs");
        assert!("spans".parse::<PipelineId>().is_err());
        assert!("traces/".parse::<PipelineId>().is_err());
        assert_eq!("metrics".parse::<Signal>().unwrap(), Signal::Metrics);
        assert!("Traces".parse::<Signal>().is_err());
    }
}
