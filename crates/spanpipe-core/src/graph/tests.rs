use std::sync::Mutex as StdMutex;

use async_trait::async_trait;
use bytes::Bytes;
use spanpipe_config::{CollectorConfig, load_str};

use super::*;
use crate::component::{
    BuiltExporter, ConnectorFactory, ExportError, Exporter, ExporterFactory, ProcessorFactory,
    ReceiverFactory,
};
use crate::{Batch, ComponentError, ConsumeError, ExporterSettings, Service};

/// A receiver whose consumers the test drives by hand.
struct HandReceiver(Arc<StdMutex<Option<SignalConsumers>>>);

#[async_trait]
impl Receiver for HandReceiver {
    async fn start(&self, consumers: SignalConsumers) -> Result<(), ComponentError> {
        *self.0.lock().unwrap() = Some(consumers);
        Ok(())
    }
    async fn shutdown(&self) {}
}

struct HandReceiverFactory(Arc<StdMutex<Option<SignalConsumers>>>);
impl ReceiverFactory for HandReceiverFactory {
    fn type_name(&self) -> &'static str {
        "hand"
    }
    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces, Signal::Metrics]
    }
    fn build(&self, _: &BuildContext, _: &Node) -> Result<Arc<dyn Receiver>, ConfigError> {
        Ok(Arc::new(HandReceiver(self.0.clone())))
    }
}

/// Records (exporter name, payload) into a shared log.
struct LogExporter(String, Arc<StdMutex<Vec<(String, Bytes)>>>);
#[async_trait]
impl Exporter for LogExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        self.1
            .lock()
            .unwrap()
            .push((self.0.clone(), batch.payload.to_bytes()));
        Ok(())
    }
}
struct LogExporterFactory(Arc<StdMutex<Vec<(String, Bytes)>>>);
impl ExporterFactory for LogExporterFactory {
    fn type_name(&self) -> &'static str {
        "log"
    }
    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }
    fn build(&self, ctx: &BuildContext, _: &Node) -> Result<BuiltExporter, ConfigError> {
        Ok(BuiltExporter {
            exporter: Arc::new(LogExporter(ctx.id.to_string(), self.0.clone())),
            settings: ExporterSettings::default(),
        })
    }
}

/// Appends a marker byte: shows processor order.
struct Mark(u8, Arc<dyn Consumer>);
#[async_trait]
impl Consumer for Mark {
    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        let mut v = batch.payload.to_vec();
        v.push(self.0);
        batch.payload = v.into();
        self.1.consume(batch).await
    }
}
impl Processor for Mark {}
struct MarkFactory;
impl ProcessorFactory for MarkFactory {
    fn type_name(&self) -> &'static str {
        "mark"
    }
    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }
    fn build(
        &self,
        ctx: &BuildContext,
        node: &Node,
        _: Signal,
        next: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Processor>, ConfigError> {
        let byte: u8 = ctx.config::<Option<u8>>(node)?.unwrap_or(b'm');
        Ok(Arc::new(Mark(byte, next)))
    }
}
struct PassFactory;
impl ConnectorFactory for PassFactory {
    fn type_name(&self) -> &'static str {
        "pass"
    }
    fn supports(&self, from: Signal, to: Signal) -> bool {
        from == to
    }
    fn build(
        &self,
        _: &BuildContext,
        _: &Node,
        _: Signal,
        _: Signal,
        downstream: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Connector>, ConfigError> {
        Ok(Arc::new(Mark(b'c', downstream)))
    }
}

struct Fixture {
    registry: Registry,
    consumers: Arc<StdMutex<Option<SignalConsumers>>>,
    log: Arc<StdMutex<Vec<(String, Bytes)>>>,
}

fn fixture() -> Fixture {
    let consumers = Arc::new(StdMutex::new(None));
    let log = Arc::new(StdMutex::new(Vec::new()));
    let mut registry = Registry::default();
    registry
        .receiver(HandReceiverFactory(consumers.clone()))
        .exporter(LogExporterFactory(log.clone()), &["log_alias"])
        .processor(MarkFactory)
        .connector(PassFactory);
    Fixture {
        registry,
        consumers,
        log,
    }
}

fn build(f: &Fixture, yaml: &str) -> Result<Service, ConfigError> {
    let node = load_str("g.yaml", yaml)?;
    let (cfg, _) = CollectorConfig::from_node(&node)?;
    Service::build(&cfg, &f.registry)
}

#[tokio::test]
async fn processors_run_in_order_and_connectors_feed_other_pipelines() {
    let f = fixture();
    let yaml = "
receivers: {hand: }
processors: {mark/a: 97, mark/b: 98}
exporters: {log/one: , log_alias/two: }
connectors: {pass: }
service:
  pipelines:
    traces/in: {receivers: [hand], processors: [mark/a, mark/b], exporters: [log/one, pass]}
    traces/out: {receivers: [pass], exporters: [log_alias/two]}
";
    let svc = build(&f, yaml).unwrap();
    svc.start().await.unwrap();
    let c = f.consumers.lock().unwrap().clone().unwrap();
    assert!(c.metrics.is_none());
    c.traces
        .unwrap()
        .consume(Batch::new(Signal::Traces, Bytes::from_static(b"x"), 1))
        .await
        .unwrap();
    svc.shutdown().await;
    let mut log = f.log.lock().unwrap().clone();
    log.sort();
    assert_eq!(
        log,
        vec![
            ("log/one".to_string(), Bytes::from_static(b"xab")),
            ("log_alias/two".to_string(), Bytes::from_static(b"xabc")),
        ]
    );
}

#[test]
fn unknown_types_and_unsupported_signals_name_file_line_and_key() {
    let f = fixture();
    let err = build(&f, "receivers: {hand: }\nexporters:\n  nosuch/x: {}\nservice: {pipelines: {traces: {receivers: [hand], exporters: [nosuch/x]}}}").err().unwrap().to_string();
    assert!(err.contains("g.yaml:3"), "{err}");
    assert!(err.contains("exporters.nosuch/x"), "{err}");
    assert!(err.contains("unknown exporter type \"nosuch\""), "{err}");
    assert!(err.contains("log_alias"), "lists known types: {err}");

    let err = build(&f, "receivers: {hand: }\nexporters: {log: }\nservice:\n  pipelines:\n    metrics:\n      receivers: [hand]\n      exporters: [log]\n").err().unwrap().to_string();
    assert!(err.contains("does not support metrics"), "{err}");
    assert!(err.contains("g.yaml:7"), "{err}");

    let err = build(&f, "receivers: {hand: }\nexporters: {log: }\nconnectors: {pass: }\nservice: {pipelines: {traces: {receivers: [hand], exporters: [log, pass]}}}").err().unwrap().to_string();
    assert!(err.contains("no pipeline uses it as a receiver"), "{err}");
}

#[test]
fn connector_cycles_are_rejected() {
    let f = fixture();
    let yaml = "
receivers: {hand: }
exporters: {log: }
connectors: {pass/a: , pass/b: }
service:
  pipelines:
    traces/1: {receivers: [hand, pass/b], exporters: [pass/a]}
    traces/2: {receivers: [pass/a], exporters: [pass/b, log]}
";
    let err = build(&f, yaml).err().unwrap().to_string();
    assert!(err.contains("cycle"), "{err}");
}
