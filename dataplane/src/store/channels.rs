//! The `users`, `channels` and `members` tables: channel lifecycle and membership.

use std::collections::HashMap;

use palaver_crds::WorkspaceName;
use serde::Serialize;

use super::events::{append_locked, lock_channel};
use super::{new_id, Appended, NewEvent, Store};
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Public,
    Private,
    Dm,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Dm => "dm",
        }
    }
    pub(super) fn from_db(s: &str) -> Self {
        match s {
            "public" => Self::Public,
            "private" => Self::Private,
            _ => Self::Dm,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChannelInfo {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
    pub last_seq: i64,
}

/// A channel the user is a member of, with the user's cursors (from Postgres).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MyChannel {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub last_seq: i64,
    pub delivered_seq: i64,
    pub read_seq: i64,
    pub unread: i64,
    pub mentions: i64,
}

/// Most unread messages counted per channel (beyond that, clients show "1000+").
pub const UNREAD_CAP: i64 = 1000;

impl Store {
    /// Creates the user on first sight and joins it to the auto-join channels. Returns the
    /// member_join events to publish (empty when the user already existed).
    pub async fn ensure_user(&self, ws: &WorkspaceName, user: &str) -> Result<Vec<Appended>, sqlx::Error> {
        let mut tx = self.tenant_tx(ws).await?;
        let created =
            sqlx::query("INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING").bind(user).execute(&mut *tx).await?.rows_affected()
                == 1;
        let mut joined = Vec::new();
        if created {
            let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM channels WHERE auto_join ORDER BY id").fetch_all(&mut *tx).await?;
            for (id,) in ids {
                if let Some(a) = join_locked(&mut tx, &id, user, user).await? {
                    joined.push(a);
                }
            }
        }
        tx.commit().await?;
        Ok(joined)
    }

    /// The user's channels with cursors. `read_overrides` holds fresher read cursors (from
    /// Redis) that win over Postgres when higher, never past the channel's end; unread counts
    /// use the winner.
    pub async fn my_channels(
        &self,
        ws: &WorkspaceName,
        user: &str,
        read_overrides: &HashMap<String, i64>,
    ) -> Result<Vec<MyChannel>, sqlx::Error> {
        let overrides = serde_json::to_value(read_overrides).expect("map serializes");
        let sql = Store::tenant_sql(
            ws,
            "WITH m AS (SELECT mm.channel_id, mm.user_id, mm.delivered_seq, \
                          LEAST(GREATEST(mm.read_seq, COALESCE(($2::jsonb ->> mm.channel_id)::bigint, 0)), ch.last_seq) AS read_seq \
                        FROM {s}.members mm JOIN {s}.channels ch ON ch.id = mm.channel_id WHERE mm.user_id = $1) \
             SELECT c.id, c.name, c.kind, c.last_seq, m.delivered_seq, m.read_seq, \
               (SELECT count(*) FROM (SELECT 1 FROM {s}.events e WHERE e.channel_id = c.id AND e.seq > m.read_seq \
                  AND e.kind = 'message' AND e.user_id <> m.user_id LIMIT $3) x) AS unread, \
               (SELECT count(*) FROM {s}.notifications n WHERE n.user_id = m.user_id AND n.channel_id = c.id \
                  AND n.read_at IS NULL AND n.seq > m.read_seq) AS mentions \
             FROM m JOIN {s}.channels c ON c.id = m.channel_id ORDER BY c.name",
        );
        sqlx::query_as(&sql).bind(user).bind(overrides).bind(UNREAD_CAP).fetch_all(self.pool()).await
    }

    /// Creates a public or private channel; the creator is its first member.
    pub async fn create_channel(
        &self,
        ws: &WorkspaceName,
        user: &str,
        name: &str,
        kind: ChannelKind,
    ) -> Result<(ChannelInfo, Vec<Appended>), ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let id = new_id("c");
        let inserted = sqlx::query("INSERT INTO channels (id, name, kind, created_by) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
            .bind(&id)
            .bind(name)
            .bind(kind.as_str())
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if inserted == 0 {
            return Err(ApiError::conflict(format!("a channel named {name} already exists")));
        }
        let joined = join_locked(&mut tx, &id, user, user).await?.into_iter().collect::<Vec<_>>();
        tx.commit().await?;
        let last_seq = joined.last().map(|a| a.event.seq).unwrap_or(0);
        Ok((ChannelInfo { id, name: name.into(), kind, last_seq }, joined))
    }

    /// `actor` adds `user` to the channel. Joining a public channel oneself is always allowed;
    /// adding someone else, or to a private channel, requires the actor to be a member.
    pub async fn add_member(&self, ws: &WorkspaceName, channel: &str, actor: &str, user: &str) -> Result<Option<Appended>, ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let Some(locked) = lock_channel(&mut tx, channel, actor).await? else {
            return Err(ApiError::not_found(format!("no channel {channel}")));
        };
        if locked.hidden() {
            return Err(ApiError::not_found(format!("no channel {channel}")));
        }
        match locked.kind {
            ChannelKind::Dm => return Err(ApiError::forbidden("DM membership is fixed")),
            ChannelKind::Public if actor != user && !locked.member => return Err(ApiError::forbidden("only members can add others")),
            _ => {}
        }
        let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1").bind(user).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
            return Err(ApiError::not_found(format!("no user {user} in this workspace")));
        }
        let appended = join_locked_after_lock(&mut tx, channel, user, actor).await?;
        tx.commit().await?;
        Ok(appended)
    }

    /// Leaves a channel (not a DM). Returns the member_leave event, None if not a member.
    pub async fn leave(&self, ws: &WorkspaceName, channel: &str, user: &str) -> Result<Option<Appended>, ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let Some(locked) = lock_channel(&mut tx, channel, user).await? else {
            return Err(ApiError::not_found(format!("no channel {channel}")));
        };
        if locked.hidden() {
            return Err(ApiError::not_found(format!("no channel {channel}")));
        }
        if locked.kind == ChannelKind::Dm {
            return Err(ApiError::forbidden("cannot leave a DM"));
        }
        if !locked.member {
            return Ok(None);
        }
        let ev = NewEvent { kind: "member_leave", user: user.into(), ..Default::default() };
        let appended = append_locked(&mut tx, channel, ev).await?;
        sqlx::query("DELETE FROM members WHERE channel_id = $1 AND user_id = $2").bind(channel).bind(user).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(appended))
    }

    /// Opens (or finds) the DM between two users.
    pub async fn open_dm(&self, ws: &WorkspaceName, user: &str, other: &str) -> Result<(ChannelInfo, Vec<Appended>), ApiError> {
        if user == other {
            return Err(ApiError::bad_request("a DM needs another user"));
        }
        let mut pair = [user, other];
        pair.sort();
        let key = pair.join(",");
        let mut tx = self.tenant_tx(ws).await?;
        let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1").bind(other).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
            return Err(ApiError::not_found(format!("no user {other} in this workspace")));
        }
        let id = new_id("d");
        let inserted = sqlx::query(
            "INSERT INTO channels (id, name, kind, dm_key, created_by) VALUES ($1, $2, 'dm', $2, $3) ON CONFLICT (dm_key) DO NOTHING",
        )
        .bind(&id)
        .bind(&key)
        .bind(user)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let mut joined = Vec::new();
        let (id, last_seq) = if inserted == 1 {
            for u in pair {
                joined.extend(join_locked(&mut tx, &id, u, user).await?);
            }
            (id, joined.last().map(|a| a.event.seq).unwrap_or(0))
        } else {
            sqlx::query_as("SELECT id, last_seq FROM channels WHERE dm_key = $1").bind(&key).fetch_one(&mut *tx).await?
        };
        tx.commit().await?;
        Ok((ChannelInfo { id, name: key, kind: ChannelKind::Dm, last_seq }, joined))
    }

    /// Who may read a channel's history: members; for public channels, anyone in the workspace.
    pub async fn can_read(&self, ws: &WorkspaceName, channel: &str, user: &str) -> Result<(), ApiError> {
        let sql = Store::tenant_sql(
            ws,
            "SELECT c.kind, EXISTS (SELECT 1 FROM {s}.members m WHERE m.channel_id = c.id AND m.user_id = $2) FROM {s}.channels c WHERE c.id = $1",
        );
        let row: Option<(String, bool)> = sqlx::query_as(&sql).bind(channel).bind(user).fetch_optional(self.pool()).await?;
        match row {
            Some((kind, member)) if member || kind == "public" => Ok(()),
            _ => Err(ApiError::not_found(format!("no channel {channel}"))),
        }
    }

    /// How many members a channel has.
    pub async fn member_count(&self, ws: &WorkspaceName, channel: &str) -> Result<i64, sqlx::Error> {
        let sql = Store::tenant_sql(ws, "SELECT count(*) FROM {s}.members WHERE channel_id = $1");
        sqlx::query_scalar(&sql).bind(channel).fetch_one(self.pool()).await
    }

    /// The user's workspace role as stored (`users.role`), None for an unknown user.
    pub async fn user_role(&self, ws: &WorkspaceName, user: &str) -> Result<Option<String>, sqlx::Error> {
        let sql = Store::tenant_sql(ws, "SELECT role FROM {s}.users WHERE id = $1");
        sqlx::query_scalar(&sql).bind(user).fetch_optional(self.pool()).await
    }

    /// Members of a channel (consumers: DM recipients).
    pub async fn members(&self, ws: &WorkspaceName, channel: &str) -> Result<Vec<String>, sqlx::Error> {
        let sql = Store::tenant_sql(ws, "SELECT user_id FROM {s}.members WHERE channel_id = $1 ORDER BY user_id");
        sqlx::query_scalar(&sql).bind(channel).fetch_all(self.pool()).await
    }
}

/// Locks the channel and joins `user`; None if already a member.
async fn join_locked(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    channel: &str,
    user: &str,
    actor: &str,
) -> Result<Option<Appended>, sqlx::Error> {
    lock_channel(tx, channel, user).await?;
    join_locked_after_lock(tx, channel, user, actor).await
}

async fn join_locked_after_lock(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    channel: &str,
    user: &str,
    actor: &str,
) -> Result<Option<Appended>, sqlx::Error> {
    let inserted = sqlx::query("INSERT INTO members (channel_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(channel)
        .bind(user)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    // The joiner's cursors start at the join event so the channel's old history is not "unread".
    let ev = NewEvent {
        kind: "member_join",
        user: user.into(),
        cmid: None,
        text: (actor != user).then(|| format!("added by {actor}")),
        ..Default::default()
    };
    let appended = append_locked(tx, channel, ev).await?;
    sqlx::query("UPDATE members SET delivered_seq = $3 - 1, read_seq = $3 - 1 WHERE channel_id = $1 AND user_id = $2")
        .bind(channel)
        .bind(user)
        .bind(appended.event.seq)
        .execute(&mut **tx)
        .await?;
    Ok(Some(appended))
}
