//! Presence: whether a user is online, away or offline, across all their connections and pods,
//! and the transitions that subscribers are told about (issue 9). Redis only.
//!
//! Owns the `online:{ws}:{user}` hashes (one field per connection, `{pod}/{conn}`, valued
//! `{until_ms}:{a|w}`: live until then, active or away), the last published status
//! `pst:{ws}:{user}` (`{status}:{since_ms}`) and the `pr:{ws}:{user}` pub/sub channel that
//! carries transitions. A status is recomputed, and published only if it changed, whenever a
//! connection of the user changes. It must not deliver frames to sockets (the fan-out does)
//! nor touch Postgres.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fred::prelude::*;
use palaver_crds::WorkspaceName;
use serde::Serialize;

use crate::metrics::{self, ResultLabel};

/// How long a connection counts as live without a refresh (a pod that dies leaves fields that
/// simply expire).
pub const TTL: Duration = Duration::from_secs(60);
/// How often a connection refreshes its entry (more often when `away_after` is shorter).
pub const REFRESH: Duration = Duration::from_secs(20);
/// How long a last published status is kept.
const STATUS_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

/// Recomputes the user's status from their connections and stores it if it changed; returns
/// the new `{status}:{since_ms}` then, nil otherwise. Atomic, so two pods seeing the same
/// change publish it once. KEYS: online hash, status key. ARGV: now (ms), status TTL (ms).
const TRANSITION: &str = r#"
local now = tonumber(ARGV[1])
local status = 'offline'
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  local sep = string.find(v, ':', 1, true)
  if sep and tonumber(string.sub(v, 1, sep - 1)) > now then
    if string.sub(v, sep + 1) == 'a' then status = 'online' break end
    status = 'away'
  end
end
local prev = redis.call('GET', KEYS[2])
if prev and string.match(prev, '^(%a+)') == status then return false end
if not prev and status == 'offline' then return false end
local v = status .. ':' .. ARGV[1]
redis.call('SET', KEYS[2], v, 'PX', ARGV[2])
return v
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    Away,
    Offline,
}

/// What subscribers see of a user.
#[derive(Debug, Clone, Serialize)]
pub struct UserPresence {
    pub user: String,
    pub status: Status,
    /// When the current status began (for `offline`: when the user was last seen); null for a
    /// user never seen.
    pub last_seen: Option<DateTime<Utc>>,
}

impl UserPresence {
    /// The `presence` frame.
    pub fn frame(&self) -> String {
        serde_json::json!({"t": "presence", "user": self.user, "status": self.status, "last_seen": self.last_seen}).to_string()
    }
}

fn online_key(ws: &WorkspaceName, user: &str) -> String {
    format!("online:{ws}:{user}")
}

fn status_key(ws: &WorkspaceName, user: &str) -> String {
    format!("pst:{ws}:{user}")
}

