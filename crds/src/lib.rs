//! Shared contract between the operator and the data plane.
//!
//! Owns the names every component derives from a workspace (Postgres schema, Kafka topics, Redis
//! prefixes) so that they are computed in exactly one place from a validated [`WorkspaceName`].
//! The Kubernetes resource types (`Workspace`, `ChatCluster`) will live here too; this crate must
//! not depend on any runtime (database, broker, HTTP) crate.

mod names;

pub use names::{validate_channel_name, InvalidName, WorkspaceName};
