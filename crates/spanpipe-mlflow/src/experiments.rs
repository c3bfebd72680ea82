//! Experiment names → ids, resolved lazily (never in build or start, so MLflow being down at startup costs
//! nothing) and cached.
//!
//! Lookup uses `experiments/search` with a `name = '...'` filter rather than `experiments/get-by-name`, because
//! the OpenShift MLflow gateway may forbid the latter. An absent experiment is created (unless
//! `create_experiments: false`, then it is a permanent error for its spans), at most
//! `max_experiment_creations_per_minute` (over it: retryable with the delay until the next token); when another
//! writer creates it first (RESOURCE_ALREADY_EXISTS) we search again, including deleted experiments, so a deleted
//! one gives a clear error instead of a loop.
//!
//! Names resolve concurrently: one lock per name in flight, none global.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use spanpipe_core::ExportError;

use crate::api::{Api, Failure};
use crate::bucket::TokenBucket;
use crate::routing::Target;

/// Names we remember; routing by attribute could otherwise grow the cache without bound.
const MAX_CACHED: usize = 10_000;

/// Counters of experiment creation.
pub const CREATED_METRIC: &str = "spanpipe_mlflow_experiments_created_total";
pub const THROTTLED_METRIC: &str = "spanpipe_mlflow_experiments_creation_throttled_total";

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    id: String,
    active: bool,
}

/// How names may be resolved: whether absent experiments are created, and how fast.
#[derive(Debug, Clone)]
pub struct ResolverSettings {
    pub exporter: String,
    pub create: bool,
    /// 0: no limit.
    pub creations_per_minute: u32,
}

impl Default for ResolverSettings {
    fn default() -> Self {
        ResolverSettings {
            exporter: String::new(),
            create: true,
            creations_per_minute: 0,
        }
    }
}

