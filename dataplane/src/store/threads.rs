//! Threads: replies (`message` events whose `thread` is the root's id), the root's summary
//! columns, and `thread_followers` (who follows a thread and how far they have read it).
//!
//! Owns resolving a reply's root (a reply to a reply attaches to its root), updating the
//! summary in the reply's transaction, and the followed-threads list. It must not notify anyone:
//! the consumers do, from the log.

use chrono::{DateTime, Utc};
use palaver_crds::WorkspaceName;
use serde::Serialize;

use super::events::{append_if, check_send, is_unique_violation, lock_channel, sent_before, EVENT_COLUMNS, LOCKED_GUARD};
use super::files::{attach_files, claim_files};
use super::messages::{state_columns, RenderedRow};
use super::{Appended, NewEvent, Store};
use crate::error::ApiError;
use crate::protocol::Event;

/// Repliers named in a root's summary (issue 9); `reply_users_count` counts all of them.
pub const REPLY_USERS_SHOWN: i32 = 10;

/// Most unread replies counted per thread (like channels' unread counts).
pub const THREAD_UNREAD_CAP: i64 = 1000;

/// What a reply (`$7`: its root, `$4`: the replier, `$8`: its time, `s.last_seq`: its seq) also
/// writes in its append statement. Every part reads the rows as they were before it, so "first
/// reply" means the replier had not replied before.
static REPLY: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
    [
    // The replier follows (again, if they had unfollowed) and has read up to their reply; the
    // root's author follows from the first reply on (a row they may already have is kept).
    "INSERT INTO thread_followers (root_id, user_id, following, replied, read_seq) \
       SELECT $7, $4, true, true, s.last_seq FROM s \
       UNION ALL SELECT $7, r.user_id, true, false, 0 FROM events r WHERE r.id = $7 AND r.user_id <> $4 \
     ON CONFLICT (root_id, user_id) DO UPDATE SET \
       following = thread_followers.following OR EXCLUDED.replied, \
       replied = thread_followers.replied OR EXCLUDED.replied, \
       read_seq = CASE WHEN EXCLUDED.replied THEN GREATEST(thread_followers.read_seq, EXCLUDED.read_seq) \
                       ELSE thread_followers.read_seq END"
        .to_string(),
    // The reply changes its root: the root's state_seq moves to it (docs/protocol.md).
    format!(
        "UPDATE events SET reply_count = reply_count + 1, last_reply_ts = $8, state_seq = s.last_seq, \
       reply_users = CASE WHEN f.first AND cardinality(reply_users) < {REPLY_USERS_SHOWN} THEN reply_users || $4::text ELSE reply_users END, \
       reply_users_count = reply_users_count + CASE WHEN f.first THEN 1 ELSE 0 END \
     FROM s, (SELECT NOT EXISTS (SELECT 1 FROM thread_followers WHERE root_id = $7 AND user_id = $4 AND replied) AS first) f \
     WHERE events.id = $7"
    ),
]
});

/// A page of a thread: the root (first page only) and replies in seq order.
#[derive(Debug, Serialize)]
pub struct ThreadPage {
    pub root: Option<Event>,
    pub replies: Vec<Event>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// A thread the user follows.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct FollowedThread {
    pub channel: String,
    pub root: String,
    pub reply_count: i32,
    pub last_reply_ts: Option<DateTime<Utc>>,
    pub read_seq: i64,
    /// Replies by others after `read_seq` (at most 1000).
    pub unread: i64,
}

