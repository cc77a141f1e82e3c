//! The domain layer: one module per feature, the rules of each, called by both transports.
//!
//! WebSocket frames (`gateway::ws`) and REST routes (`gateway::rest`) are thin adapters over
//! this: they parse, call one function here, and render the result. This layer validates what
//! the store cannot (text limits, emoji), decides authorization ([`authz`]), calls the store and
//! hands committed events back as [`Committed`] for publishing. It must not know about sockets,
//! frames or HTTP, nor publish anything the store has not committed.

pub mod authz;
pub mod channels;
pub mod files;
pub mod messages;
pub mod notifications;
pub mod people;
pub mod presence;
pub mod reactions;
pub mod receipts;
pub mod search;
pub mod search_query;
pub mod sender;
pub mod threads;
pub mod typing;

use std::time::Duration;

use palaver_crds::WorkspaceName;

use crate::auth::Principal;
use crate::ids::ChannelId;

use crate::config::Limits;
use crate::cursors::Cursors;
use crate::publish::Publisher;
use crate::store::{Appended, Store};

/// What the features share: storage, cursors, the after-commit publisher, Redis, object
/// storage and the limits.
#[derive(Clone)]
pub struct Domain {
    pub store: Store,
    pub cursors: Cursors,
    pub publisher: Publisher,
    /// Ephemeral signals (typing) go through Redis only.
    pub redis: fred::prelude::Client,
    pub presence: crate::presence::Presence,
    pub limits: Limits,
    /// Attachments' bytes (`None`: no object storage configured).
    pub objects: Option<crate::objects::Objects>,
    pub files: crate::config::FilesConfig,
    /// Group commit of sends.
    pub sender: sender::Sender,
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

impl Domain {
    /// Publishes an ephemeral frame (typing, receipt) of the user to the channel's connections,
    /// at most once per `interval` per user and channel across pods and connections (a Redis key
    /// `{kind}:{ws}:{channel}:{user}` with that TTL). Returns the metric's result: `forwarded`,
    /// `throttled` or `unavailable` (Redis could not say; best effort, never an error).
    async fn forward_ephemeral(&self, p: &Principal, channel: &ChannelId, kind: &str, interval: Duration, frame: String) -> &'static str {
        use fred::prelude::*;
        use fred::types::{Expiration, SetOptions};
        let key = format!("{kind}:{}:{}:{}", p.workspace, channel, p.user);
        let ttl = Expiration::PX(interval.as_millis() as i64);
        match self.redis.set::<Option<String>, _, _>(key, 1, Some(ttl), Some(SetOptions::NX), false).await {
            Ok(Some(_)) => {}
            Ok(None) => return "throttled",
            Err(e) => {
                tracing::debug!(error = %e, kind, "ephemeral throttle unavailable");
                return "unavailable";
            }
        }
        match self.redis.publish::<i64, _, _>(crate::publish::event_channel(&p.workspace, channel), frame).await {
            Ok(_) => "forwarded",
            Err(e) => {
                tracing::debug!(error = %e, kind, "ephemeral frame not published");
                "unavailable"
            }
        }
    }
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
