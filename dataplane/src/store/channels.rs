//! The `users`, `channels` and `members` tables: channel lifecycle and membership.

use std::collections::HashMap;

use palaver_crds::WorkspaceName;
use serde::Serialize;

use super::events::{append_if, append_locked, lock_channel};
use super::{new_id, Appended, Change, NewEvent, Store};
use crate::auth::Profile;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Public,
    Private,
    Dm,
    /// A DM of 3 to 9 people.
    GroupDm,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Dm => "dm",
            Self::GroupDm => "group_dm",
        }
    }
    pub(super) fn from_db(s: &str) -> Self {
        match s {
            "public" => Self::Public,
            "private" => Self::Private,
            "group_dm" => Self::GroupDm,
            _ => Self::Dm,
        }
    }
    /// DMs and group DMs: fixed membership, no settings, every message notifies.
    pub fn is_direct(self) -> bool {
        matches!(self, Self::Dm | Self::GroupDm)
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

/// A channel's settings as the channel browser and `GET /v1/channels/{id}` show them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ChannelDetails {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub topic: String,
    pub purpose: String,
    pub archived: bool,
    pub member_count: i32,
    pub created_by: Option<String>,
    pub last_seq: i64,
}

const DETAILS_COLUMNS: &str = "c.id, c.name, c.kind, c.topic, c.purpose, c.archived, c.member_count, c.created_by, c.last_seq";

/// A change of a channel's settings; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct ChannelPatch {
    pub name: Option<String>,
    pub topic: Option<String>,
    pub purpose: Option<String>,
    pub archived: Option<bool>,
}

/// Most people a group DM has besides its creator (issue 9: 3 to 9 people in all).
pub const GROUP_DM_MAX_OTHERS: usize = 8;

/// Most unread messages counted per channel (beyond that, clients show "1000+").
pub const UNREAD_CAP: i64 = 1000;

