//! Delivered/read cursors: Redis first (so another pod sees them at once), batched to Postgres.
//!
//! Owns the `cur:{ws}:{user}` hashes and the pod's batch of cursor moves not yet in Postgres.
//! It must not compute unread counts (the store does, from what this module reports).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::*;
use palaver_crds::WorkspaceName;
use tokio_util::sync::CancellationToken;

use crate::store::{CursorUpdate, Store};

/// Cursors live in Redis for a week; Postgres has them long before that.
const REDIS_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// Sets a hash field only if the new value is higher: cursors never move back.
const MAX_SET: &str = "local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') \
    if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end \
    redis.call('PEXPIRE', KEYS[1], ARGV[3]) return 0";

type Key = (WorkspaceName, String, String);

#[derive(Clone)]
pub struct Cursors {
    redis: Client,
    pending: Arc<Mutex<HashMap<Key, (i64, i64)>>>,
}

/// Cursor values fresher than Postgres, per channel.
#[derive(Debug, Default, Clone)]
pub struct Fresh {
    pub delivered: HashMap<String, i64>,
    pub read: HashMap<String, i64>,
}

fn redis_key(ws: &WorkspaceName, user: &str) -> String {
    format!("cur:{ws}:{user}")
}

impl Cursors {
    pub fn new(redis: Client) -> Self {
        Self { redis, pending: Arc::default() }
    }

    /// Records a cursor move (`delivered` or `read`, 0 = unchanged).
    pub async fn update(&self, ws: &WorkspaceName, user: &str, channel: &str, delivered: i64, read: i64) {
        {
            let mut p = self.pending.lock().expect("lock");
            let e = p.entry((ws.clone(), channel.to_string(), user.to_string())).or_default();
            e.0 = e.0.max(delivered);
            e.1 = e.1.max(read);
        }
        let key = redis_key(ws, user);
        for (field, v) in [("d", delivered), ("r", read)] {
            if v > 0 {
                let args = vec![format!("{field}:{channel}"), v.to_string(), REDIS_TTL_MS.to_string()];
                if let Err(e) = self.redis.eval::<i64, _, _, _>(MAX_SET, vec![key.clone()], args).await {
                    tracing::debug!(error = %e, "cursor write to redis failed; postgres batch still has it");
                }
            }
        }
    }

    /// The user's cursors as Redis has them (empty when Redis is down: Postgres is then the
    /// best we know).
    pub async fn fresh(&self, ws: &WorkspaceName, user: &str) -> Fresh {
        let mut out = Fresh::default();
        let all: HashMap<String, i64> = match self.redis.hgetall(redis_key(ws, user)).await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "cursor read from redis failed");
                return out;
            }
        };
        for (field, v) in all {
            if let Some(ch) = field.strip_prefix("d:") {
                out.delivered.insert(ch.to_string(), v);
            } else if let Some(ch) = field.strip_prefix("r:") {
                out.read.insert(ch.to_string(), v);
            }
        }
        out
    }

    /// Writes the batch to Postgres; on failure keeps it for the next round.
    pub async fn flush(&self, store: &Store) {
        let batch: Vec<(Key, (i64, i64))> = self.pending.lock().expect("lock").drain().collect();
        let mut by_ws: HashMap<WorkspaceName, Vec<CursorUpdate>> = HashMap::new();
        for ((ws, channel, user), (delivered, read)) in batch {
            by_ws.entry(ws).or_default().push(CursorUpdate { channel, user, delivered, read });
        }
        for (ws, updates) in by_ws {
            if let Err(e) = store.flush_cursors(&ws, &updates).await {
                tracing::warn!(error = %e, workspace = %ws, "cursor flush failed; retrying next round");
                let mut p = self.pending.lock().expect("lock");
                for u in updates {
                    let e = p.entry((ws.clone(), u.channel, u.user)).or_default();
                    e.0 = e.0.max(u.delivered);
                    e.1 = e.1.max(u.read);
                }
            }
        }
    }

    pub async fn run_flusher(self, store: Store, every: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.flush(&store).await;
                    return;
                }
                _ = tokio::time::sleep(every) => self.flush(&store).await,
            }
        }
    }
}