/// The pub/sub channel of a user's presence transitions.
pub fn presence_key(ws: &WorkspaceName, user: &str) -> String {
    format!("pr:{ws}:{user}")
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn parse_status(v: &str) -> Option<(Status, Option<DateTime<Utc>>)> {
    let (s, ms) = v.split_once(':')?;
    let status = match s {
        "online" => Status::Online,
        "away" => Status::Away,
        "offline" => Status::Offline,
        _ => return None,
    };
    Some((status, ms.parse().ok().and_then(DateTime::from_timestamp_millis)))
}

#[derive(Clone)]
pub struct Presence {
    redis: Client,
    pod: String,
    /// A user with no connection stays as they were this long before going offline, so a
    /// reconnect does not flap.
    offline_grace: Duration,
}

impl Presence {
    pub fn new(redis: Client, pod: String, offline_grace: Duration) -> Self {
        Self { redis, pod, offline_grace }
    }

    fn field(&self, conn: u64) -> String {
        format!("{}/{conn}", self.pod)
    }

    async fn set_field(&self, ws: &WorkspaceName, user: &str, conn: u64, until: i64, away: bool) -> Result<(), fred::error::Error> {
        let k = online_key(ws, user);
        let value = format!("{until}:{}", if away { 'w' } else { 'a' });
        self.redis.hset::<(), _, _>(&k, (self.field(conn), value)).await?;
        self.redis.pexpire::<(), _>(&k, 2 * TTL.as_millis() as i64, None).await
    }

    /// Marks (or keeps) the connection live for another [`TTL`], active or away; publishes the
    /// user's transition if this changed their status.
    pub async fn touch(&self, ws: &WorkspaceName, user: &str, conn: u64, away: bool) {
        if let Err(e) = self.set_field(ws, user, conn, now_ms() + TTL.as_millis() as i64, away).await {
            tracing::debug!(error = %e, "presence update failed");
            return;
        }
        self.transition(ws, user).await;
    }

    /// The connection closed: it keeps counting for the grace period, after which the user's
    /// status is recomputed (offline if no other connection came).
    pub async fn gone(&self, ws: &WorkspaceName, user: &str, conn: u64, away: bool) {
        if let Err(e) = self.set_field(ws, user, conn, now_ms() + self.offline_grace.as_millis() as i64, away).await {
            tracing::debug!(error = %e, "presence update failed");
            return;
        }
        let (me, ws, user) = (self.clone(), ws.clone(), user.to_string());
        tokio::spawn(async move {
            // A little past the grace, so the field has surely expired.
            tokio::time::sleep(me.offline_grace + Duration::from_millis(50)).await;
            let _ = me.redis.hdel::<(), _, _>(online_key(&ws, &user), me.field(conn)).await;
            me.transition(&ws, &user).await;
        });
    }

    async fn transition(&self, ws: &WorkspaceName, user: &str) {
        let keys = vec![online_key(ws, user), status_key(ws, user)];
        let args = vec![now_ms().to_string(), STATUS_TTL_MS.to_string()];
        let changed: Result<Option<String>, _> = self.redis.eval(TRANSITION, keys, args).await;
        let Some((status, since)) = changed.ok().flatten().as_deref().and_then(parse_status) else { return };
        let label = match status {
            Status::Online => "online",
            Status::Away => "away",
            Status::Offline => "offline",
        };
        metrics::global().presence_transitions.get_or_create(&ResultLabel { result: label }).inc();
        let p = UserPresence { user: user.to_string(), status, last_seen: since };
        if let Err(e) = self.redis.publish::<i64, _, _>(presence_key(ws, user), p.frame()).await {
            tracing::debug!(error = %e, "presence transition not published");
        }
    }

    /// The user's current status as subscribers see it (from the last transition).
    pub async fn status(&self, ws: &WorkspaceName, user: &str) -> UserPresence {
        let stored: Option<String> = self.redis.get(status_key(ws, user)).await.unwrap_or(None);
        let (status, last_seen) = stored.as_deref().and_then(parse_status).unwrap_or((Status::Offline, None));
        UserPresence { user: user.to_string(), status, last_seen }
    }

    /// Whether the user has a live connection on any pod (away counts). When Redis cannot say,
    /// the answer is "no": a spare notification is better than a missed one.
    pub async fn is_online(&self, ws: &WorkspaceName, user: &str) -> bool {
        match self.redis.hvals::<Vec<String>, _>(online_key(ws, user)).await {
            Ok(values) => {
                values.iter().filter_map(|v| v.split_once(':')).any(|(until, _)| until.parse::<i64>().is_ok_and(|t| t > now_ms()))
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_statuses_parse() {
        assert_eq!(parse_status("away:1700000000000").map(|p| p.0), Some(Status::Away));
        assert_eq!(parse_status("online:1700000000000").unwrap().1.unwrap().timestamp(), 1_700_000_000);
        assert!(parse_status("bogus:1").is_none() && parse_status("online").is_none());
        let f = UserPresence { user: "u".into(), status: Status::Offline, last_seen: None }.frame();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&f).unwrap()["status"], "offline");
    }
}
