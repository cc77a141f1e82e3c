//! Shared contract between the operator and the data plane.
//!
//! Owns the names every component derives from a workspace (Postgres schema, Kafka topics, Redis
//! prefixes) so that they are computed in exactly one place from a validated [`WorkspaceName`],
//! and (feature `resources`, on by default) the Kubernetes resource types `ChatCluster` and
//! `Workspace`. This crate must not depend on any runtime (database, broker, HTTP) crate.

mod names;
mod properties;
#[cfg(feature = "resources")]
pub mod resources;

pub use names::{validate_channel_name, InvalidName, WorkspaceName};
pub use properties::parse_kafka_properties;
