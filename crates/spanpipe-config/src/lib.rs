//! spanpipe's configuration layer.
//!
//! YAML files are parsed into a [`Node`] tree that remembers where every value came from (file, line, column),
//! because several files are deep-merged and `--set` overrides are applied before anything is typed: an error found
//! later (an unknown field in an exporter, a bad duration) must still name the file, line and key the user wrote.
//! Components deserialize their own section with [`Node::deserialize`] into plain serde structs.

#![warn(missing_docs)]

mod de;
mod emit;
mod env;
mod error;
mod ids;
mod layout;
mod load;
mod node;
mod parse;
mod scalar;
mod secret;
mod set;
mod units;

pub use env::expand_env;
pub use error::{ConfigError, Location};
pub use ids::{ComponentId, IdError, PipelineId, Signal};
pub use layout::{CollectorConfig, Pipeline, Section, ServiceConfig, Warning};
pub use load::{load_files, merge};
pub use node::{Node, Value};
pub use parse::load_str;
pub use secret::{REDACTED, Secret, collect_secret_locations};
pub use set::apply_set;
pub use units::{ByteSize, Duration};
