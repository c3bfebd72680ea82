//! Credentials for every request (OTLP and experiments API): a static bearer token, a token file that is re-read
//! when it changes (Kubernetes projects rotating service-account tokens into a file), or basic auth.
//!
//! Secrets never reach logs or error messages: errors name the file, never its content.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::config::AuthSource;

/// How often a token file is checked for changes (by mtime and size) at most, unless a 401 forces a check.
pub const TOKEN_FILE_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Why no credentials could be produced: a token file that cannot be read (yet). Retryable, since the file may
/// appear or be fixed while spans wait in the queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// No `Debug`: it holds the token.
#[derive(Default)]
struct FileState {
    token: Option<Arc<str>>,
    stamp: Option<(SystemTime, u64)>,
    checked: Option<Instant>,
}

/// A token file and what we last read from it.
pub struct TokenFile {
    path: PathBuf,
    state: Mutex<FileState>,
}

impl TokenFile {
    pub fn new(path: PathBuf) -> Self {
        TokenFile {
            path,
            state: Mutex::new(FileState::default()),
        }
    }

    /// The current token: re-read when the file's mtime or size changed, checking at most every
    /// [`TOKEN_FILE_CHECK_EVERY`] unless `force`. Returns whether the token changed since the last call too.
    pub fn token(&self, force: bool) -> Result<(Arc<str>, bool), AuthError> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let due = force
            || st
                .checked
                .is_none_or(|t| t.elapsed() >= TOKEN_FILE_CHECK_EVERY);
        if !due && let Some(t) = &st.token {
            return Ok((t.clone(), false));
        }
        st.checked = Some(Instant::now());
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| AuthError(format!("token_file {}: {e}", self.path.display())))?;
        let stamp = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        if let Some(t) = &st.token
            && st.stamp == Some(stamp)
        {
            return Ok((t.clone(), false));
        }
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| AuthError(format!("token_file {}: {e}", self.path.display())))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(AuthError(format!(
                "token_file {} is empty",
                self.path.display()
            )));
        }
        let changed = st.token.as_deref().is_some_and(|old| old != token);
        if changed {
            tracing::info!(path = %self.path.display(), "token_file changed; using the new token");
        }
        let token: Arc<str> = Arc::from(token);
        st.token = Some(token.clone());
        st.stamp = Some(stamp);
        Ok((token, changed))
    }
}

/// Credentials in the form requests need (no `Debug`: it holds secrets).
pub enum Auth {
    None,
    Bearer(String),
    File(TokenFile),
    Basic {
        username: String,
        password: String,
    },
    /// An authenticator extension (`auth.authenticator`): its header on every request.
    Client(std::sync::Arc<dyn spanpipe_core::auth::ClientAuth>),
}

impl Auth {
    pub fn from_source(src: &AuthSource) -> Self {
        match src {
            AuthSource::None => Auth::None,
            AuthSource::Token(t) => Auth::Bearer(t.clone()),
            AuthSource::TokenFile(p) => Auth::File(TokenFile::new(p.clone())),
            AuthSource::Basic { username, password } => Auth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            // Resolved to `Auth::Client` by the exporter, which holds the extension.
            AuthSource::Authenticator(_) => Auth::None,
        }
    }

    /// Adds the credentials to a request.
    pub fn apply(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, AuthError> {
        Ok(match self {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::File(f) => req.bearer_auth(f.token(false)?.0),
            Auth::Basic { username, password } => req.basic_auth(username, Some(password)),
            Auth::Client(a) => {
                let c = a
                    .credential()
                    .map_err(|e| AuthError(format!("auth.authenticator: {e}")))?;
                let mut value = http::HeaderValue::from_str(c.value.expose()).map_err(|_| {
                    AuthError(format!(
                        "auth.authenticator: the credential for {} is not a valid header value",
                        c.header
                    ))
                })?;
                value.set_sensitive(true);
                req.header(c.header.as_str(), value)
            }
        })
    }

    /// After a 401: re-reads a token file at once. True when it now holds a different token, so one more try
    /// is worth it; static credentials cannot change.
    pub fn refresh_after_unauthorized(&self) -> bool {
        match self {
            Auth::File(f) => f.token(true).is_ok_and(|(_, changed)| changed),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_trimmed_cached_and_reloaded_on_change() {
        let dir = std::env::temp_dir().join(format!("spanpipe-mlflow-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        let f = TokenFile::new(path.clone());
        assert!(f.token(false).unwrap_err().0.contains("token_file"));
        std::fs::write(&path, "first\n").unwrap();
        // The failed read counted as a check; a forced check sees the file.
        assert_eq!(&*f.token(true).unwrap().0, "first");
        std::fs::write(&path, "second-token\n").unwrap();
        // Within the check interval the cached token is used...
        assert_eq!(&*f.token(false).unwrap().0, "first");
        // ...a forced check (after a 401) reads the new one and reports the change.
        let (t, changed) = f.token(true).unwrap();
        assert_eq!((&*t, changed), ("second-token", true));
        assert!(
            !f.token(true).unwrap().1,
            "unchanged file: no change reported"
        );
        std::fs::write(&path, "  \n").unwrap();
        let err = f.token(true).unwrap_err();
        assert!(
            err.0.contains("is empty") && !err.0.contains("second"),
            "{err}"
        );
        let auth = Auth::File(TokenFile::new(path.clone()));
        std::fs::write(&path, "third").unwrap();
        assert!(
            !auth.refresh_after_unauthorized(),
            "first read is not a change"
        );
        std::fs::write(&path, "fourth-x").unwrap();
        assert!(auth.refresh_after_unauthorized());
        assert!(!Auth::Bearer("x".into()).refresh_after_unauthorized());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = format!(
            "{:?} {:?}",
            AuthSource::Token("s3cr3t".into()),
            AuthSource::Basic {
                username: "bob".into(),
                password: "hunter2".into()
            }
        );
        assert!(!s.contains("s3cr3t") && !s.contains("hunter2"), "{s}");
    }
}
