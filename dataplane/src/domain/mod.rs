//! The domain layer: one module per feature, the rules of each, called by both transports.
//!
//! WebSocket frames (`gateway::ws`) and REST routes (`gateway::rest`) are thin adapters over
//! this: they parse, call one function here, and render the result. This layer validates what
//! the store cannot (text limits, emoji), decides authorization ([`authz`]), calls the store and
//! hands committed events back as [`Committed`] for publishing. It must not know about sockets,
//! frames or HTTP, nor publish anything the store has not committed.

pub mod authz;
pub mod channels;
pub mod messages;
pub mod notifications;
pub mod people;
pub mod presence;
pub mod reactions;
pub mod receipts;
pub mod threads;
pub mod typing;

use palaver_crds::WorkspaceName;

use crate::config::Limits;
use crate::cursors::Cursors;
use crate::publish::Publisher;
use crate::store::{Appended, Store};

/// What the features share: storage, cursors, the after-commit publisher, Redis and the limits.
#[derive(Clone)]
pub struct Domain {
    pub store: Store,
    pub cursors: Cursors,
    pub publisher: Publisher,
    /// Ephemeral signals (typing) go through Redis only.
    pub redis: fred::prelude::Client,
    pub presence: crate::presence::Presence,
    pub limits: Limits,
}

/// A committed result and the events it appended. The transport replies first (an ack must
/// not wait for pub/sub) and then publishes; events never published wait for the outbox
/// sweeper, seconds late.
#[must_use = "publish() after replying: unpublished events reach clients only via the sweeper"]
pub struct Committed<T> {
    pub value: T,
    events: Vec<Appended>,
    ws: WorkspaceName,
    publisher: Publisher,
}

impl<T> Committed<T> {
    fn new(d: &Domain, ws: &WorkspaceName, value: T, events: Vec<Appended>) -> Self {
        Self { value, events, ws: ws.clone(), publisher: d.publisher.clone() }
    }

    /// Publishes the appended events (Redis, Kafka) and returns the value.
    pub async fn publish(self) -> T {
        for a in &self.events {
            self.publisher.publish(&self.ws, a).await;
        }
        self.value
    }
}