impl Store {
    /// Creates the user on first sight and joins it to the auto-join channels; stores the
    /// token's display name and avatar when given and changed. Returns the member_join events to
    /// publish (empty when the user already existed).
    pub async fn ensure_user(&self, ws: &WorkspaceName, user: &str, profile: &Profile) -> Result<Vec<Appended>, sqlx::Error> {
        let mut tx = self.tenant_tx(ws).await?;
        let created: Option<bool> = sqlx::query_scalar(
            "INSERT INTO users (id, display_name, avatar_url) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET display_name = COALESCE(EXCLUDED.display_name, users.display_name), \
               avatar_url = COALESCE(EXCLUDED.avatar_url, users.avatar_url) \
             WHERE (EXCLUDED.display_name IS NOT NULL AND EXCLUDED.display_name IS DISTINCT FROM users.display_name) \
                OR (EXCLUDED.avatar_url IS NOT NULL AND EXCLUDED.avatar_url IS DISTINCT FROM users.avatar_url) \
             RETURNING (xmax = 0)",
        )
        .bind(user)
        .bind(&profile.name)
        .bind(&profile.picture)
        .fetch_optional(&mut *tx)
        .await?;
        let created = created == Some(true);
        let mut joined = Vec::new();
        if created {
            let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM channels WHERE auto_join ORDER BY id").fetch_all(&mut *tx).await?;
            for (id,) in ids {
                if let Some(a) = join(&mut tx, &id, user, user).await? {
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
    /// `only`: just that channel (for a connection joined to it mid-session).
    pub async fn my_channels(
        &self,
        ws: &WorkspaceName,
        user: &str,
        read_overrides: &HashMap<String, i64>,
        only: Option<&str>,
    ) -> Result<Vec<MyChannel>, sqlx::Error> {
        let overrides = serde_json::to_value(read_overrides).expect("map serializes");
        let sql = Store::tenant_sql(
            ws,
            "WITH m AS (SELECT c.id, c.name, c.kind, c.last_seq, mm.user_id, mm.delivered_seq, \
                          LEAST(GREATEST(mm.read_seq, COALESCE(($2::jsonb ->> mm.channel_id)::bigint, 0)), c.last_seq) AS read_seq \
                        FROM {s}.members mm JOIN {s}.channels c ON c.id = mm.channel_id \
                        WHERE mm.user_id = $1 AND ($4::text IS NULL OR mm.channel_id = $4)) \
             SELECT m.id, m.name, m.kind, m.last_seq, m.delivered_seq, m.read_seq, \
               (SELECT count(*) FROM (SELECT 1 FROM {s}.events e WHERE e.channel_id = m.id AND e.seq > m.read_seq \
                  AND e.kind = 'message' AND e.user_id <> m.user_id LIMIT $3) x) AS unread, \
               (SELECT count(*) FROM {s}.notifications n WHERE n.user_id = m.user_id AND n.channel_id = m.id \
                  AND n.read_at IS NULL AND n.seq > m.read_seq) AS mentions \
             FROM m ORDER BY m.name",
        );
        sqlx::query_as(&sql).bind(user).bind(overrides).bind(UNREAD_CAP).bind(only).fetch_all(self.pool()).await
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
        let joined = join(&mut tx, &id, user, user).await?.into_iter().collect::<Vec<_>>();
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
            ChannelKind::Dm | ChannelKind::GroupDm => return Err(ApiError::forbidden("DM membership is fixed")),
            ChannelKind::Public if actor != user && !locked.member => return Err(ApiError::forbidden("only members can add others")),
            _ => {}
        }
        let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1").bind(user).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
            return Err(ApiError::not_found(format!("no user {user} in this workspace")));
        }
        let appended = join(&mut tx, channel, user, actor).await?;
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
        if locked.kind.is_direct() {
            return Err(ApiError::forbidden("cannot leave a DM"));
        }
        if !locked.member {
            return Ok(None);
        }
        let ev = NewEvent { kind: "member_leave", user: user.into(), ..Default::default() };
        let appended = append_locked(&mut tx, channel, ev).await?;
        remove_locked(&mut tx, channel, user).await?;
        tx.commit().await?;
        Ok(Some(appended))
    }

    /// Opens (or finds) the DM of the caller and `others`: one other is a DM, 2 to 8 a group DM;
    /// one stable channel per set of people.
    pub async fn open_dm(&self, ws: &WorkspaceName, user: &str, others: &[String]) -> Result<(ChannelInfo, Vec<Appended>), ApiError> {
        let mut people: Vec<&str> = others.iter().map(String::as_str).filter(|o| *o != user).collect();
        people.sort();
        people.dedup();
        if people.is_empty() || people.len() > GROUP_DM_MAX_OTHERS {
            return Err(ApiError::bad_request(format!("a DM needs 1 to {GROUP_DM_MAX_OTHERS} other users")));
        }
        let kind = if people.len() == 1 { ChannelKind::Dm } else { ChannelKind::GroupDm };
        let mut tx = self.tenant_tx(ws).await?;
        let known: Vec<String> = sqlx::query_scalar("SELECT id FROM users WHERE id = ANY($1)").bind(&people).fetch_all(&mut *tx).await?;
        if let Some(missing) = people.iter().find(|p| !known.iter().any(|k| k == *p)) {
            return Err(ApiError::not_found(format!("no user {missing} in this workspace")));
        }
        people.push(user);
        people.sort();
        let key = people.join(",");
        let id = new_id("d");
        let inserted = sqlx::query(
            "INSERT INTO channels (id, name, kind, dm_key, created_by) VALUES ($1, $2, $3, $2, $4) ON CONFLICT (dm_key) DO NOTHING",
        )
        .bind(&id)
        .bind(&key)
        .bind(kind.as_str())
        .bind(user)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let mut joined = Vec::new();
        let (id, last_seq) = if inserted == 1 {
            for u in &people {
                joined.extend(join(&mut tx, &id, u, user).await?);
            }
            (id, joined.last().map(|a| a.event.seq).unwrap_or(0))
        } else {
            sqlx::query_as("SELECT id, last_seq FROM channels WHERE dm_key = $1").bind(&key).fetch_one(&mut *tx).await?
        };
        tx.commit().await?;
        Ok((ChannelInfo { id, name: key, kind, last_seq }, joined))
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

    /// How many members a channel has (0 for no such channel).
    pub async fn member_count(&self, ws: &WorkspaceName, channel: &str) -> Result<i64, sqlx::Error> {
        let sql = Store::tenant_sql(ws, "SELECT COALESCE((SELECT member_count FROM {s}.channels WHERE id = $1), 0)::bigint");
        sqlx::query_scalar(&sql).bind(channel).fetch_one(self.pool()).await
    }

    /// A channel's settings, for whoever may see it (members; anyone for public channels).
    pub async fn channel_details(&self, ws: &WorkspaceName, channel: &str, user: &str) -> Result<ChannelDetails, ApiError> {
        self.can_read(ws, channel, user).await?;
        let sql = Store::tenant_sql(ws, &format!("SELECT {DETAILS_COLUMNS} FROM {{s}}.channels c WHERE c.id = $1"));
        Ok(sqlx::query_as(&sql).bind(channel).fetch_one(self.pool()).await?)
    }

    /// Public channels by name, with member counts: the channel browser. `after`: the last name
    /// of the previous page.
    pub async fn public_channels(&self, ws: &WorkspaceName, after: Option<&str>, limit: i64) -> Result<Vec<ChannelDetails>, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            &format!("SELECT {DETAILS_COLUMNS} FROM {{s}}.channels c WHERE c.kind = 'public' AND ($1::text IS NULL OR c.name > $1) ORDER BY c.name LIMIT $2"),
        );
        sqlx::query_as(&sql).bind(after).bind(limit).fetch_all(self.pool()).await
    }

    /// A page of a channel's members by user id (`after`: the previous page's last).
    pub async fn channel_members(
        &self,
        ws: &WorkspaceName,
        channel: &str,
        user: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>, ApiError> {
        self.can_read(ws, channel, user).await?;
        let sql = Store::tenant_sql(
            ws,
            "SELECT user_id FROM {s}.members WHERE channel_id = $1 AND ($2::text IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3",
        );
        Ok(sqlx::query_scalar(&sql).bind(channel).bind(after).bind(limit).fetch_all(self.pool()).await?)
    }

    /// Changes a channel's settings and appends a `channel_update` event naming what changed.
    /// Topic and purpose: any member; name and archive: the creator or a moderator.
    pub async fn update_channel(
        &self,
        ws: &WorkspaceName,
        channel: &str,
        actor: &str,
        moderator: bool,
        patch: &ChannelPatch,
    ) -> Result<Change, ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let locked = lock_channel(&mut tx, channel, actor).await?.ok_or_else(|| ApiError::not_found(format!("no channel {channel}")))?;
        if locked.hidden() {
            return Err(ApiError::not_found(format!("no channel {channel}")));
        }
        if locked.kind.is_direct() {
            return Err(ApiError::forbidden("a DM has no settings"));
        }
        if !locked.member && !moderator {
            return Err(ApiError::forbidden(format!("not a member of {channel}: join it first")));
        }
        let owner = moderator || locked.created_by.as_deref() == Some(actor);
        if (patch.name.is_some() || patch.archived.is_some()) && !owner {
            return Err(ApiError::forbidden("only the channel's creator or a workspace owner/admin may rename or archive it"));
        }
        let sql = format!("SELECT {DETAILS_COLUMNS} FROM channels c WHERE c.id = $1");
        let now: ChannelDetails = sqlx::query_as(&sql).bind(channel).fetch_one(&mut *tx).await?;
        let mut changes = serde_json::Map::new();
        if let Some(n) = patch.name.as_ref().filter(|n| **n != now.name) {
            changes.insert("name".into(), n.clone().into());
        }
        if let Some(t) = patch.topic.as_ref().filter(|t| **t != now.topic) {
            changes.insert("topic".into(), t.clone().into());
        }
        if let Some(p) = patch.purpose.as_ref().filter(|p| **p != now.purpose) {
            changes.insert("purpose".into(), p.clone().into());
        }
        if let Some(a) = patch.archived.filter(|a| *a != now.archived) {
            changes.insert("archived".into(), a.into());
        }
        if changes.is_empty() {
            return Ok(Change::Noop);
        }
        let renamed = sqlx::query(
            "UPDATE channels SET name = COALESCE($2, name), topic = COALESCE($3, topic), purpose = COALESCE($4, purpose), \
               archived = COALESCE($5, archived) WHERE id = $1",
        )
        .bind(channel)
        .bind(&patch.name)
        .bind(&patch.topic)
        .bind(&patch.purpose)
        .bind(patch.archived)
        .execute(&mut *tx)
        .await;
        match renamed {
            Err(e) if super::events::is_unique_violation(&e) => {
                return Err(ApiError::conflict(format!("a channel named {} already exists", patch.name.as_deref().unwrap_or_default())))
            }
            r => r?,
        };
        let ev = NewEvent { kind: "channel_update", user: actor.into(), ..Default::default() };
        let mut appended = append_locked(&mut tx, channel, ev).await?;
        let changes = serde_json::Value::Object(changes);
        sqlx::query("UPDATE events SET changes = $2 WHERE id = $1").bind(&appended.event.id).bind(&changes).execute(&mut *tx).await?;
        tx.commit().await?;
        appended.event.changes = Some(sqlx::types::Json(changes));
        Ok(Change::Applied(Box::new(appended)))
    }

    /// Removes someone else from a channel (the creator or a moderator); themselves: `leave`.
    pub async fn remove_member(
        &self,
        ws: &WorkspaceName,
        channel: &str,
        actor: &str,
        moderator: bool,
        user: &str,
    ) -> Result<Option<Appended>, ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let locked = lock_channel(&mut tx, channel, user).await?.ok_or_else(|| ApiError::not_found(format!("no channel {channel}")))?;
        let actor_member: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM members WHERE channel_id = $1 AND user_id = $2)")
            .bind(channel)
            .bind(actor)
            .fetch_one(&mut *tx)
            .await?;
        if locked.kind != ChannelKind::Public && !actor_member {
            return Err(ApiError::not_found(format!("no channel {channel}")));
        }
        if locked.kind.is_direct() {
            return Err(ApiError::forbidden("DM membership is fixed"));
        }
        if !moderator && locked.created_by.as_deref() != Some(actor) {
            return Err(ApiError::forbidden("only the channel's creator or a workspace owner/admin may remove members"));
        }
        if !locked.member {
            return Ok(None);
        }
        let ev = NewEvent { kind: "member_leave", user: user.into(), text: Some(format!("removed by {actor}")), ..Default::default() };
        let appended = append_locked(&mut tx, channel, ev).await?;
        remove_locked(&mut tx, channel, user).await?;
        tx.commit().await?;
        Ok(Some(appended))
    }

    /// Each member's read cursor as Postgres has it (Redis may be fresher).
    pub async fn member_reads(&self, ws: &WorkspaceName, channel: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let sql = Store::tenant_sql(ws, "SELECT user_id, read_seq FROM {s}.members WHERE channel_id = $1 ORDER BY user_id");
        sqlx::query_as(&sql).bind(channel).fetch_all(self.pool()).await
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

/// Removes a member from a channel whose row the transaction has locked.
async fn remove_locked(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, channel: &str, user: &str) -> Result<(), sqlx::Error> {
    let removed = sqlx::query("DELETE FROM members WHERE channel_id = $1 AND user_id = $2")
        .bind(channel)
        .bind(user)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    sqlx::query("UPDATE channels SET member_count = member_count - $2 WHERE id = $1")
        .bind(channel)
        .bind(removed as i32)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Joins `user` to `channel` in one statement, which takes the channel's row lock itself, so
/// the lock is held only for that statement and the commit: a thousand first connections of new
/// users queue on #general for far less time than with a lock taken first (issue 9's presence
/// run). None if already a member.
///
/// The membership check runs on the statement's snapshot, so the caller must make a racing
/// join of the same user impossible: hold the channel's lock already, or join a channel or a
/// user created in this transaction.
async fn join(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    channel: &str,
    user: &str,
    actor: &str,
) -> Result<Option<Appended>, sqlx::Error> {
    // The joiner's cursors start just before the join event, so the channel's old history is
    // not "unread".
    let ev = NewEvent {
        kind: "member_join",
        user: user.into(),
        cmid: None,
        text: (actor != user).then(|| format!("added by {actor}")),
        ..Default::default()
    };
    append_if(
        tx,
        channel,
        ev,
        "UPDATE channels SET last_seq = last_seq + 1, member_count = member_count + 1 \
         WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM members WHERE channel_id = $1 AND user_id = $4) RETURNING last_seq",
        &["INSERT INTO members (channel_id, user_id, delivered_seq, read_seq) SELECT $1, $4, s.last_seq - 1, s.last_seq - 1 FROM s"],
    )
    .await
}
