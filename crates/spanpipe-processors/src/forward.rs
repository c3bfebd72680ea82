//! The `forward` connector: joins pipelines of the same signal, handing batches on unchanged (as the OTel
//! Collector's `forward` connector does), e.g. one receiving pipeline feeding two differently processed ones.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use spanpipe_core::{
    Batch, BuildContext, ConfigError, ConnectorFactory, ConsumeError, Consumer, Node, Processor,
    Signal, component::Connector,
};

/// `forward` has no settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardConfig {}

/// Builds `forward` connectors.
pub struct ForwardConnectorFactory;

struct ForwardConnector {
    next: Arc<dyn Consumer>,
}

#[async_trait]
impl Consumer for ForwardConnector {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.next.consume(batch).await
    }
}

impl Processor for ForwardConnector {}

impl ConnectorFactory for ForwardConnectorFactory {
    fn type_name(&self) -> &'static str {
        "forward"
    }

    fn supports(&self, from: Signal, to: Signal) -> bool {
        from == to
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &Node,
        _from: Signal,
        _to: Signal,
        downstream: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Connector>, ConfigError> {
        let _: ForwardConfig = ctx.config(config)?;
        Ok(Arc::new(ForwardConnector { next: downstream }))
    }
}
