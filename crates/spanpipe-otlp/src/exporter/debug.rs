//! `debug`: prints what flows through a pipeline to stderr, for troubleshooting a configuration. `basic` costs
//! nothing (the batch's item count), `normal` scans span bytes without decoding, `detailed` decodes everything.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use spanpipe_config::Duration as ConfigDuration;
use spanpipe_core::wire::scan_traces;
use spanpipe_core::{
    Batch, BuildContext, BuiltExporter, ConfigError, ExportError, Exporter, ExporterFactory,
    ExporterSettings, Node, QueueSettings, RetrySettings, Signal,
};

use super::item_noun;
use crate::json::protobuf_to_json_pretty;

/// How much the `debug` exporter prints.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verbosity {
    /// One line per batch.
    #[default]
    Basic,
    /// One line per span (counts for metrics and logs).
    Normal,
    /// The whole request as indented OTLP/JSON.
    Detailed,
}

/// Configuration of the `debug` exporter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    pub verbosity: Verbosity,
    /// Accepted for Collector configs; every batch is printed.
    pub sampling_initial: u32,
    /// Accepted; see `sampling_initial`.
    pub sampling_thereafter: u32,
    /// Accepted; output always goes to stderr.
    pub use_internal_logger: bool,
    pub sending_queue: QueueSettings,
    /// Disabled by default: printing fails only on a corrupt batch, which a retry does not fix.
    pub retry_on_failure: RetrySettings,
    /// None by default: a write to stderr cannot be interrupted anyway.
    pub timeout: ConfigDuration,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            verbosity: Verbosity::Basic,
            sampling_initial: 2,
            sampling_thereafter: 1,
            use_internal_logger: true,
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings {
                enabled: false,
                ..RetrySettings::default()
            },
            timeout: ConfigDuration::default(),
        }
    }
}

/// Builds `debug` exporters.
pub struct DebugExporterFactory;

impl ExporterFactory for DebugExporterFactory {
    fn type_name(&self) -> &'static str {
        "debug"
    }

    fn signals(&self) -> &'static [Signal] {
        super::ALL_SIGNALS
    }

    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<BuiltExporter, ConfigError> {
        let cfg: DebugConfig = ctx.config(node)?;
        let settings = ExporterSettings::new(
            ctx,
            node,
            cfg.sending_queue,
            cfg.retry_on_failure,
            cfg.timeout.0,
        )?;
        Ok(BuiltExporter {
            exporter: Arc::new(DebugExporter::new(ctx.id.to_string(), cfg.verbosity)),
            settings,
        })
    }
}

/// Writes batches to stderr.
pub struct DebugExporter {
    id: String,
    verbosity: Verbosity,
}

impl DebugExporter {
    pub fn new(id: String, verbosity: Verbosity) -> Self {
        DebugExporter { id, verbosity }
    }
}

#[async_trait]
impl Exporter for DebugExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let text = render(&self.id, self.verbosity, batch)?;
        // One write under the lock keeps concurrent batches apart; a closed stderr (broken pipe) is not our
        // problem and must not fail the pipeline.
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
        Ok(())
    }
}

/// The text printed for one batch, ending with a newline.
pub fn render(id: &str, verbosity: Verbosity, batch: &Batch) -> Result<String, ExportError> {
    let mut out = format!(
        "{id}: {}: {} {}\n",
        batch.signal,
        batch.items,
        item_noun(batch.signal)
    );
    match verbosity {
        Verbosity::Basic => {}
        Verbosity::Normal if batch.signal == Signal::Traces => {
            scan_traces(&batch.payload, |_, span| {
                let name = String::from_utf8_lossy(span.name);
                let ms = span
                    .end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano) as f64
                    / 1e6;
                let status = match span.status_code {
                    1 => "ok",
                    2 => "error",
                    _ => "unset",
                };
                let _ = writeln!(
                    out,
                    "  {name} trace_id={} span_id={} duration={ms:.3}ms status={status}",
                    hex(span.trace_id),
                    hex(span.span_id),
                );
            })
            .map_err(|e| ExportError::undecodable(format!("invalid traces batch: {e}")))?;
        }
        Verbosity::Normal => {}
        Verbosity::Detailed => {
            let json = protobuf_to_json_pretty(batch.signal, &batch.payload.to_bytes())
                .map_err(|e| e.into_export_error())?;
            out.push_str(&String::from_utf8_lossy(&json));
            out.push('\n');
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use prost::Message;

    use super::*;
    use crate::exporter::test_util::{build_err, ctx, log_request, node, trace_batch};

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c: DebugConfig = ctx("debug").config(&node("{}")).unwrap();
        assert_eq!(c.verbosity, Verbosity::Basic);
        assert!(!c.retry_on_failure.enabled);
        let c: DebugConfig = ctx("debug").config(&node("verbosity: detailed")).unwrap();
        assert_eq!(c.verbosity, Verbosity::Detailed);
        assert!(
            build_err(DebugExporterFactory.build(&ctx("debug"), &node("verbose: x")))
                .contains("verbose")
        );
        assert!(
            DebugExporterFactory
                .build(&ctx("debug"), &node("verbosity: normal"))
                .is_ok()
        );
    }

    #[test]
    fn basic_is_one_line() {
        let text = render("debug", Verbosity::Basic, &trace_batch(12)).unwrap();
        assert_eq!(text, "debug: traces: 12 spans\n");
    }

    #[test]
    fn normal_prints_each_span() {
        let text = render("debug", Verbosity::Normal, &trace_batch(2)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[2],
            "  span-1 trace_id=0102030405060708090a0b0c0d0e0fa0 span_id=00000000000000ab duration=250.000ms status=error"
        );
        assert!(lines[1].ends_with("status=ok"));
        let bad = Batch::new(Signal::Traces, Bytes::from_static(b"\x0a\x05\x12"), 1);
        assert!(matches!(
            render("d", Verbosity::Normal, &bad),
            Err(ExportError::Undecodable { .. })
        ));
    }

    #[test]
    fn detailed_prints_json_for_every_signal() {
        let logs = Batch::new(Signal::Logs, Bytes::from(log_request().encode_to_vec()), 1);
        let text = render("d", Verbosity::Detailed, &logs).unwrap();
        assert!(text.starts_with("d: logs: 1 log records\n{"));
        assert!(text.contains("\"stringValue\": \"hello\""), "{text}");
    }

    #[tokio::test]
    async fn export_writes_without_failing() {
        let built = DebugExporterFactory
            .build(&ctx("debug"), &node("verbosity: normal"))
            .unwrap();
        built.exporter.export(&trace_batch(1)).await.unwrap();
    }
}
