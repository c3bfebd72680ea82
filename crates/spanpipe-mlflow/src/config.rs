//! `exporters.mlflow` configuration: the serde struct with every default in one [`Default`] impl, and its
//! validation into [`Settings`], kept apart so each rule sits next to the key it reports.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use spanpipe_config::{ByteSize, Duration as ConfigDuration, Secret};
use spanpipe_core::{QueueSettings, RetrySettings};
use spanpipe_net::client::TlsSettings;
use spanpipe_net::client::check_http_url;
use spanpipe_net::compression::Compression;
use spanpipe_otlp::exporter::client_auth::ClientAuthSettings;

use crate::routing::{Rule, Source, Target};

/// MLflow's "Default" experiment, where traces go when nothing else is configured (as in MLflow's own SDK).
pub const DEFAULT_EXPERIMENT_ID: &str = "0";

/// The `tracking_uri` value that selects Databricks (host and token from `DATABRICKS_HOST` / `DATABRICKS_TOKEN`).
pub const DATABRICKS: &str = "databricks";

/// Where a routing rule reads the experiment from.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RuleFrom {
    ResourceAttribute,
    RequestHeader,
}

/// What a routing rule's value is.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RuleAs {
    ExperimentName,
    ExperimentId,
}

/// One `routing:` entry. Flat rather than a tagged enum so unknown keys and positions are reported by the
/// config layer like everywhere else.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    pub from: RuleFrom,
    /// For `from: resource_attribute`.
    pub attribute: Option<String>,
    /// For `from: request_header` (needs the receiver's `include_metadata: true`).
    pub header: Option<String>,
    #[serde(rename = "as")]
    pub value_as: RuleAs,
}

/// Configuration of the `mlflow` exporter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MlflowConfig {
    /// `http(s)://host:port[/prefix]` of the tracking server, or `databricks`.
    pub tracking_uri: Option<String>,
    pub experiment_id: Option<String>,
    pub experiment_name: Option<String>,
    /// Sent as `X-MLFLOW-WORKSPACE` on every request (servers started with `--enable-workspaces`).
    pub workspace: Option<String>,
    /// Static bearer token.
    pub token: Option<Secret>,
    /// Bearer token read from a file and re-read when it changes (Kubernetes service-account tokens rotate).
    pub token_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: TlsSettings,
    pub compression: Compression,
    pub timeout: ConfigDuration,
    /// Spans per request; traces are kept whole below this.
    pub max_spans_per_request: usize,
    /// Uncompressed body bytes per request (0: no limit); a single span larger than this is sent alone.
    pub max_request_bytes: ByteSize,
    pub routing: Vec<RoutingRule>,
    /// Tenant guard: anchored regular expressions a routed value (an experiment name, or an id for
    /// `as: experiment_id`) must match; a value matching none goes to the default experiment. Empty: any value.
    pub allowed_experiments: Vec<String>,
    /// Whether an experiment named by `experiment_name` or a routing rule is created when absent.
    pub create_experiments: bool,
    /// Experiment creations per minute at most (a token bucket of this size); 0: no limit.
    pub max_experiment_creations_per_minute: u32,
    /// Client authentication through an authenticator extension (`auth: { authenticator: bearertokenauth }`).
    pub auth: Option<ClientAuthSettings>,
    pub sending_queue: QueueSettings,
    pub retry_on_failure: RetrySettings,
}

impl Default for MlflowConfig {
    fn default() -> Self {
        MlflowConfig {
            tracking_uri: None,
            experiment_id: None,
            experiment_name: None,
            workspace: None,
            token: None,
            token_file: None,
            username: None,
            password: None,
            tls: TlsSettings::default(),
            compression: Compression::Gzip,
            timeout: ConfigDuration(Duration::from_secs(30)),
            // ~1 s of MLflow (SQLite) ingest for spans grouped by trace: well inside the timeout.
            max_spans_per_request: 1000,
            // Big LLM inputs/outputs make spans large; 4 MiB keeps bodies below common proxy limits once gzipped.
            max_request_bytes: ByteSize(4 << 20),
            routing: Vec::new(),
            allowed_experiments: Vec::new(),
            create_experiments: true,
            // Enough for every team of a shared collector to appear at once, not for a client to flood MLflow.
            max_experiment_creations_per_minute: 60,
            auth: None,
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
        }
    }
}

/// Where spans are posted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A tracking server: `<uri>/v1/traces` and `<uri>/api/2.0/mlflow/...`.
    Mlflow(reqwest::Url),
    /// Databricks, resolved from the environment when the exporter starts.
    Databricks,
}

/// Credentials as configured (secrets are never logged; `Debug` is derived only for tests).
#[derive(Clone, PartialEq, Eq)]
pub enum AuthSource {
    None,
    Token(String),
    TokenFile(PathBuf),
    Basic {
        username: String,
        password: String,
    },
    /// An authenticator extension (`auth.authenticator`), by id; found when the exporter is built.
    Authenticator(String),
}

