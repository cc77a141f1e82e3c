//! Who has a live connection, across pods (used to decide who is offline and gets notified).
//!
//! Owns the `online:{ws}:{user}` hashes: one field per connection (`{pod}/{conn}`) whose value
//! is the epoch millisecond until which the connection counts as live. Connections refresh
//! their field; a pod that dies leaves fields that simply expire. It must not publish presence
//! to clients (that is a later feature).

use std::time::Duration;

use fred::prelude::*;
use palaver_crds::WorkspaceName;

/// How long a connection counts as live without a refresh.
pub const TTL: Duration = Duration::from_secs(60);
/// How often a connection refreshes its entry.
pub const REFRESH: Duration = Duration::from_secs(20);

fn key(ws: &WorkspaceName, user: &str) -> String {
    format!("online:{ws}:{user}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Clone)]
pub struct Presence {
    redis: Client,
    pod: String,
}

impl Presence {
    pub fn new(redis: Client, pod: String) -> Self {
        Self { redis, pod }
    }

    /// Marks (or keeps) the connection live for another [`TTL`].
    pub async fn touch(&self, ws: &WorkspaceName, user: &str, conn: u64) {
        let k = key(ws, user);
        let field = format!("{}/{conn}", self.pod);
        let until = now_ms() + TTL.as_millis() as i64;
        let r: Result<(), _> = async {
            self.redis.hset::<(), _, _>(&k, (field, until)).await?;
            self.redis.pexpire::<(), _>(&k, 2 * TTL.as_millis() as i64, None).await
        }
        .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "presence update failed");
        }
    }

    pub async fn gone(&self, ws: &WorkspaceName, user: &str, conn: u64) {
        let _ = self.redis.hdel::<(), _, _>(key(ws, user), format!("{}/{conn}", self.pod)).await;
    }

    /// Whether the user has a live connection on any pod. When Redis cannot say, the answer
    /// is "no": a spare notification is better than a missed one.
    pub async fn is_online(&self, ws: &WorkspaceName, user: &str) -> bool {
        match self.redis.hvals::<Vec<i64>, _>(key(ws, user)).await {
            Ok(until) => until.into_iter().any(|t| t > now_ms()),
            Err(_) => false,
        }
    }
}