/// The name → id cache, and one lock per name being resolved: concurrent exports never resolve one name twice,
/// and a slow name never holds back another.
pub struct Resolver {
    cache: Mutex<HashMap<String, String>>,
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    create: bool,
    creations: Option<Mutex<TokenBucket>>,
    created: metrics::Counter,
    throttled: metrics::Counter,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(&ResolverSettings::default())
    }
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
    pub fn new(s: &ResolverSettings) -> Self {
        metrics::describe_counter!(
            CREATED_METRIC,
            metrics::Unit::Count,
            "MLflow experiments the exporter created."
        );
        metrics::describe_counter!(
            THROTTLED_METRIC,
            metrics::Unit::Count,
            "Experiment creations deferred by max_experiment_creations_per_minute (the batch is retried later)."
        );
        let (created, throttled) = if s.exporter.is_empty() {
            (metrics::Counter::noop(), metrics::Counter::noop())
        } else {
            (
                metrics::counter!(CREATED_METRIC, "exporter" => s.exporter.clone()),
                metrics::counter!(THROTTLED_METRIC, "exporter" => s.exporter.clone()),
            )
        };
        Resolver {
            cache: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            create: s.create,
            creations: (s.creations_per_minute > 0)
                .then(|| Mutex::new(TokenBucket::per_minute(s.creations_per_minute))),
            created,
            throttled,
        }
    }

    /// The id of `target` if it is known without asking MLflow: ids as they are, names from the cache.
    pub fn ready(&self, target: &Target) -> Option<String> {
        match target {
            Target::Id(id) => Some(id.clone()),
            Target::Name(n) => self.cached(n),
        }
    }

    /// The id of `target`: ids as they are, names from the cache or MLflow (creating the experiment if absent
    /// and allowed). MLflow unreachable / 429 / 5xx, or creation over the rate limit → retryable: the batch stays
    /// queued.
    pub async fn resolve(&self, api: &Api, target: &Target) -> Result<String, ExportError> {
        let name = match target {
            Target::Id(id) => return Ok(id.clone()),
            Target::Name(n) => n,
        };
        if let Some(id) = self.cached(name) {
            return Ok(id);
        }
        let entry = InFlight::enter(self, name);
        let _this_name = entry.lock.lock().await;
        if let Some(id) = self.cached(name) {
            return Ok(id);
        }
        let id = self.lookup(api, name).await?;
        // Cached before the name's lock is released: a waiter finds it and asks MLflow nothing.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(name.clone(), id.clone());
        Ok(id)
    }

    async fn lookup(&self, api: &Api, name: &str) -> Result<String, ExportError> {
        let what = format!("mlflow experiment {name:?}");
        lookup_or_create(api, name, self)
            .await
            .map_err(|e| e.into_export_error(&what))?
    }

    /// Takes a creation token, or says how long until one is available.
    fn may_create(&self) -> Result<(), Duration> {
        let Some(bucket) = &self.creations else {
            return Ok(());
        };
        bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(std::time::Instant::now())
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

/// A name being resolved: its lock, shared by every export waiting for it. The last one out removes the entry,
/// also when its export is cancelled (the attempt's timeout), so the map holds only names in flight.
struct InFlight<'r> {
    resolver: &'r Resolver,
    name: &'r str,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl<'r> InFlight<'r> {
    fn enter(resolver: &'r Resolver, name: &'r str) -> Self {
        let lock = resolver
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_default()
            .clone();
        InFlight {
            resolver,
            name,
            lock,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self
            .resolver
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Clones are only made under the map's lock, so the count is exact: the map's and ours.
        if Arc::strong_count(&self.lock) <= 2 {
            map.remove(self.name);
        }
    }
}

/// Outer error: the request failed; inner error: MLflow answered but the experiment is unusable (permanent), or
/// creating it must wait (retryable).
async fn lookup_or_create(
    api: &Api,
    name: &str,
    r: &Resolver,
) -> Result<Result<String, ExportError>, Failure> {
    if let Some(found) = search(api, name, false).await? {
        return Ok(Ok(found.id));
    }
    if !r.create {
        return Ok(Err(ExportError::permanent(format!(
            "mlflow experiment {name:?} does not exist and create_experiments is false: create it in MLflow, or \
             route these spans elsewhere (allowed_experiments, routing)"
        ))));
    }
    if let Err(wait) = r.may_create() {
        r.throttled.increment(1);
        return Ok(Err(ExportError::Retryable {
            reason: format!(
                "mlflow experiment {name:?}: creation deferred by max_experiment_creations_per_minute; retrying in \
                 {:.1}s",
                wait.as_secs_f64()
            ),
            delay: Some(wait),
        }));
    }
    match api
        .post_json("experiments/create", &json!({ "name": name }))
        .await
    {
        Ok(v) => match v.get("experiment_id").and_then(|i| i.as_str()) {
            Some(id) => {
                r.created.increment(1);
                tracing::info!(experiment = name, id, "created MLflow experiment");
                Ok(Ok(id.to_string()))
            }
            None => Ok(Err(ExportError::permanent(format!(
                "mlflow experiment {name:?}: create answered without an experiment_id"
            )))),
        },
        Err(f) if f.code() == Some("RESOURCE_ALREADY_EXISTS") => {
            match search(api, name, true).await? {
                Some(Found { id, active: true }) => Ok(Ok(id)),
                Some(Found { id, active: false }) => Ok(Err(ExportError::permanent(format!(
                    "mlflow experiment {name:?}: experiment {id} is deleted; restore it (mlflow experiments restore \
                 --experiment-id {id}) or route to another name"
                )))),
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

    #[tokio::test]
    async fn in_flight_entries_leave_with_the_last_waiter_even_when_cancelled() {
        let r = Resolver::default();
        let a = InFlight::enter(&r, "x");
        let b = InFlight::enter(&r, "x");
        assert!(Arc::ptr_eq(&a.lock, &b.lock), "one lock per name");
        let held = a.lock.clone().lock_owned().await;
        // A waiter whose export is cancelled while it waits.
        let waited = tokio::time::timeout(Duration::from_millis(20), b.lock.lock())
            .await
            .is_ok();
        assert!(!waited);
        drop(b);
        assert_eq!(r.in_flight.lock().unwrap().len(), 1, "a still holds it");
        drop(held);
        drop(a);
        assert!(r.in_flight.lock().unwrap().is_empty());
    }

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