impl std::fmt::Debug for AuthSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthSource::None => f.write_str("None"),
            AuthSource::Token(_) => f.write_str("Token(..)"),
            AuthSource::TokenFile(p) => write!(f, "TokenFile({})", p.display()),
            AuthSource::Basic { username, .. } => write!(f, "Basic({username}, ..)"),
            AuthSource::Authenticator(id) => write!(f, "Authenticator({id})"),
        }
    }
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub destination: Destination,
    pub default_target: Target,
    pub workspace: Option<String>,
    pub auth: AuthSource,
    pub tls: TlsSettings,
    pub compression: Compression,
    pub timeout: Duration,
    pub max_spans: usize,
    /// `usize::MAX` when unlimited.
    pub max_bytes: usize,
    pub rules: Vec<Rule>,
    pub guard: Guard,
}

/// The tenant guard: which routed values are accepted and how experiments may be created.
#[derive(Clone, Debug)]
pub struct Guard {
    /// `None`: every routed value is accepted.
    pub allowed: Option<regex::RegexSet>,
    pub create: bool,
    /// 0: no limit.
    pub creations_per_minute: u32,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            allowed: None,
            create: true,
            creations_per_minute: 0,
        }
    }
}

pub use spanpipe_core::{Invalid, Key};

fn invalid(keys: &[Key], message: impl Into<String>) -> Invalid {
    Invalid {
        keys: keys.to_vec(),
        message: message.into(),
    }
}

use Key::{Index, Name};

/// MLflow's rule for workspace names: `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`.
pub fn valid_workspace(name: &str) -> bool {
    let b = name.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.first().is_some_and(inner)
        && b.last().is_some_and(inner)
        && b.iter().all(|c| inner(c) || *c == b'-')
}

/// MLflow experiment ids are integers ("Experiment ID must be a valid integer").
pub fn valid_experiment_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 19 && id.bytes().all(|c| c.is_ascii_digit())
}

