//! `bearertokenauth`: accepts a request whose `Authorization` header is `<scheme> <token>` for one of the
//! configured tokens. With `filename`, the file is re-read every second and a changed content replaces the token
//! set (a rotated Kubernetes secret takes effect within about a second, without a restart); a file that becomes
//! unreadable or empty keeps the last good tokens and is logged once.
//!
//! Tokens are never logged and never put into error messages; comparison takes the same time wherever a
//! candidate differs.
//!
//! The same extension authenticates an exporter's requests (`auth: { authenticator: bearertokenauth/<name> }` on
//! `otlp`, `otlp_http`, `mlflow`): every request carries `<header>: <scheme> <token>` with `token`, the first of
//! `tokens`, or the first line of `filename` as last read (a rotated file is used within about a second).

pub mod config;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use spanpipe_core::auth::{ClientAuth, ClientCredential};
use spanpipe_core::{
    AuthError, BuildContext, ComponentError, ConfigError, Extension, ExtensionFactory, Node,
    ServerAuth,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::BearerTokenAuthConfig;

/// How often `filename` is re-read.
pub const FILE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Builds `bearertokenauth` extensions.
pub struct BearerTokenAuthFactory;

impl ExtensionFactory for BearerTokenAuthFactory {
    fn type_name(&self) -> &'static str {
        "bearertokenauth"
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<Arc<dyn Extension>, ConfigError> {
        let cfg: BearerTokenAuthConfig = ctx.config(node)?;
        config::validate(&cfg, ctx, node)?;
        Ok(Arc::new(BearerTokenAuth::new(ctx.id.to_string(), cfg)))
    }
}

/// The extension: owns the token set and, with `filename`, the task that keeps it fresh.
pub struct BearerTokenAuth {
    id: String,
    filename: Option<PathBuf>,
    checker: Arc<TokenChecker>,
    stop: CancellationToken,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl BearerTokenAuth {
    pub fn new(id: String, cfg: BearerTokenAuthConfig) -> Self {
        let mut tokens: Vec<String> = cfg
            .tokens
            .iter()
            .map(|t| t.expose().trim().to_owned())
            .collect();
        tokens.extend(cfg.token.as_ref().map(|t| t.expose().trim().to_owned()));
        BearerTokenAuth {
            id,
            filename: cfg.filename,
            checker: Arc::new(TokenChecker {
                header: cfg.header.to_ascii_lowercase(),
                scheme: cfg.scheme,
                tokens: RwLock::new(Arc::new(tokens)),
            }),
            stop: CancellationToken::new(),
            watcher: Mutex::new(None),
        }
    }

    /// The checker receivers use (also what [`Extension::server_auth`] hands out).
    pub fn checker(&self) -> Arc<TokenChecker> {
        self.checker.clone()
    }
}

#[async_trait]
impl Extension for BearerTokenAuth {
    /// Reads `filename` (an unreadable or empty file fails the start) and starts re-reading it.
    async fn start(&self) -> Result<(), ComponentError> {
        let Some(path) = self.filename.clone() else {
            return Ok(());
        };
        let tokens = read_tokens(&path).map_err(|e| ComponentError::new(&self.id, e))?;
        self.checker.set(tokens.clone());
        let checker = self.checker.clone();
        let stop = self.stop.clone();
        let id = self.id.clone();
        let task = tokio::spawn(async move {
            let mut last = tokens;
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(FILE_CHECK_EVERY) => {}
                }
                let file = path.clone();
                let read = tokio::task::spawn_blocking(move || read_tokens(&file)).await;
                match read {
                    Ok(Ok(tokens)) => {
                        if failing {
                            tracing::info!(extension = %id, "token file readable again");
                            failing = false;
                        }
                        if tokens != last {
                            tracing::info!(extension = %id, path = %path.display(), count = tokens.len(), "token file changed; using the new tokens");
                            checker.set(tokens.clone());
                            last = tokens;
                        }
                    }
                    Ok(Err(e)) if !failing => {
                        tracing::warn!(extension = %id, error = %e, "keeping the previous tokens");
                        failing = true;
                    }
                    _ => {}
                }
            }
        });
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(())
    }

    async fn shutdown(&self) {
        self.stop.cancel();
        let task = self
            .watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn server_auth(&self) -> Option<Arc<dyn ServerAuth>> {
        Some(self.checker.clone())
    }

    fn client_auth(&self) -> Option<Arc<dyn ClientAuth>> {
        Some(self.checker.clone())
    }
}

/// The accepted tokens of one file: every non-empty line, trimmed. Errors name the file, never its content.
fn read_tokens(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() {
        return Err(format!("token file {} is empty", path.display()));
    }
    Ok(tokens)
}

/// Compares a request's credentials with the current tokens. No `Debug`: it holds them.
pub struct TokenChecker {
    header: String,
    scheme: String,
    tokens: RwLock<Arc<Vec<String>>>,
}

impl TokenChecker {
    fn set(&self, tokens: Vec<String>) {
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tokens);
    }

    fn current(&self) -> Arc<Vec<String>> {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ServerAuth for TokenChecker {
    fn credential_headers(&self) -> Vec<String> {
        vec![self.header.to_ascii_lowercase()]
    }

    fn authenticate<'h>(&self, header: &dyn Fn(&str) -> Option<&'h str>) -> Result<(), AuthError> {
        let value = header(&self.header)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AuthError(format!("missing or empty {} header", self.header)))?;
        let token = if self.scheme.is_empty() {
            value
        } else {
            match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case(&self.scheme) => token.trim(),
                _ => {
                    return Err(AuthError(format!(
                        "{} header does not use the {} scheme",
                        self.header, self.scheme
                    )));
                }
            }
        };
        // Compare with every token, so the time taken does not tell which one (or how much of it) matched.
        let mut matched = false;
        for t in self.current().iter() {
            matched |= constant_time_eq(t.as_bytes(), token.as_bytes());
        }
        if matched {
            Ok(())
        } else {
            Err(AuthError(format!(
                "{} header does not match an accepted token",
                self.header
            )))
        }
    }
}

/// The client side: the first current token, after the scheme, in the configured header.
impl ClientAuth for TokenChecker {
    fn credential(&self) -> Result<ClientCredential, AuthError> {
        let tokens = self.current();
        let Some(token) = tokens.first() else {
            return Err(AuthError(
                "no token yet (a token file is read when the extension starts)".into(),
            ));
        };
        let value = if self.scheme.is_empty() {
            token.clone()
        } else {
            format!("{} {token}", self.scheme)
        };
        Ok(ClientCredential {
            header: self.header.clone(),
            value: value.into(),
        })
    }
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
