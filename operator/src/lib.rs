//! Palaver operator library.
//!
//! `provision` turns a workspace description into its external resources (Postgres schema and
//! migrations, Kafka topics, registry row). The Kubernetes controllers call it; so does
//! `palaver-operator provision` for local development, so both paths run the same code.

pub mod provision;