impl Store {
    /// A reply: like [`Store::send_message`] (membership, cmid idempotency, the channel's row
    /// lock), plus the root's summary and followers, in one transaction. After the checks, the
    /// reply, its outbox row, the followers and the root's summary are one statement.
    pub async fn send_reply(&self, ws: &WorkspaceName, channel: &str, ev: NewEvent) -> Result<Appended, ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let locked = lock_channel(&mut tx, channel, &ev.user).await?;
        // Under the channel's lock, so a same-cmid reply racing this one has committed.
        if let Some(orig) = sent_before(&mut tx, channel, &ev).await? {
            return Ok(orig);
        }
        check_send(locked.as_ref(), channel)?;
        let asked = ev.thread.clone().unwrap_or_default();
        let not_found = || ApiError::not_found(format!("thread: no message {asked} in channel {channel}"));
        // A reply to a reply attaches to its root.
        let root: Option<(String, bool)> = sqlx::query_as(
            "SELECT r.id, r.deleted FROM events p JOIN events r ON r.id = COALESCE(p.thread, p.id) \
             WHERE p.id = $1 AND p.channel_id = $2 AND p.kind = 'message' FOR UPDATE OF r",
        )
        .bind(&asked)
        .bind(channel)
        .fetch_optional(&mut *tx)
        .await?;
        let (root_id, root_deleted) = root.ok_or_else(not_found)?;
        if root_deleted {
            return Err(not_found());
        }
        let cmid = ev.cmid.clone().unwrap_or_default();
        let attach = ev.attach.clone();
        let files = if attach.is_empty() { None } else { Some(claim_files(&mut tx, channel, &ev.user, &attach).await?) };
        let appended = match append_if(
            &mut tx,
            channel,
            NewEvent { thread: Some(root_id), files, ..ev },
            LOCKED_GUARD,
            &REPLY.each_ref().map(String::as_str),
        )
        .await
        {
            // The same cmid, committed meanwhile for another channel (this one's lock is held).
            Err(e) if is_unique_violation(&e) => {
                return Err(ApiError::conflict(format!("cmid {cmid} was already used for another channel")))
            }
            r => r?.ok_or(sqlx::Error::RowNotFound)?,
        };
        if !attach.is_empty() {
            attach_files(&mut tx, &appended.event.id, &attach).await?;
        }
        tx.commit().await?;
        Ok(appended)
    }

    /// A thread page: replies after `after` (exclusive), the root with the first page, each
    /// message rendered as `viewer` sees it now.
    pub async fn thread_page(
        &self,
        ws: &WorkspaceName,
        channel: &str,
        root: &str,
        viewer: &str,
        after: Option<i64>,
        limit: i64,
    ) -> Result<ThreadPage, ApiError> {
        let state = state_columns(3);
        let sql = Store::tenant_sql(
            ws,
            &format!(
                "SELECT {EVENT_COLUMNS}, {state} FROM {{s}}.events e \
                 WHERE e.id = $1 AND e.channel_id = $2 AND e.kind = 'message' AND e.thread IS NULL"
            ),
        );
        let root_ev: Option<RenderedRow> = sqlx::query_as(&sql).bind(root).bind(channel).bind(viewer).fetch_optional(self.pool()).await?;
        let root_ev = Event::from(root_ev.ok_or_else(|| ApiError::not_found(format!("no thread {root} in channel {channel}")))?);
        let state = state_columns(4);
        let sql = Store::tenant_sql(
            ws,
            &format!("SELECT {EVENT_COLUMNS}, {state} FROM {{s}}.events e WHERE e.thread = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3"),
        );
        let rows: Vec<RenderedRow> =
            sqlx::query_as(&sql).bind(root).bind(after.unwrap_or(0)).bind(limit + 1).bind(viewer).fetch_all(self.pool()).await?;
        let mut replies: Vec<Event> = rows.into_iter().map(Event::from).collect();
        let more = replies.len() as i64 > limit;
        replies.truncate(limit as usize);
        let next_cursor = if more { replies.last().map(|r| r.seq.to_string()) } else { None };
        Ok(ThreadPage { root: after.is_none().then_some(root_ev), replies, next_cursor })
    }

    /// Follows or unfollows a thread (anyone who can read the channel).
    pub async fn follow_thread(&self, ws: &WorkspaceName, channel: &str, root: &str, user: &str, follow: bool) -> Result<(), ApiError> {
        let exists =
            Store::tenant_sql(ws, "SELECT 1 FROM {s}.events WHERE id = $1 AND channel_id = $2 AND kind = 'message' AND thread IS NULL");
        if sqlx::query(&exists).bind(root).bind(channel).fetch_optional(self.pool()).await?.is_none() {
            return Err(ApiError::not_found(format!("no thread {root} in channel {channel}")));
        }
        let sql = Store::tenant_sql(
            ws,
            "INSERT INTO {s}.thread_followers (root_id, user_id, following) VALUES ($1, $2, $3) \
             ON CONFLICT (root_id, user_id) DO UPDATE SET following = EXCLUDED.following",
        );
        sqlx::query(&sql).bind(root).bind(user).bind(follow).execute(self.pool()).await?;
        Ok(())
    }

    /// Moves the user's read cursor of a thread forward (never past its last reply).
    pub async fn read_thread(&self, ws: &WorkspaceName, channel: &str, root: &str, user: &str, seq: i64) -> Result<(), ApiError> {
        let sql = Store::tenant_sql(
            ws,
            "INSERT INTO {s}.thread_followers (root_id, user_id, following, read_seq) \
               SELECT r.id, $3, false, LEAST($4, GREATEST(COALESCE((SELECT max(seq) FROM {s}.events WHERE thread = r.id), 0), r.seq)) \
               FROM {s}.events r WHERE r.id = $1 AND r.channel_id = $2 AND r.kind = 'message' AND r.thread IS NULL \
             ON CONFLICT (root_id, user_id) DO UPDATE SET read_seq = GREATEST(thread_followers.read_seq, EXCLUDED.read_seq) \
             RETURNING 1",
        );
        let done = sqlx::query(&sql).bind(root).bind(channel).bind(user).bind(seq).fetch_optional(self.pool()).await?;
        done.map(|_| ()).ok_or_else(|| ApiError::not_found(format!("no thread {root} in channel {channel}")))
    }

    /// The threads the user follows in channels they are in, most recent reply first, with
    /// unread reply counts. `before` pages: (last_reply_ts, root id) of the previous page's end.
    pub async fn followed_threads(
        &self,
        ws: &WorkspaceName,
        user: &str,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<FollowedThread>, sqlx::Error> {
        let (ts, id) = before.map_or((None, None), |(t, i)| (Some(t), Some(i)));
        let sql = Store::tenant_sql(
            ws,
            "SELECT e.channel_id AS channel, e.id AS root, e.reply_count, e.last_reply_ts, f.read_seq, \
               (SELECT count(*) FROM (SELECT 1 FROM {s}.events r WHERE r.thread = e.id AND r.seq > f.read_seq AND r.user_id <> $1 LIMIT $5) x) AS unread \
             FROM {s}.thread_followers f JOIN {s}.events e ON e.id = f.root_id \
             JOIN {s}.members m ON m.channel_id = e.channel_id AND m.user_id = f.user_id \
             WHERE f.user_id = $1 AND f.following AND e.reply_count > 0 \
               AND ($2::timestamptz IS NULL OR (e.last_reply_ts, e.id) < ($2, $3)) \
             ORDER BY e.last_reply_ts DESC, e.id DESC LIMIT $4",
        );
        sqlx::query_as(&sql).bind(user).bind(ts).bind(id).bind(limit).bind(THREAD_UNREAD_CAP).fetch_all(self.pool()).await
    }

    /// Followers of a thread other than `except` (consumers: offline followers are notified).
    pub async fn thread_followers(&self, ws: &WorkspaceName, root: &str, except: &str) -> Result<Vec<String>, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            "SELECT user_id FROM {s}.thread_followers WHERE root_id = $1 AND following AND user_id <> $2 ORDER BY user_id",
        );
        sqlx::query_scalar(&sql).bind(root).bind(except).fetch_all(self.pool()).await
    }
}
