//! spanpipe's pipeline core: the unit of data, the component traits, the pipeline graph, fan-out and the sending
//! queue that wraps every exporter.
//!
//! The core names no concrete component: receivers, processors, exporters, connectors and extensions are registered
//! as factories in a [`Registry`] by the binary, and [`Service`] builds the graph from the configuration.

pub mod auth;
pub mod background;
pub mod batch;
pub mod budget;
pub mod component;
pub mod consumer;
pub mod counting;
pub mod fanout;
pub mod graph;
pub mod invalid;
pub mod listen;
pub mod payload;
pub mod queue;
pub mod registry;
pub mod reload;
pub mod retry;
pub mod service;
pub mod start_once;
pub mod status;
pub mod storage;
pub mod swap;
pub mod telemetry;
pub mod wire;

pub use auth::{AuthError, ServerAuth};
pub use batch::{Batch, Metadata};
pub use component::{
    BuildContext, BuiltExporter, ComponentError, Connector, ConnectorFactory, ExportError,
    Exporter, ExporterFactory, ExporterSettings, Extension, ExtensionFactory, ExtensionHost,
    Processor, ProcessorFactory, Receiver, ReceiverFactory, SignalConsumers, listen_error,
};
pub use consumer::{ConsumeError, Consumer};
pub use invalid::{Invalid, Key};
pub use payload::{Payload, WireParts};
pub use queue::{BatchSettings, BatchSizer, OnFull, QueueSettings, Sizer};
pub use registry::Registry;
pub use retry::RetrySettings;
pub use service::Service;
pub use spanpipe_config::{ComponentId, ConfigError, Node, PipelineId, Secret, Signal};
pub use start_once::StartOnce;
pub use status::{ServiceState, ServiceStatus};
pub use storage::{Record, RecordId, Storage, StorageClient, StorageError, StorageStats};
