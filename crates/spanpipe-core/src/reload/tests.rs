use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use spanpipe_config::{CollectorConfig, load_str};
use tokio::sync::Semaphore;

use super::*;
use crate::component::{
    BuildContext, BuiltExporter, ExportError, Exporter, ExporterFactory, Processor,
    ProcessorFactory, Receiver, ReceiverFactory, SignalConsumers,
};
use crate::graph::{Graph, same};
use crate::{
    Batch, ComponentError, ConsumeError, Consumer, ExporterSettings, Node, Registry, Service,
    ServiceStatus, Signal,
};

fn config(yaml: &str) -> CollectorConfig {
    config_in("r.yaml", yaml).unwrap()
}

fn config_in(file: &str, yaml: &str) -> Result<CollectorConfig, ConfigError> {
    Ok(CollectorConfig::from_node(&load_str(file, yaml)?)?.0)
}

fn id(s: &str) -> crate::ComponentId {
    s.parse().unwrap()
}

// ---- Components for graph and service tests ----

/// Records every start and the consumers it was started with.
#[derive(Default)]
struct Hand {
    starts: AtomicUsize,
    consumers: Mutex<Option<SignalConsumers>>,
}

struct HandReceiver(Arc<Hand>);
#[async_trait]
impl Receiver for HandReceiver {
    async fn start(&self, consumers: SignalConsumers) -> Result<(), ComponentError> {
        self.0.starts.fetch_add(1, Ordering::SeqCst);
        *self.0.consumers.lock().unwrap() = Some(consumers);
        Ok(())
    }
    async fn shutdown(&self) {}
}
struct HandFactory(Arc<Hand>);
impl ReceiverFactory for HandFactory {
    fn type_name(&self) -> &'static str {
        "hand"
    }
    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }
    fn build(&self, _: &BuildContext, _: &Node) -> Result<Arc<dyn Receiver>, ConfigError> {
        Ok(Arc::new(HandReceiver(self.0.clone())))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct LogConfig {
    tag: String,
    store: String,
    fail_start: bool,
    /// Holds the one shared "port" while running, as a `prometheus` exporter holds its endpoint.
    bind: bool,
}

/// What every log exporter delivered, as (tag, payload); exports wait for a permit of `gate` (open by default).
#[derive(Clone)]
struct Delivered {
    log: Arc<Mutex<Vec<(String, Bytes)>>>,
    gate: Arc<Semaphore>,
    port: Arc<std::sync::atomic::AtomicBool>,
}
impl Delivered {
    fn new() -> Self {
        Delivered {
            log: Arc::default(),
            gate: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            port: Arc::default(),
        }
    }
    fn of(&self, tag: &str) -> Vec<Bytes> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(t, _)| t == tag)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

struct LogExporter(String, LogConfig, Delivered);
#[async_trait]
impl Exporter for LogExporter {
    async fn start(&self) -> Result<(), ComponentError> {
        if self.1.fail_start {
            return Err(ComponentError::new(&self.0, "cannot start"));
        }
        if self.1.bind && self.2.port.swap(true, Ordering::SeqCst) {
            return Err(ComponentError::new(&self.0, "address in use"));
        }
        Ok(())
    }
    async fn shutdown(&self) {
        if self.1.bind {
            self.2.port.store(false, Ordering::SeqCst);
        }
    }
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        self.2.gate.acquire().await.unwrap().forget();
        self.2
            .log
            .lock()
            .unwrap()
            .push((self.0.clone(), batch.payload.to_bytes()));
        Ok(())
    }
}
struct LogFactory(Delivered);
impl ExporterFactory for LogFactory {
    fn type_name(&self) -> &'static str {
        "log"
    }
    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }
    fn build(&self, ctx: &BuildContext, node: &Node) -> Result<BuiltExporter, ConfigError> {
        let c: LogConfig = ctx.config(node)?;
        if c.tag.is_empty() {
            return Err(ctx.invalid(node, &["tag"], "must not be empty"));
        }
        Ok(BuiltExporter {
            exporter: Arc::new(LogExporter(c.tag.clone(), c, self.0.clone())),
            settings: ExporterSettings::default(),
        })
    }
}

/// Holds every batch until shutdown, like a batch processor with a long timeout.
struct Hold(Mutex<Vec<Batch>>, Arc<dyn Consumer>);
#[async_trait]
impl Consumer for Hold {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.0.lock().unwrap().push(batch);
        Ok(())
    }
}
#[async_trait]
impl Processor for Hold {
    async fn shutdown(&self) {
        let held = std::mem::take(&mut *self.0.lock().unwrap());
        for b in held {
            let _ = self.1.consume(b).await;
        }
    }
}
struct HoldFactory;
impl ProcessorFactory for HoldFactory {
    fn type_name(&self) -> &'static str {
        "hold"
    }
    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }
    fn build(
        &self,
        _: &BuildContext,
        _: &Node,
        _: Signal,
        next: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Processor>, ConfigError> {
        Ok(Arc::new(Hold(Mutex::new(Vec::new()), next)))
    }
}

