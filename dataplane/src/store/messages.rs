//! A message's life after it was sent: the state columns of its `events` row (`body`,
//! `edited_at`, `deleted`, `state_seq`), `message_edits` and `reactions`, each change appended
//! as an event of the channel's sequence in the same transaction (issue 9).
//!
//! Owns the rules that need the row lock (who may change which message, no-ops, limits) and the
//! rendering of current state for history and replay. It must not decide roles (the domain's
//! authorization module passes them in) nor publish.

use chrono::{DateTime, Utc};
use palaver_crds::WorkspaceName;
use serde::Serialize;
use sqlx::{Postgres, Transaction};

use super::events::{append_locked, archived_error, lock_channel, EVENT_COLUMNS};
use super::{now_ts, Appended, NewEvent, Store};
use crate::error::ApiError;
use crate::protocol::{Event, MessageState, ReactionSummary};

/// Most distinct emoji on one message (issue 9); the next one is `conflict`.
pub const MAX_DISTINCT_REACTIONS: i64 = 50;

/// What a change request did: appended an event, or nothing (already so).
#[derive(Debug, Clone)]
pub enum Change {
    Applied(Box<Appended>),
    Noop,
}

/// Who asks for a change, with what the authorization module decided about them.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub user: &'a str,
    /// Workspace owner or admin: may delete anyone's message.
    pub moderator: bool,
}

/// One earlier version of a message's text.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EditRecord {
    /// Seq of the `edit` event that replaced this text.
    pub seq: i64,
    pub old_text: String,
    pub edited_at: DateTime<Utc>,
}

/// The message row under the channel's lock.
struct Target {
    author: String,
    body: Option<String>,
    deleted: bool,
}

/// Why a message's channel is locked: a change by a member (refused in an archived channel), or
/// a delete, which works in archived channels and which a moderator may do in a public channel
/// they have not joined.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Change,
    Delete { moderator: bool },
}

/// Locks the channel (all changes to it are serialized with its sends) and reads the message.
/// A caller who may not see the channel, or a message that is not a live `message` of it, gets
/// `not_found`, exactly as for ids that do not exist.
async fn lock_target(
    tx: &mut Transaction<'_, Postgres>,
    channel: &str,
    message: &str,
    user: &str,
    purpose: Purpose,
) -> Result<Target, ApiError> {
    let locked = lock_channel(tx, channel, user).await?.ok_or_else(|| ApiError::not_found(format!("no channel {channel}")))?;
    if locked.hidden() {
        return Err(ApiError::not_found(format!("no channel {channel}")));
    }
    if !locked.member && purpose != (Purpose::Delete { moderator: true }) {
        return Err(ApiError::forbidden(format!("not a member of {channel}: join it first")));
    }
    if purpose == Purpose::Change && locked.archived {
        return Err(archived_error(channel));
    }
    let row: Option<(String, Option<String>, bool)> =
        sqlx::query_as("SELECT user_id, body, deleted FROM events WHERE id = $1 AND channel_id = $2 AND kind = 'message'")
            .bind(message)
            .bind(channel)
            .fetch_optional(&mut **tx)
            .await?;
    match row {
        Some((author, body, deleted)) => Ok(Target { author, body, deleted }),
        None => Err(ApiError::not_found(format!("no message {message} in channel {channel}"))),
    }
}

/// Appends a change event and moves the message's `state_seq` to it.
async fn append_change(tx: &mut Transaction<'_, Postgres>, channel: &str, message: &str, ev: NewEvent) -> Result<Appended, sqlx::Error> {
    let appended = append_locked(tx, channel, NewEvent { target: Some(message.to_string()), ..ev }).await?;
    sqlx::query("UPDATE events SET state_seq = $2 WHERE id = $1").bind(message).bind(appended.event.seq).execute(&mut **tx).await?;
    Ok(appended)
}

