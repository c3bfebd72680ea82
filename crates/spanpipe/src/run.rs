//! Running the collector: telemetry first, then the graph exporters-first; SIGTERM/SIGINT drains it.

use std::path::PathBuf;

use anyhow::Context;
use spanpipe_config::CollectorConfig;
use spanpipe_core::Service;

use crate::cli::load;
use crate::registry::registry;
use crate::telemetry::{TelemetryConfig, init_logs, init_metrics};

pub fn run(files: &[PathBuf], sets: &[String]) -> anyhow::Result<()> {
    let node = load(files, sets)?;
    let (cfg, warnings) = CollectorConfig::from_node(&node)?;
    let telemetry = TelemetryConfig::from_node(&cfg.service.telemetry)?;
    init_logs(&telemetry.logs);
    for w in warnings {
        tracing::warn!("{w}");
    }
    // rustls needs one process-wide crypto provider; ring builds fastest. An error means one is set already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        init_metrics(&telemetry.metrics);
        let service = Service::build(&cfg, &registry())?;
        if let Err(e) = service.start().await {
            tracing::error!(error = %e, "start failed; stopping what started");
            service.shutdown().await;
            return Err(anyhow::anyhow!("start failed: {e}"));
        }
        tracing::info!("spanpipe is running");
        wait_for_signal().await?;
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

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("cannot listen for SIGINT")?,
    }
    Ok(())
}