struct Fixture {
    registry: Registry,
    hand: Arc<Hand>,
    delivered: Delivered,
}

fn fixture() -> Fixture {
    let hand = Arc::new(Hand::default());
    let delivered = Delivered::new();
    let mut registry = Registry::default();
    registry
        .receiver(HandFactory(hand.clone()))
        .exporter(LogFactory(delivered.clone()), &[])
        .processor(HoldFactory);
    Fixture {
        registry,
        hand,
        delivered,
    }
}

impl Fixture {
    async fn send(&self, text: &'static str) {
        let c = self.hand.consumers.lock().unwrap().clone().unwrap();
        let b = Batch::new(Signal::Traces, Bytes::from_static(text.as_bytes()), 1);
        c.traces.unwrap().consume(b).await.unwrap();
    }
}

/// Polls (bounded) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

const TWO: &str = "
receivers: {hand: }
processors: {hold: }
exporters:
  log/a: {tag: A}
  log/b: {tag: B}
service:
  pipelines:
    traces/held: {receivers: [hand], processors: [hold], exporters: [log/a]}
    traces/direct: {receivers: [hand], exporters: [log/b]}
";

// ---- Graph::rebuild: what is carried over ----

#[test]
fn rebuild_takes_over_exactly_the_unchanged_instances() {
    let f = fixture();
    let old_cfg = config(TWO);
    let old = Graph::build(&old_cfg, &f.registry).unwrap();
    let new_cfg = config(&TWO.replace("{tag: B}", "{tag: B2}"));
    let status = ServiceStatus::default();
    let new = Graph::rebuild(&new_cfg, &f.registry, status, &old, &old_cfg).unwrap();

    let q = |g: &Graph, i: &str| g.parts.queues.get(&id(i)).unwrap().clone();
    assert!(
        same(&q(&old, "log/a"), &q(&new, "log/a")),
        "unchanged exporter keeps its queue"
    );
    assert!(
        !same(&q(&old, "log/b"), &q(&new, "log/b")),
        "changed exporter gets a new queue"
    );
    let head = |g: &Graph, p: &str| g.parts.heads.get(&p.parse().unwrap()).unwrap().clone();
    assert!(
        same(&head(&old, "traces/held"), &head(&new, "traces/held")),
        "unchanged pipeline kept whole"
    );
    assert!(!same(
        &head(&old, "traces/direct"),
        &head(&new, "traces/direct")
    ));
    assert!(
        same(&old.processors[0].1, &new.processors[0].1),
        "the hold processor is carried over"
    );
    // The receiver is kept with the same swaps; they still point at the old heads until the reload switches.
    assert!(same(&old.receivers[0].1, &new.receivers[0].1));
    let (ro, rn) = (
        &old.parts.routes[&id("hand")][0],
        &new.parts.routes[&id("hand")][0],
    );
    assert!(same(&ro.swap, &rn.swap));
    assert!(same(&rn.swap.current(), &ro.target));
    assert!(!same(&rn.target, &ro.target));
}

#[test]
fn an_invalid_config_is_rejected_with_file_line_and_key() {
    let f = fixture();
    let old_cfg = config(TWO);
    let old = Graph::build(&old_cfg, &f.registry).unwrap();
    let bad = config_in("broken.yaml", &TWO.replace("{tag: B}", "{tag: ''}")).unwrap();
    let err = Graph::rebuild(&bad, &f.registry, ServiceStatus::default(), &old, &old_cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("broken.yaml:6:"), "{err}");
    assert!(err.contains("exporters.log/b.tag"), "{err}");
}

// ---- Service::reload ----

#[tokio::test]
async fn reload_moves_traffic_and_keeps_receivers_and_queued_data() {
    let f = fixture();
    let mut svc = Service::build(&config(TWO), &f.registry).unwrap();
    svc.start().await.unwrap();
    // The backends are "down": exports wait, so "1" is still in the old log/b queue during the reload.
    f.delivered.gate.forget_permits(Semaphore::MAX_PERMITS);
    f.send("1").await;
    let summary = svc
        .reload(config(&TWO.replace("{tag: B}", "{tag: B2}")), &f.registry)
        .await
        .unwrap();
    assert_eq!(
        (
            summary.kept,
            summary.replaced,
            summary.added,
            summary.removed
        ),
        (3, 1, 0, 0),
        "{summary}"
    );
    assert_eq!(
        f.hand.starts.load(Ordering::SeqCst),
        1,
        "the kept receiver was not restarted"
    );
    f.send("2").await;
    // The old log/b drains its "1" (in the background) once exports can proceed; "2" goes to B2 only.
    f.delivered.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    eventually("B got 1, B2 got 2", || {
        f.delivered.of("B").len() == 1 && f.delivered.of("B2").len() == 1
    })
    .await;
    assert_eq!(f.delivered.of("B"), vec![Bytes::from_static(b"1")]);
    assert_eq!(f.delivered.of("B2"), vec![Bytes::from_static(b"2")]);
    // log/a's pipeline holds both batches until shutdown, then delivers both through its kept queue.
    assert!(f.delivered.of("A").is_empty());
    svc.shutdown().await;
    assert_eq!(
        f.delivered.of("A"),
        vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")]
    );
}

