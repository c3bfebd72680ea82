//! `redaction` settings: the OTel Collector contrib names where they exist, spanpipe's GenAI additions otherwise.

mod presets;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use spanpipe_config::{ByteSize, Secret};

pub use presets::{PRESETS, Preset, luhn_valid};

/// How a masked match (or a whole value under `blocked_key_patterns`) is replaced.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum HashFunction {
    /// `****`, as the OTel Collector does without a hash function.
    #[default]
    #[serde(rename = "none", alias = "")]
    None,
    #[serde(rename = "md5")]
    Md5,
    #[serde(rename = "sha1")]
    Sha1,
    /// SHA3-256.
    #[serde(rename = "sha3")]
    Sha3,
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

/// Which diagnostic attributes (`redaction.masked.count`, ...) are added to changed attribute sets.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Summary {
    /// Nothing added (the OTel default).
    #[default]
    Silent,
    /// Counts only.
    Info,
    /// Counts and the key names (names may leak information; for setting up a configuration).
    Debug,
}

/// `truncate`: spanpipe's size cap for named attributes.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TruncateConfig {
    /// Attribute keys whose string values are capped.
    pub keys: Vec<String>,
    /// Largest value kept, in bytes (`64KiB` works); 0 turns truncation off.
    pub max_bytes: ByteSize,
    /// Appended where a value was cut (inside the last kept JSON string when the value is JSON).
    pub marker: String,
}

impl Default for TruncateConfig {
    fn default() -> Self {
        TruncateConfig {
            keys: [
                "mlflow.spanInputs",
                "mlflow.spanOutputs",
                "gen_ai.input.messages",
                "gen_ai.output.messages",
                "gen_ai.system_instructions",
                "gen_ai.prompt",
                "gen_ai.completion",
                "input.value",
                "output.value",
            ]
            .map(String::from)
            .to_vec(),
            max_bytes: ByteSize(0),
            marker: "...[truncated]".into(),
        }
    }
}

/// The `redaction` processor's configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// Keep every attribute key (`allowed_keys` is then ignored). The OTel default is `false`: fail closed.
    pub allow_all_keys: bool,
    /// With `allow_all_keys: false`, the only keys kept (allow-list mode); all others are deleted.
    pub allowed_keys: Vec<String>,
    /// Keys passed through untouched (neither deleted nor masked).
    pub ignored_keys: Vec<String>,
    /// Regexes of keys passed through untouched.
    pub ignored_key_patterns: Vec<String>,
    /// Regexes of keys whose whole value is masked.
    pub blocked_key_patterns: Vec<String>,
    /// Regexes masked wherever they match inside string values.
    pub blocked_values: Vec<String>,
    /// spanpipe: named regex sets masked like `blocked_values` (`email`, `api_key`, `bearer_token`, `credit_card`).
    pub blocked_value_presets: Vec<String>,
    /// Regexes: a blocked match that matches one of these is left alone.
    pub allowed_values: Vec<String>,
    /// Also mask ints, doubles and bools (by their string form); a masked one becomes a string.
    pub redact_all_types: bool,
    pub hash_function: HashFunction,
    /// Key of the `hmac-*` hash functions.
    pub hmac_key: Secret,
    pub summary: Summary,
    /// spanpipe: when a string value is JSON, mask its decoded string leaves and re-encode them, so the value
    /// stays valid JSON and escapes cannot hide a match.
    pub json_aware: bool,
    /// spanpipe: also process resource and instrumentation-scope attributes (the OTel processor always does).
    pub apply_to_resource: bool,
    pub truncate: TruncateConfig,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        RedactionConfig {
            allow_all_keys: false,
            allowed_keys: Vec::new(),
            ignored_keys: Vec::new(),
            ignored_key_patterns: Vec::new(),
            blocked_key_patterns: Vec::new(),
            blocked_values: Vec::new(),
            blocked_value_presets: Vec::new(),
            allowed_values: Vec::new(),
            redact_all_types: false,
            hash_function: HashFunction::None,
            hmac_key: Secret::default(),
            summary: Summary::Silent,
            json_aware: true,
            apply_to_resource: true,
            truncate: TruncateConfig::default(),
        }
    }
}

/// A config problem: the key path below the processor (e.g. `["blocked_values"]`) and why.
pub type Invalid = (Vec<&'static str>, String);

impl RedactionConfig {
    /// Cross-field checks that need no compilation (regexes are checked when the rules are built).
    pub fn validate(&self) -> Result<(), Invalid> {
        for name in &self.blocked_value_presets {
            if !PRESETS.iter().any(|p| p.name == name) {
                let known: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
                return Err((
                    vec!["blocked_value_presets"],
                    format!("unknown preset {name:?} (known: {})", known.join(", ")),
                ));
            }
        }
        if matches!(
            self.hash_function,
            HashFunction::HmacSha256 | HashFunction::HmacSha512
        ) && self.hmac_key.is_empty()
        {
            return Err((
                vec!["hmac_key"],
                "required when hash_function is hmac-sha256 or hmac-sha512".into(),
            ));
        }
        let max = self.truncate.max_bytes.0;
        let floor = self.truncate.marker.len() as u64 + 16;
        if max != 0 && max < floor {
            return Err((
                vec!["truncate", "max_bytes"],
                format!(
                    "must be 0 (off) or at least {floor} bytes (the marker plus room for content)"
                ),
            ));
        }
        Ok(())
    }
}