impl MlflowConfig {
    /// Checks every rule and produces the settings the exporter runs with. Reads nothing from disk or the
    /// environment (`validate` must have no side effects); Databricks' variables are read at start.
    pub fn validate(&self) -> Result<Settings, Invalid> {
        let destination = self.destination()?;
        let default_target = match (&self.experiment_id, &self.experiment_name) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    &[Name("experiment_name")],
                    "set either experiment_id or experiment_name, not both",
                ));
            }
            (Some(id), None) if !valid_experiment_id(id.trim()) => {
                return Err(invalid(
                    &[Name("experiment_id")],
                    format!(
                        "{id:?} is not an MLflow experiment id (an integer such as \"0\" or \"42\")"
                    ),
                ));
            }
            (Some(id), None) => Target::Id(id.trim().to_string()),
            (None, Some(name)) if name.trim().is_empty() => {
                return Err(invalid(&[Name("experiment_name")], "must not be empty"));
            }
            (None, Some(name)) => Target::Name(name.clone()),
            (None, None) => Target::Id(DEFAULT_EXPERIMENT_ID.to_string()),
        };
        if let Some(ws) = &self.workspace
            && !valid_workspace(ws)
        {
            return Err(invalid(
                &[Name("workspace")],
                format!(
                    "{ws:?} is not a valid MLflow workspace name (lowercase letters, digits and inner hyphens: \
                     ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$)"
                ),
            ));
        }
        let auth = self.auth()?;
        if destination == Destination::Databricks && matches!(auth, AuthSource::Basic { .. }) {
            return Err(invalid(
                &[Name("username")],
                "Databricks takes a bearer token (token, token_file or DATABRICKS_TOKEN), not basic auth",
            ));
        }
        self.check_transport()?;
        if self.max_spans_per_request == 0 {
            return Err(invalid(
                &[Name("max_spans_per_request")],
                "must be at least 1",
            ));
        }
        let max_bytes = match self.max_request_bytes.0 {
            0 => usize::MAX,
            n if n < 1024 => {
                return Err(invalid(
                    &[Name("max_request_bytes")],
                    "must be at least 1KiB (or 0 for no limit)",
                ));
            }
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let rules = self
            .routing
            .iter()
            .enumerate()
            .map(|(i, r)| rule(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        let guard = self.guard()?;
        Ok(Settings {
            destination,
            default_target,
            workspace: self.workspace.clone(),
            auth,
            tls: self.tls.clone(),
            compression: self.compression,
            timeout: self.timeout.0,
            max_spans: self.max_spans_per_request,
            max_bytes,
            rules,
            guard,
        })
    }

    fn guard(&self) -> Result<Guard, Invalid> {
        let mut anchored = Vec::with_capacity(self.allowed_experiments.len());
        for (i, p) in self.allowed_experiments.iter().enumerate() {
            let at = [Name("allowed_experiments"), Index(i)];
            if p.is_empty() {
                return Err(invalid(&at, "must not be empty"));
            }
            let a = format!("^(?:{p})$");
            regex::RegexBuilder::new(&a)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| invalid(&at, format!("is not a valid regular expression: {e}")))?;
            anchored.push(a);
        }
        if !anchored.is_empty() && self.routing.is_empty() {
            return Err(invalid(
                &[Name("allowed_experiments")],
                "only applies to values chosen by `routing` rules, and there are none",
            ));
        }
        let allowed = match anchored.is_empty() {
            true => None,
            false => Some(
                regex::RegexSetBuilder::new(&anchored)
                    .size_limit(16 << 20)
                    .build()
                    .map_err(|e| invalid(&[Name("allowed_experiments")], e.to_string()))?,
            ),
        };
        Ok(Guard {
            allowed,
            create: self.create_experiments,
            creations_per_minute: self.max_experiment_creations_per_minute,
        })
    }

    fn destination(&self) -> Result<Destination, Invalid> {
        let key = [Name("tracking_uri")];
        let Some(uri) = self.tracking_uri.as_deref().map(str::trim) else {
            return Err(invalid(
                &key,
                "is required (http(s)://host:port of the MLflow server, or `databricks`)",
            ));
        };
        if uri == DATABRICKS {
            return Ok(Destination::Databricks);
        }
        let url = check_http_url(uri).map_err(|m| invalid(&key, m))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                &key,
                "must not contain credentials: use username/password, token or token_file",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(&key, "must not have a query or fragment"));
        }
        Ok(Destination::Mlflow(url))
    }

    fn auth(&self) -> Result<AuthSource, Invalid> {
        let basic = self.username.is_some() || self.password.is_some();
        let set = [
            self.token.is_some(),
            self.token_file.is_some(),
            basic,
            self.auth.is_some(),
        ];
        if set.iter().filter(|s| **s).count() > 1 {
            let key = if self.auth.is_some() {
                "auth"
            } else if self.token_file.is_some() {
                "token_file"
            } else {
                "username"
            };
            return Err(invalid(
                &[Name(key)],
                "set at most one of token, token_file, username/password, auth",
            ));
        }
        if let Some(a) = &self.auth {
            let id = a.authenticator.trim();
            if id.is_empty() {
                return Err(invalid(
                    &[Name("auth"), Name("authenticator")],
                    "name an authenticator extension",
                ));
            }
            return Ok(AuthSource::Authenticator(id.to_string()));
        }
        if let Some(t) = &self.token {
            if t.expose().trim().is_empty() {
                return Err(invalid(&[Name("token")], "must not be empty"));
            }
            return Ok(AuthSource::Token(t.expose().trim().to_string()));
        }
        if let Some(p) = &self.token_file {
            if p.as_os_str().is_empty() {
                return Err(invalid(&[Name("token_file")], "must not be empty"));
            }
            return Ok(AuthSource::TokenFile(p.clone()));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(AuthSource::Basic {
                username: u.clone(),
                password: p.expose().to_owned(),
            }),
            (Some(_), Some(_)) => Err(invalid(&[Name("username")], "must not be empty")),
            (Some(_), None) => Err(invalid(&[Name("password")], "is required with username")),
            (None, Some(_)) => Err(invalid(&[Name("username")], "is required with password")),
            (None, None) => Ok(AuthSource::None),
        }
    }

    fn check_transport(&self) -> Result<(), Invalid> {
        if self.compression == Compression::Zstd {
            return Err(invalid(
                &[Name("compression")],
                "MLflow answers zstd bodies with 400 \"Unsupported Content-Encoding\"; use gzip, deflate or none",
            ));
        }
        if self.tls.insecure {
            return Err(invalid(
                &[Name("tls"), Name("insecure")],
                "is for gRPC exporters; use an http:// tracking_uri for plaintext",
            ));
        }
        if self.tls.ca_file.is_some() && self.tls.insecure_skip_verify {
            return Err(invalid(
                &[Name("tls"), Name("insecure_skip_verify")],
                "cannot be combined with ca_file",
            ));
        }
        Ok(())
    }
}

fn rule(i: usize, r: &RoutingRule) -> Result<Rule, Invalid> {
    let at = |k: &'static str| [Name("routing"), Index(i), Name(k)];
    let non_empty =
        |v: &Option<String>, k: &'static str, what: &str| match v.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(invalid(&at(k), format!("is required with from: {what}"))),
        };
    let source = match r.from {
        RuleFrom::ResourceAttribute => {
            if r.header.is_some() {
                return Err(invalid(
                    &at("header"),
                    "only applies to from: request_header",
                ));
            }
            Source::ResourceAttribute(non_empty(&r.attribute, "attribute", "resource_attribute")?)
        }
        RuleFrom::RequestHeader => {
            if r.attribute.is_some() {
                return Err(invalid(
                    &at("attribute"),
                    "only applies to from: resource_attribute",
                ));
            }
            let h = non_empty(&r.header, "header", "request_header")?;
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(
                    &at("header"),
                    format!("{h:?} is not a valid header name"),
                ));
            }
            Source::RequestHeader(h.to_ascii_lowercase())
        }
    };
    Ok(Rule {
        source,
        value_as: r.value_as,
    })
}