#[tokio::test]
async fn a_changed_pipeline_flushes_its_old_processors_into_the_old_exporter() {
    let f = fixture();
    let mut svc = Service::build(&config(TWO), &f.registry).unwrap();
    svc.start().await.unwrap();
    // Backends down: "1" waits in the kept log/b queue and in the old hold processor across the reload.
    f.delivered.gate.forget_permits(Semaphore::MAX_PERMITS);
    f.send("1").await;
    let summary = svc
        .reload(config(&TWO.replace("{tag: A}", "{tag: A2}")), &f.registry)
        .await
        .unwrap();
    // hold (rebuilt with its pipeline) and log/a replaced; hand, log/b kept.
    assert_eq!((summary.kept, summary.replaced), (2, 2), "{summary}");
    f.delivered.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    eventually("the old hold flushed 1 into the old log/a", || {
        f.delivered.of("A").len() == 1
    })
    .await;
    eventually("the kept log/b delivered its queued 1", || {
        f.delivered.of("B").len() == 1
    })
    .await;
    f.send("2").await;
    svc.shutdown().await;
    assert_eq!(f.delivered.of("A"), vec![Bytes::from_static(b"1")]);
    assert_eq!(f.delivered.of("A2"), vec![Bytes::from_static(b"2")]);
    assert_eq!(
        f.delivered.of("B"),
        vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")]
    );
}

#[tokio::test]
async fn a_rejected_or_failed_reload_leaves_the_old_pipelines_running() {
    let f = fixture();
    let mut svc = Service::build(&config(TWO), &f.registry).unwrap();
    svc.start().await.unwrap();
    let invalid = config(&TWO.replace("{tag: B}", "{tag: B, nosuch: 1}"));
    let err = svc.reload(invalid, &f.registry).await.unwrap_err();
    assert!(matches!(err, ReloadError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("nosuch"), "{err}");
    // A new exporter that cannot start: the reload is abandoned before anything is switched.
    let failing = config(
        &format!("{TWO}    traces/new: {{receivers: [hand], exporters: [log/c]}}\n").replace(
            "  log/b: {tag: B}",
            "  log/b: {tag: B}\n  log/c: {tag: C, fail_start: true}",
        ),
    );
    let err = svc.reload(failing, &f.registry).await.unwrap_err();
    assert!(matches!(err, ReloadError::Start(_)), "{err}");
    f.send("1").await;
    svc.shutdown().await;
    assert_eq!(f.delivered.of("B"), vec![Bytes::from_static(b"1")]);
    assert!(f.delivered.of("C").is_empty());
    assert_eq!(f.delivered.of("A"), vec![Bytes::from_static(b"1")]);
}

#[tokio::test]
async fn a_receiver_that_changes_is_restarted_and_a_removed_exporter_drains() {
    let f = fixture();
    let mut svc = Service::build(&config(TWO), &f.registry).unwrap();
    svc.start().await.unwrap();
    f.send("1").await;
    let one_pipeline = "
receivers: {hand: {}}
exporters:
  log/b: {tag: B}
service:
  pipelines:
    traces/direct: {receivers: [hand], exporters: [log/b]}
";
    let summary = svc.reload(config(one_pipeline), &f.registry).await.unwrap();
    // `hand: {}` differs from `hand:` (an empty map is not null): the receiver is replaced.
    assert_eq!(f.hand.starts.load(Ordering::SeqCst), 2, "{summary}");
    assert_eq!(
        (summary.removed, summary.kept),
        (2, 1),
        "hold and log/a removed: {summary}"
    );
    f.send("2").await;
    svc.shutdown().await;
    assert_eq!(
        f.delivered.of("A"),
        vec![Bytes::from_static(b"1")],
        "the removed pipeline flushed"
    );
    assert_eq!(
        f.delivered.of("B"),
        vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")]
    );
}

#[tokio::test]
async fn a_changed_exporter_that_needs_the_old_ones_port_starts_after_it_drained() {
    let f = fixture();
    let bound = TWO.replace("{tag: B}", "{tag: B, bind: true}");
    let mut svc = Service::build(&config(&bound), &f.registry).unwrap();
    svc.start().await.unwrap();
    f.delivered.gate.forget_permits(Semaphore::MAX_PERMITS);
    f.send("1").await;
    let summary = svc
        .reload(config(&bound.replace("tag: B,", "tag: B2,")), &f.registry)
        .await
        .unwrap();
    assert!(summary.failed.is_empty(), "{summary}");
    f.send("2").await;
    f.delivered.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    eventually(
        "old B delivered 1, then the new B2 started and delivered 2",
        || f.delivered.of("B").len() == 1 && f.delivered.of("B2").len() == 1,
    )
    .await;
    svc.shutdown().await;
    assert_eq!(f.delivered.of("B"), vec![Bytes::from_static(b"1")]);
    assert_eq!(f.delivered.of("B2"), vec![Bytes::from_static(b"2")]);
}
