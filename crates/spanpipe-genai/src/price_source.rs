//! A price table file kept current: read at build (an invalid file is a configuration error), then re-read when
//! its modification time or size changes (checked every `reload_interval`) and on SIGHUP. A file that turns
//! invalid later is logged and counted, and the last good table stays in use.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use metrics::Counter;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::price::PriceTable;

/// The file's identity as last read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

/// One price table file and the table last read from it.
pub struct PriceSource {
    path: PathBuf,
    table: RwLock<Arc<PriceTable>>,
    last: Mutex<Option<Stamp>>,
    reloads_ok: Counter,
    reloads_failed: Counter,
}

impl PriceSource {
    /// Reads the file once; an error names the file and what is wrong.
    pub fn open(path: PathBuf, component: &str) -> Result<PriceSource, String> {
        let first = stamp(&path);
        let table = PriceTable::load(&path)?;
        metrics::describe_counter!(
            "spanpipe_genai_price_table_reloads_total",
            metrics::Unit::Count,
            "Price table reloads (file changed or SIGHUP), by result."
        );
        let c = |result: &'static str| {
            metrics::counter!("spanpipe_genai_price_table_reloads_total",
                "component" => component.to_string(), "result" => result)
        };
        Ok(PriceSource {
            path,
            table: RwLock::new(Arc::new(table)),
            last: Mutex::new(first),
            reloads_ok: c("ok"),
            reloads_failed: c("failed"),
        })
    }

    /// The table in use.
    pub fn table(&self) -> Arc<PriceTable> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the file when it changed (or always, with `force`); true when a new table is in use.
    pub fn reload(&self, force: bool) -> bool {
        let now = stamp(&self.path);
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *last == now {
                return false;
            }
            *last = now;
        }
        match PriceTable::load(&self.path) {
            Ok(t) => {
                tracing::info!(file = %self.path.display(), entries = t.len(), currency = %t.currency, "price table loaded");
                *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(t);
                self.reloads_ok.increment(1);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "price table not reloaded: invalid; the previous table stays in use");
                self.reloads_failed.increment(1);
                false
            }
        }
    }

    /// Starts the watcher: a check every `every` and a forced reload on each SIGHUP (the binary listens for
    /// SIGHUP too, to reload its configuration; an unchanged component is kept across that reload, so the
    /// table is re-read here).
    pub fn watch(self: &Arc<Self>, every: Duration, cancel: CancellationToken) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                #[cfg(unix)]
                let hangup = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup = std::future::pending::<Option<()>>();
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => { me.reload(false); }
                    _ = hangup => { me.reload(true); }
                }
            }
        })
    }
}
