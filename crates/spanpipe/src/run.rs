//! Running the collector: telemetry first, then the graph exporters-first; SIGHUP reloads the config files,
//! SIGTERM/SIGINT drains it.

use std::path::PathBuf;

use anyhow::Context;
use spanpipe_config::{CollectorConfig, Node};
use spanpipe_core::Service;
use spanpipe_core::reload::ReloadError;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::cli::load;
use crate::registry::registry;
use crate::telemetry::{TelemetryConfig, init_logs, init_metrics};

pub fn run(files: &[PathBuf], sets: &[String]) -> anyhow::Result<()> {
    let node = load(files, sets)?;
    let (cfg, warnings) = CollectorConfig::from_node(&node)?;
    let telemetry = TelemetryConfig::from_node(&cfg.service.telemetry)?;
    init_logs(&telemetry.logs);
    for w in warnings.iter().chain(&registry().warnings(&cfg)) {
        tracing::warn!("{w}");
    }
    // rustls needs one process-wide crypto provider; ring builds fastest. An error means one is set already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Listening before anything starts: SIGHUP's default action would end the process.
        let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        let mut stop = StopSignals::new()?;
        init_metrics(&telemetry.metrics);
        let mut service = Service::build(&cfg, &registry())?;
        if let Err(e) = service.start().await {
            tracing::error!(error = %e, "start failed; stopping what started");
            service.shutdown().await;
            return Err(anyhow::anyhow!("start failed: {e}"));
        }
        tracing::info!("spanpipe is running");
        loop {
            tokio::select! {
                _ = hangup.recv() => reload(&mut service, files, sets, &cfg.service.telemetry).await,
                _ = stop.recv() => break,
            }
        }
        tracing::info!("shutting down: receivers stop, queues drain");
        let second = tokio::spawn(async {
            let _ = wait_for_signal().await;
            tracing::warn!("second signal: exiting without draining");
            std::process::exit(130);
        });
        service.shutdown().await;
        second.abort();
        tracing::info!("spanpipe stopped");
        Ok(())
    })
}

/// SIGTERM and SIGINT, listened to for the whole run so that one arriving during a reload is not missed.
struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<Self> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// SIGHUP: reads the config files (and `--set`s) again and applies what changed. An invalid configuration is
/// logged (`file:line:col: key: message`) and the running pipelines stay as they are.
async fn reload(service: &mut Service, files: &[PathBuf], sets: &[String], telemetry: &Node) {
    tracing::info!(files = ?files, "SIGHUP: reloading the configuration");
    let cfg = match load(files, sets).and_then(|node| CollectorConfig::from_node(&node)) {
        Ok((cfg, warnings)) => {
            for w in warnings {
                tracing::warn!("{w}");
            }
            cfg
        }
        Err(e) => {
            tracing::error!(error = %e, "reload rejected: invalid configuration; the running pipelines are unchanged");
            return;
        }
    };
    if !cfg.service.telemetry.same_value(telemetry) {
        tracing::warn!(
            "service.telemetry changed: logs and internal metrics settings take effect after a restart"
        );
    }
    match service.reload(cfg, &registry()).await {
        Ok(summary) => tracing::info!(%summary, "configuration reloaded"),
        Err(ReloadError::Invalid(e)) => {
            tracing::error!(error = %e, "reload rejected: invalid configuration; the running pipelines are unchanged");
        }
        Err(ReloadError::Start(e)) => {
            tracing::error!(error = %e, "reload abandoned: a new component failed to start; the running pipelines are unchanged");
        }
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("cannot listen for SIGINT")?,
    }
    Ok(())
}
