//! Experiment names → ids, resolved lazily (never in build or start, so MLflow being down at startup costs
//! nothing) and cached.
//!
//! Lookup uses `experiments/search` with a `name = '...'` filter rather than `experiments/get-by-name`, because
//! the OpenShift MLflow gateway may forbid the latter. An absent experiment is created; when another writer
//! creates it first (RESOURCE_ALREADY_EXISTS) we search again, including deleted experiments, so a deleted one
//! gives a clear error instead of a loop.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;
use spanpipe_core::ExportError;

use crate::api::{Api, Failure};
use crate::routing::Target;

/// Names we remember; routing by attribute could otherwise grow the cache without bound.
const MAX_CACHED: usize = 10_000;

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    id: String,
    active: bool,
}

/// The name → id cache and the lock that keeps concurrent exports from resolving one name twice.
#[derive(Default)]
pub struct Resolver {
    cache: Mutex<HashMap<String, String>>,
    resolving: tokio::sync::Mutex<()>,
}

/// The filter for an exact name match. MLflow's filter parser strips the quotes without unescaping anything,
/// so a name is written in the quote kind it does not contain; `None` when it contains both (or a backslash,
/// which the tokenizer reads as an escape).
pub fn name_filter(name: &str) -> Option<String> {
    if name.contains('\\') {
        return None;
    }
    match (name.contains('\''), name.contains('"')) {
        (false, _) => Some(format!("name = '{name}'")),
        (true, false) => Some(format!("name = \"{name}\"")),
        (true, true) => None,
    }
}

impl Resolver {
    /// The id of `target`: ids as they are, names from the cache or MLflow (creating the experiment if absent).
    /// MLflow unreachable / 429 / 5xx → retryable: the batch stays queued.
    pub async fn resolve(&self, api: &Api, target: &Target) -> Result<String, ExportError> {
        let name = match target {
            Target::Id(id) => return Ok(id.clone()),
            Target::Name(n) => n,
        };
        if let Some(id) = self.cached(name) {
            return Ok(id);
        }
        let _one_at_a_time = self.resolving.lock().await;
        if let Some(id) = self.cached(name) {
            return Ok(id);
        }
        let what = format!("mlflow experiment {name:?}");
        let id = lookup_or_create(api, name)
            .await
            .map_err(|e| e.into_export_error(&what))?
            .map_err(ExportError::permanent)?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(name.clone(), id.clone());
        Ok(id)
    }

    /// Forgets a name (its experiment was not found when spans were sent to it: deleted and purged, or the
    /// server's database was replaced).
    pub fn invalidate(&self, name: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    fn cached(&self, name: &str) -> Option<String> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

/// Outer error: the request failed; inner error: MLflow answered but the experiment is unusable (permanent).
async fn lookup_or_create(api: &Api, name: &str) -> Result<Result<String, String>, Failure> {
    if let Some(found) = search(api, name, false).await? {
        return Ok(Ok(found.id));
    }
    match api
        .post_json("experiments/create", &json!({ "name": name }))
        .await
    {
        Ok(v) => match v.get("experiment_id").and_then(|i| i.as_str()) {
            Some(id) => {
                tracing::info!(experiment = name, id, "created MLflow experiment");
                Ok(Ok(id.to_string()))
            }
            None => Ok(Err(format!(
                "mlflow experiment {name:?}: create answered without an experiment_id"
            ))),
        },
        Err(f) if f.code() == Some("RESOURCE_ALREADY_EXISTS") => {
            match search(api, name, true).await? {
                Some(Found { id, active: true }) => Ok(Ok(id)),
                Some(Found { id, active: false }) => Ok(Err(format!(
                    "mlflow experiment {name:?}: experiment {id} is deleted; restore it (mlflow experiments restore \
                 --experiment-id {id}) or route to another name"
                ))),
                None => Err(Failure::Transport(ExportError::retryable(
                    "created concurrently by another client but not found yet",
                ))),
            }
        }
        Err(f) => Err(f),
    }
}

/// Looks `name` up; `all` includes deleted experiments.
async fn search(api: &Api, name: &str, all: bool) -> Result<Option<Found>, Failure> {
    let Some(filter) = name_filter(name) else {
        return get_by_name(api, name).await;
    };
    let body = json!({
        "filter": filter,
        "max_results": 10,
        "view_type": if all { "ALL" } else { "ACTIVE_ONLY" },
    });
    let answer = match api.post_json("experiments/search", &body).await {
        Ok(v) => v,
        // A filter the server's parser rejects: the exact lookup still works on plain MLflow.
        Err(f) if f.status() == Some(400) => return get_by_name(api, name).await,
        Err(f) => return Err(f),
    };
    let experiments = answer.get("experiments").and_then(|e| e.as_array());
    Ok(experiments
        .into_iter()
        .flatten()
        .find(|e| e.get("name").and_then(|n| n.as_str()) == Some(name))
        .and_then(found))
}

async fn get_by_name(api: &Api, name: &str) -> Result<Option<Found>, Failure> {
    match api
        .get_json("experiments/get-by-name", &[("experiment_name", name)])
        .await
    {
        Ok(v) => Ok(v.get("experiment").and_then(found)),
        Err(f) if f.code() == Some("RESOURCE_DOES_NOT_EXIST") => Ok(None),
        Err(f) => Err(f),
    }
}

fn found(e: &serde_json::Value) -> Option<Found> {
    Some(Found {
        id: e.get("experiment_id")?.as_str()?.to_string(),
        active: e.get("lifecycle_stage").and_then(|s| s.as_str()) != Some("deleted"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_with_the_quote_they_do_not_contain() {
        assert_eq!(name_filter("agents").as_deref(), Some("name = 'agents'"));
        assert_eq!(name_filter("bob's").as_deref(), Some("name = \"bob's\""));
        assert_eq!(
            name_filter("say \"hi\"").as_deref(),
            Some("name = 'say \"hi\"'")
        );
        assert_eq!(name_filter("it's \"x\""), None);
        assert_eq!(name_filter("a\\b"), None);
    }
}
