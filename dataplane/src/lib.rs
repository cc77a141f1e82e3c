//! palaverd: the Palaver data plane (WebSocket/REST gateway and per-pod fan-out).
//!
//! Module map — `gateway` (HTTP, auth, limits, the WebSocket and REST adapters), `domain` (the
//! rules of each feature, which both adapters call), `store` (Postgres: the source of truth),
//! `publish` (after-commit Redis/Kafka hand-off and the outbox sweeper), `fanout` (Redis
//! subscriptions → ordered per-channel streams → connection queues), `cursors` (delivered/read
//! positions), `ids` (client-supplied identifiers, validated), `mentions` (the mention parser), `presence` (who is online),
//! `consumer` (partition-by-channel Kafka consumers: notifications, search and push), `objects`
//! (S3-compatible storage of attachments), `media` (image checks and thumbnails), `workspaces`
//! (registry cache), `server` (wiring and shutdown).

pub mod auth;
pub mod config;
pub mod consumer;
pub mod cursors;
pub mod domain;
pub mod error;
pub mod fanout;
pub mod gateway;
pub mod ids;
pub mod kafka;
pub mod media;
pub mod mentions;
pub mod metrics;
pub mod objects;
pub mod presence;
pub mod protocol;
pub mod publish;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod workspaces;
