//! A message's life after it was sent: the state columns of its `events` row (`body`,
//! `edited_at`, `deleted`, `state_seq`), `message_edits` and `reactions`, each change appended
//! as an event of the channel's sequence in the same transaction (issue 9).
//!
//! Owns the rules that need the row lock (who may change which message, no-ops, limits) and the
//! rendering of current state for history and replay. It must not decide roles (the domain's
//! authorization module passes them in) nor publish.

use chrono::{DateTime, Utc};
use palaver_crds::WorkspaceName;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Transaction};

use super::events::{append_if, archived_error, lock_channel, EVENT_COLUMNS, LOCKED_GUARD};
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

/// Moves the target message's (`$9`'s) `state_seq` to the change's seq (`s.last_seq`).
const MOVE_STATE: &str = "UPDATE events SET state_seq = s.last_seq FROM s WHERE events.id = $9";

/// [`MOVE_STATE`], and rewrites the message's reaction summary from `reactions` (migration 0008:
/// emoji in the order they first appeared, the first five users of each).
const MOVE_STATE_AND_REACTIONS: &str = "UPDATE events SET state_seq = s.last_seq, reactions = \
       (SELECT COALESCE(jsonb_agg(jsonb_build_object('emoji', emoji, 'count', n, 'users', users) ORDER BY first, emoji), '[]') \
        FROM (SELECT emoji, count(*) AS n, (array_agg(user_id ORDER BY created_at, user_id))[1:5] AS users, min(created_at) AS first \
              FROM reactions WHERE message_id = $9 GROUP BY emoji) g) \
     FROM s WHERE events.id = $9";

/// An edit: the message takes the new text (`$6`) and time (`$8`), and its old text goes to
/// the edit history (read from the row as it was before this statement).
const EDIT: [&str; 2] = [
    "UPDATE events SET state_seq = s.last_seq, body = $6, edited_at = $8 FROM s WHERE events.id = $9",
    "INSERT INTO message_edits (message_id, seq, old_text, edited_at) \
     SELECT $9, s.last_seq, COALESCE(m.body, ''), $8 FROM s, events m WHERE m.id = $9",
];

/// Appends a change event of a locked channel and, in the same statement, changes the message
/// (`also`: [`MOVE_STATE`], [`MOVE_STATE_AND_REACTIONS`] or [`EDIT`]).
async fn append_change(
    tx: &mut Transaction<'_, Postgres>,
    channel: &str,
    message: &str,
    ev: NewEvent,
    also: &[&str],
) -> Result<Appended, sqlx::Error> {
    let ev = NewEvent { target: Some(message.to_string()), ..ev };
    append_if(tx, channel, ev, LOCKED_GUARD, also).await?.ok_or(sqlx::Error::RowNotFound)
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
        let appended = append_change(&mut tx, channel, message, ev, &EDIT).await?;
        tx.commit().await?;
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
        // One statement in the common case: inserted unless already there or over the limit.
        let inserted = sqlx::query(
            "INSERT INTO reactions (message_id, emoji, user_id, created_at) SELECT $1, $2, $3, $4 \
             WHERE EXISTS (SELECT 1 FROM reactions WHERE message_id = $1 AND emoji = $2) \
                OR (SELECT count(DISTINCT emoji) FROM reactions WHERE message_id = $1) < $5 \
             ON CONFLICT DO NOTHING",
        )
        .bind(message)
        .bind(emoji)
        .bind(user)
        .bind(now_ts())
        .bind(MAX_DISTINCT_REACTIONS)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            let mine: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3)")
                    .bind(message)
                    .bind(emoji)
                    .bind(user)
                    .fetch_one(&mut *tx)
                    .await?;
            if mine {
                return Ok(Change::Noop);
            }
            return Err(ApiError::conflict(format!("a message has at most {MAX_DISTINCT_REACTIONS} distinct reactions")));
        }
        let ev = NewEvent { kind: "reaction_add", user: user.into(), emoji: Some(emoji.into()), ..Default::default() };
        let appended = append_change(&mut tx, channel, message, ev, &[MOVE_STATE_AND_REACTIONS]).await?;
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
        let appended = append_change(&mut tx, channel, message, ev, &[MOVE_STATE_AND_REACTIONS]).await?;
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

    /// One event by id, as stored (a change's target, for the consumers).
    pub async fn event_by_id(&self, ws: &WorkspaceName, id: &str) -> Result<Option<Event>, sqlx::Error> {
        let sql = Store::tenant_sql(ws, &format!("SELECT {EVENT_COLUMNS} FROM {{s}}.events e WHERE e.id = $1"));
        sqlx::query_as(&sql).bind(id).fetch_optional(self.pool()).await
    }
}

