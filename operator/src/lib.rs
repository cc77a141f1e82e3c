//! Palaver operator library.
//!
//! `provision` turns a workspace description into its external resources (Postgres schema and
//! migrations, Kafka topics, registry row); `controller` reconciles ChatCluster and Workspace
//! resources (the Workspace controller calls `provision`, and so does `palaver-operator
//! provision` for local development, so both paths run the same code); `leader` elects one
//! active replica; `metrics` and `telemetry` are what an SRE sees of it.

pub mod conditions;
pub mod controller;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod provision;
pub mod telemetry;
