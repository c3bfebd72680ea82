//! `extensions.bearertokenauth`: the OTel Collector's option names and defaults.

use std::path::PathBuf;

use serde::Deserialize;
use spanpipe_core::{BuildContext, ConfigError, Node, Secret};

/// No `Debug`: it holds tokens.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BearerTokenAuthConfig {
    /// The header carrying the credentials.
    pub header: String,
    /// Prefix before the token (`<scheme> <token>`); empty means the header is the bare token.
    pub scheme: String,
    /// One accepted token.
    pub token: Option<Secret>,
    /// Several accepted tokens (for rotation without downtime: add the new one, then drop the old).
    pub tokens: Vec<Secret>,
    /// A file holding the accepted tokens, one per line; re-read when its content changes.
    pub filename: Option<PathBuf>,
}

impl Default for BearerTokenAuthConfig {
    fn default() -> Self {
        BearerTokenAuthConfig {
            header: "authorization".into(),
            scheme: "Bearer".into(),
            token: None,
            tokens: Vec::new(),
            filename: None,
        }
    }
}

/// Exactly one source of tokens, none of them empty.
pub fn validate(
    cfg: &BearerTokenAuthConfig,
    ctx: &BuildContext,
    node: &Node,
) -> Result<(), ConfigError> {
    let sources = [
        cfg.token.is_some(),
        !cfg.tokens.is_empty(),
        cfg.filename.is_some(),
    ];
    match sources.iter().filter(|s| **s).count() {
        0 => {
            return Err(ctx.invalid(node, &[], "set one of `token`, `tokens` or `filename`"));
        }
        1 => {}
        _ => {
            return Err(ctx.invalid(
                node,
                &["filename"],
                "set only one of `token`, `tokens` or `filename`",
            ));
        }
    }
    if cfg
        .token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        return Err(ctx.invalid(node, &["token"], "must not be empty"));
    }
    if cfg.tokens.iter().any(|t| t.expose().trim().is_empty()) {
        return Err(ctx.invalid(node, &["tokens"], "must not contain an empty token"));
    }
    if cfg
        .filename
        .as_ref()
        .is_some_and(|f| f.as_os_str().is_empty())
    {
        return Err(ctx.invalid(node, &["filename"], "must not be empty"));
    }
    if cfg.header.trim().is_empty() || !cfg.header.is_ascii() {
        return Err(ctx.invalid(node, &["header"], "must be a header name"));
    }
    if cfg.scheme.contains(char::is_whitespace) {
        return Err(ctx.invalid(node, &["scheme"], "must not contain spaces"));
    }
    Ok(())
}