/// The current state of a `message` row `e` as `$viewer` sees it, as extra columns of a query
/// over [`EVENT_COLUMNS`] (read into a [`RenderedRow`]): what history and replay send. The
/// reaction summary is read as stored on the row; only the viewer's own reactions are looked up.
pub(super) fn state_columns(viewer: u8) -> String {
    "e.deleted AS st_deleted, COALESCE(e.state_seq, e.seq) AS st_state_seq, e.reply_count AS st_reply_count, \
     e.last_reply_ts AS st_last_reply_ts, e.reply_users AS st_reply_users, e.reply_users_count AS st_reply_users_count, \
     e.reactions AS st_reactions, \
     CASE WHEN e.kind <> 'message' OR e.reactions = '[]' THEN '{}' \
       ELSE ARRAY(SELECT r.emoji FROM {s}.reactions r WHERE r.message_id = e.id AND r.user_id = $"
        .to_string()
        + &viewer.to_string()
        + ") END AS st_mine"
}

/// An event with its [`state_columns`], selected as `{EVENT_COLUMNS}, {state_columns}`.
pub(super) struct RenderedRow {
    event: Event,
    st_deleted: bool,
    st_state_seq: i64,
    st_reply_count: i32,
    st_last_reply_ts: Option<DateTime<Utc>>,
    st_reply_users: Vec<String>,
    st_reply_users_count: i32,
    st_reactions: sqlx::types::Json<Vec<StoredReaction>>,
    st_mine: Vec<String>,
}

/// Columns of a rendered row: the 15 of [`EVENT_COLUMNS`](super::events::EVENT_COLUMNS), then
/// the 8 of [`state_columns`].
const RENDERED_COLUMNS: usize = 23;

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for RenderedRow {
    /// By position, in the order of the SELECT: a history page decodes 23 columns for each of
    /// its rows, and looking each up by name was a tenth of the pod's CPU per page
    /// (docs/benchmarks.md, issue 9's read targets).
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        if row.len() != RENDERED_COLUMNS {
            return Err(sqlx::Error::ColumnIndexOutOfBounds { index: RENDERED_COLUMNS, len: row.len() });
        }
        let event = Event {
            channel: row.try_get(0)?,
            seq: row.try_get(1)?,
            kind: row.try_get(2)?,
            id: row.try_get(3)?,
            user: row.try_get(4)?,
            cmid: row.try_get(5)?,
            text: row.try_get(6)?,
            ts: row.try_get(7)?,
            thread: row.try_get(8)?,
            also_channel: row.try_get(9)?,
            target: row.try_get(10)?,
            emoji: row.try_get(11)?,
            edited_at: row.try_get(12)?,
            changes: row.try_get(13)?,
            files: row.try_get(14)?,
            state: None,
        };
        Ok(RenderedRow {
            event,
            st_deleted: row.try_get(15)?,
            st_state_seq: row.try_get(16)?,
            st_reply_count: row.try_get(17)?,
            st_last_reply_ts: row.try_get(18)?,
            st_reply_users: row.try_get(19)?,
            st_reply_users_count: row.try_get(20)?,
            st_reactions: row.try_get(21)?,
            st_mine: row.try_get(22)?,
        })
    }
}

impl From<RenderedRow> for Event {
    /// A `message` carries its state; other events are their own state.
    fn from(r: RenderedRow) -> Event {
        let mut event = r.event;
        if event.kind == "message" {
            let mine = r.st_mine;
            let reactions = r
                .st_reactions
                .0
                .into_iter()
                .map(|x| ReactionSummary { me: mine.contains(&x.emoji), emoji: x.emoji, count: x.count, users: x.users })
                .collect();
            event.state = Some(MessageState {
                deleted: r.st_deleted,
                state_seq: r.st_state_seq,
                reactions,
                reply_count: r.st_reply_count,
                last_reply_ts: r.st_last_reply_ts,
                reply_users: r.st_reply_users,
                reply_users_count: r.st_reply_users_count,
            });
        }
        event
    }
}

/// One entry of a message's stored reaction summary (`events.reactions`, migration 0008).
#[derive(Deserialize)]
struct StoredReaction {
    emoji: String,
    count: i64,
    users: Vec<String>,
}

/// The tombstone: a `delete` event; text, edit history, edit events' text, reactions and
/// attachments gone (the files sweeper removes their objects).
async fn purge(tx: &mut Transaction<'_, Postgres>, channel: &str, message: &str, actor: &str) -> Result<Appended, sqlx::Error> {
    let delete = NewEvent { kind: "delete", user: actor.into(), ..Default::default() };
    let appended = append_change(tx, channel, message, delete, &[MOVE_STATE]).await?;
    sqlx::query("UPDATE events SET body = NULL, deleted = true, reactions = '[]', files = NULL WHERE id = $1")
        .bind(message)
        .execute(&mut **tx)
        .await?;
    super::files::delete_message_files(tx, message).await?;
    sqlx::query("UPDATE events SET body = NULL WHERE target = $1 AND kind = 'edit'").bind(message).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM message_edits WHERE message_id = $1").bind(message).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM reactions WHERE message_id = $1").bind(message).execute(&mut **tx).await?;
    Ok(appended)
}