impl Store {
    /// Replaces a message's text (author only). The same text is a no-op.
    pub async fn edit_message(
        &self,
        ws: &WorkspaceName,
        channel: &str,
        message: &str,
        actor: Actor<'_>,
        text: &str,
    ) -> Result<Change, ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let t = lock_target(&mut tx, channel, message, actor.user, Purpose::Change).await?;
        if t.deleted {
            return Err(ApiError::not_found(format!("message {message} was deleted")));
        }
        if t.author != actor.user {
            return Err(ApiError::forbidden("only the author may edit a message"));
        }
        if t.body.as_deref() == Some(text) {
            return Ok(Change::Noop);
        }
        let ev = NewEvent { kind: "edit", user: actor.user.into(), text: Some(text.into()), ..Default::default() };
        let mut appended = append_change(&mut tx, channel, message, ev).await?;
        let ts = appended.event.ts;
        sqlx::query("INSERT INTO message_edits (message_id, seq, old_text, edited_at) VALUES ($1, $2, $3, $4)")
            .bind(message)
            .bind(appended.event.seq)
            .bind(t.body.unwrap_or_default())
            .bind(ts)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE events SET body = $2, edited_at = $3 WHERE id = $1")
            .bind(message)
            .bind(text)
            .bind(ts)
            .execute(&mut *tx)
            .await?;
        // The edit event carries its time too, also when read back (replay, fills, the sweeper).
        sqlx::query("UPDATE events SET edited_at = $2 WHERE id = $1").bind(&appended.event.id).bind(ts).execute(&mut *tx).await?;
        tx.commit().await?;
        appended.event.edited_at = Some(ts);
        Ok(Change::Applied(Box::new(appended)))
    }

    /// Deletes a message (its author, or a moderator): a tombstone stays; its text, edit history
    /// (also the text of its `edit` events) and reactions are purged. Deleting again is a no-op.
    pub async fn delete_message(&self, ws: &WorkspaceName, channel: &str, message: &str, actor: Actor<'_>) -> Result<Change, ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let t = lock_target(&mut tx, channel, message, actor.user, Purpose::Delete { moderator: actor.moderator }).await?;
        if t.author != actor.user && !actor.moderator {
            return Err(ApiError::forbidden("only the author or a workspace owner/admin may delete a message"));
        }
        if t.deleted {
            return Ok(Change::Noop);
        }
        let appended = purge(&mut tx, channel, message, actor.user).await?;
        tx.commit().await?;
        Ok(Change::Applied(Box::new(appended)))
    }

    /// Adds the actor's reaction; already there is a no-op.
    pub async fn react(&self, ws: &WorkspaceName, channel: &str, message: &str, user: &str, emoji: &str) -> Result<Change, ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let t = lock_target(&mut tx, channel, message, user, Purpose::Change).await?;
        if t.deleted {
            return Err(ApiError::not_found(format!("message {message} was deleted")));
        }
        let (mine, emoji_known, distinct): (bool, bool, i64) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3), \
                    EXISTS (SELECT 1 FROM reactions WHERE message_id = $1 AND emoji = $2), \
                    (SELECT count(DISTINCT emoji) FROM reactions WHERE message_id = $1)",
        )
        .bind(message)
        .bind(emoji)
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        if mine {
            return Ok(Change::Noop);
        }
        if !emoji_known && distinct >= MAX_DISTINCT_REACTIONS {
            return Err(ApiError::conflict(format!("a message has at most {MAX_DISTINCT_REACTIONS} distinct reactions")));
        }
        sqlx::query("INSERT INTO reactions (message_id, emoji, user_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(message)
            .bind(emoji)
            .bind(user)
            .bind(now_ts())
            .execute(&mut *tx)
            .await?;
        let ev = NewEvent { kind: "reaction_add", user: user.into(), emoji: Some(emoji.into()), ..Default::default() };
        let appended = append_change(&mut tx, channel, message, ev).await?;
        tx.commit().await?;
        Ok(Change::Applied(Box::new(appended)))
    }

    /// Removes the actor's reaction; not there is a no-op.
    pub async fn unreact(&self, ws: &WorkspaceName, channel: &str, message: &str, user: &str, emoji: &str) -> Result<Change, ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let t = lock_target(&mut tx, channel, message, user, Purpose::Change).await?;
        if t.deleted {
            return Err(ApiError::not_found(format!("message {message} was deleted")));
        }
        let removed = sqlx::query("DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3")
            .bind(message)
            .bind(emoji)
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Ok(Change::Noop);
        }
        let ev = NewEvent { kind: "reaction_remove", user: user.into(), emoji: Some(emoji.into()), ..Default::default() };
        let appended = append_change(&mut tx, channel, message, ev).await?;
        tx.commit().await?;
        Ok(Change::Applied(Box::new(appended)))
    }

    /// A message's earlier versions, oldest first (empty once deleted).
    pub async fn message_edits(&self, ws: &WorkspaceName, channel: &str, message: &str) -> Result<Vec<EditRecord>, ApiError> {
        let sql = Store::tenant_sql(
            ws,
            "SELECT m.seq, m.old_text, m.edited_at FROM {s}.message_edits m JOIN {s}.events e ON e.id = m.message_id \
             WHERE m.message_id = $1 AND e.channel_id = $2 ORDER BY m.seq",
        );
        let exists = Store::tenant_sql(ws, "SELECT 1 FROM {s}.events WHERE id = $1 AND channel_id = $2 AND kind = 'message'");
        if sqlx::query(&exists).bind(message).bind(channel).fetch_optional(self.pool()).await?.is_none() {
            return Err(ApiError::not_found(format!("no message {message} in channel {channel}")));
        }
        Ok(sqlx::query_as(&sql).bind(message).bind(channel).fetch_all(self.pool()).await?)
    }

    /// Adds each `message`'s current state (tombstone, `state_seq`, reactions as `viewer` sees
    /// them) to events read from the log: what history and replay send.
    pub async fn render(&self, ws: &WorkspaceName, viewer: &str, events: &mut [Event]) -> Result<(), sqlx::Error> {
        let ids: Vec<&str> = events.iter().filter(|e| e.kind == "message").map(|e| e.id.as_str()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let sql = Store::tenant_sql(
            ws,
            "SELECT e.id, e.deleted, COALESCE(e.state_seq, e.seq), e.reply_count, e.last_reply_ts, e.reply_users, e.reply_users_count, \
               COALESCE((SELECT json_agg(json_build_object('emoji', r.emoji, 'count', r.n, 'me', r.me, 'users', r.users) ORDER BY r.first, r.emoji) \
                 FROM (SELECT emoji, count(*) AS n, bool_or(user_id = $2) AS me, \
                         (array_agg(user_id ORDER BY created_at, user_id))[1:5] AS users, min(created_at) AS first \
                       FROM {s}.reactions WHERE message_id = e.id GROUP BY emoji) r), '[]'::json) \
             FROM {s}.events e WHERE e.id = ANY($1)",
        );
        let rows: Vec<StateRow> = sqlx::query_as(&sql).bind(&ids).bind(viewer).fetch_all(self.pool()).await?;
        let mut by_id: std::collections::HashMap<String, MessageState> = rows
            .into_iter()
            .map(|(id, deleted, state_seq, reply_count, last_reply_ts, reply_users, reply_users_count, reactions)| {
                (
                    id,
                    MessageState { deleted, state_seq, reactions: reactions.0, reply_count, last_reply_ts, reply_users, reply_users_count },
                )
            })
            .collect();
        for e in events.iter_mut().filter(|e| e.kind == "message") {
            e.state = by_id.remove(&e.id);
        }
        Ok(())
    }

    /// One event by id, as stored (a change's target, for the consumers).
    pub async fn event_by_id(&self, ws: &WorkspaceName, id: &str) -> Result<Option<Event>, sqlx::Error> {
        let sql = Store::tenant_sql(ws, &format!("SELECT {EVENT_COLUMNS} FROM {{s}}.events e WHERE e.id = $1"));
        sqlx::query_as(&sql).bind(id).fetch_optional(self.pool()).await
    }
}

type StateRow = (String, bool, i64, i32, Option<DateTime<Utc>>, Vec<String>, i32, sqlx::types::Json<Vec<ReactionSummary>>);

/// The tombstone: a `delete` event; text, edit history, edit events' text and reactions gone.
async fn purge(tx: &mut Transaction<'_, Postgres>, channel: &str, message: &str, actor: &str) -> Result<Appended, sqlx::Error> {
    let appended = append_change(tx, channel, message, NewEvent { kind: "delete", user: actor.into(), ..Default::default() }).await?;
    sqlx::query("UPDATE events SET body = NULL, deleted = true WHERE id = $1").bind(message).execute(&mut **tx).await?;
    sqlx::query("UPDATE events SET body = NULL WHERE target = $1 AND kind = 'edit'").bind(message).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM message_edits WHERE message_id = $1").bind(message).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM reactions WHERE message_id = $1").bind(message).execute(&mut **tx).await?;
    Ok(appended)
}
