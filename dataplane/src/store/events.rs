//! The `events` and `channels.last_seq` tables: the send path and history.

use chrono::{DateTime, Utc};
use palaver_crds::WorkspaceName;
use sqlx::{Postgres, Transaction};

use super::messages::{state_columns, RenderedRow};
use super::{new_id, now_ts, ChannelKind, Store};
use crate::error::ApiError;
use crate::protocol::{Event, FileRef};

/// An event to append; `seq`, `id` and `ts` are assigned by the store.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub kind: &'static str,
    pub user: String,
    pub cmid: Option<String>,
    pub text: Option<String>,
    pub thread: Option<String>,
    /// The message a change event changes.
    pub target: Option<String>,
    pub emoji: Option<String>,
    /// A reply also shown in the channel.
    pub also_channel: bool,
    /// Uploads (file ids) a `message` attaches: claimed in its transaction, then carried as
    /// `files` ([`super::files`]).
    pub attach: Vec<String>,
    /// A `message`'s attachments as the event carries them.
    pub files: Option<Vec<FileRef>>,
}

/// The result of an append: the event, and its outbox row (None when the cmid was seen before
/// and the original event is returned instead).
#[derive(Debug, Clone)]
pub struct Appended {
    pub event: Event,
    pub outbox_id: Option<i64>,
}

#[derive(Debug, serde::Serialize)]
pub struct HistoryPage {
    pub events: Vec<Event>,
    /// More events exist beyond this page in the direction of the query.
    pub has_more: bool,
}

/// The columns of an [`Event`], from `events e`. `messages::RenderedRow` reads them by
/// position: keep the order.
pub(super) const EVENT_COLUMNS: &str =
    "e.channel_id AS channel, e.seq, e.kind, e.id, e.user_id AS \"user\", e.cmid, e.body AS text, e.ts, \
     e.thread, e.also_channel, e.target, e.emoji, e.edited_at, e.changes, e.files";

/// State of a channel row locked `FOR UPDATE` for the rest of the transaction.
pub(super) struct LockedChannel {
    pub kind: ChannelKind,
    pub member: bool,
    pub archived: bool,
    pub created_by: Option<String>,
}

/// Writes to an archived channel (sends, edits, reactions) are refused (issue 9).
pub(super) fn archived_error(channel: &str) -> ApiError {
    ApiError::forbidden(format!("channel {channel} is archived"))
}

impl LockedChannel {
    /// Private channels and DMs are invisible to non-members: every answer about them must be
    /// the one a channel that does not exist gets (issue 7).
    pub fn hidden(&self) -> bool {
        self.kind != ChannelKind::Public && !self.member
    }
}

/// Locks the channel row: every append to this channel waits here, which makes seqs gap-free
/// and commit order equal to seq order.
pub(super) async fn lock_channel(
    tx: &mut Transaction<'_, Postgres>,
    channel: &str,
    user: &str,
) -> Result<Option<LockedChannel>, sqlx::Error> {
    read_channel(tx, channel, user, " FOR UPDATE OF c").await
}

/// The channel row as [`lock_channel`] reads it, without the lock (`lock`: "" or a locking
/// clause, a constant).
async fn read_channel(
    tx: &mut Transaction<'_, Postgres>,
    channel: &str,
    user: &str,
    lock: &str,
) -> Result<Option<LockedChannel>, sqlx::Error> {
    let sql = format!(
        "SELECT c.kind, EXISTS (SELECT 1 FROM members m WHERE m.channel_id = c.id AND m.user_id = $2), c.archived, c.created_by \
         FROM channels c WHERE c.id = $1{lock}"
    );
    let row: Option<(String, bool, bool, Option<String>)> = sqlx::query_as(&sql).bind(channel).bind(user).fetch_optional(&mut **tx).await?;
    Ok(row.map(|(kind, member, archived, created_by)| LockedChannel { kind: ChannelKind::from_db(&kind), member, archived, created_by }))
}

/// The channel's state for a write that does not append (an upload): [`lock_channel`]'s
/// answer without taking the lock sends wait for.
pub(super) async fn peek_channel(
    tx: &mut Transaction<'_, Postgres>,
    channel: &str,
    user: &str,
) -> Result<Option<LockedChannel>, sqlx::Error> {
    read_channel(tx, channel, user, "").await
}

/// Whether `user` (whose view of the channel `locked` is) may send to it: a channel they may
/// not see is `not_found`, a public one they have not joined `forbidden`, an archived one too.
pub(super) fn check_send(locked: Option<&LockedChannel>, channel: &str) -> Result<(), ApiError> {
    let locked = locked.ok_or_else(|| ApiError::not_found(format!("no channel {channel}")))?;
    if locked.hidden() {
        return Err(ApiError::not_found(format!("no channel {channel}")));
    }
    if !locked.member {
        return Err(ApiError::forbidden(format!("not a member of {channel}: join it first")));
    }
    if locked.archived {
        return Err(archived_error(channel));
    }
    Ok(())
}

/// Appends to a channel whose row the transaction has locked; inserts the outbox row too.
pub(super) async fn append_locked(tx: &mut Transaction<'_, Postgres>, channel: &str, ev: NewEvent) -> Result<Appended, sqlx::Error> {
    let appended = append_if(tx, channel, ev, LOCKED_GUARD, &[]).await?;
    appended.ok_or(sqlx::Error::RowNotFound)
}

/// The guard of [`append_if`] for a channel whose row the transaction has locked.
pub(super) const LOCKED_GUARD: &str = "UPDATE channels SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq";

/// Appends `ev` in one statement, if `guard` returns a row: an `UPDATE channels … WHERE id = $1
/// … RETURNING last_seq` that moves the channel's `last_seq` on (and takes its row lock).
/// `also` are more data-modifying statements of the same append, which see the new seq as
/// `s.last_seq` and, like every part of one statement, the rows as they were before it. All
/// bind what [`bind_append`] binds. An `edit` event records its time as `edited_at` too.
pub(super) async fn append_if(
    tx: &mut Transaction<'_, Postgres>,
    channel: &str,
    ev: NewEvent,
    guard: &str,
    also: &[&str],
) -> Result<Option<Appended>, sqlx::Error> {
    let id = new_id("m");
    let ts = now_ts();
    let also: String = also.iter().enumerate().map(|(i, sql)| format!("a{i} AS ({sql}), ")).collect();
    let sql = format!(
        "WITH s AS ({guard}), {also}\
              e AS (INSERT INTO events (channel_id, seq, id, kind, user_id, cmid, body, thread, ts, target, emoji, also_channel, \
                                        files, state_seq, edited_at) \
                    SELECT $1, s.last_seq, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, s.last_seq, CASE WHEN $3 = 'edit' THEN $8 END FROM s \
                    RETURNING seq) \
         INSERT INTO outbox (channel_id, seq) SELECT $1, seq FROM e RETURNING id, seq"
    );
    let row = bind_append(sqlx::query_as(&sql), channel, &id, &ev, ts).fetch_optional(&mut **tx).await?;
    Ok(row.map(|(outbox_id, seq)| {
        let mut event = ev.into_event(channel, seq, id, ts);
        event.edited_at = (event.kind == "edit").then_some(ts);
        Appended { event, outbox_id: Some(outbox_id) }
    }))
}

type AppendQuery<'q> = sqlx::query::QueryAs<'q, Postgres, (i64, i64), sqlx::postgres::PgArguments>;

/// Binds $1..$12 of the append statements: channel, id, kind, user, cmid, text, thread, ts,
/// target, emoji, also_channel, files.
fn bind_append<'q>(q: AppendQuery<'q>, channel: &'q str, id: &'q str, ev: &'q NewEvent, ts: DateTime<Utc>) -> AppendQuery<'q> {
    q.bind(channel)
        .bind(id)
        .bind(ev.kind)
        .bind(&ev.user)
        .bind(&ev.cmid)
        .bind(&ev.text)
        .bind(&ev.thread)
        .bind(ts)
        .bind(&ev.target)
        .bind(&ev.emoji)
        .bind(ev.also_channel)
        .bind(ev.files.as_ref().map(sqlx::types::Json))
}

impl NewEvent {
    /// A message that can share a batch statement ([`Store::send_messages`]): no thread, no
    /// files.
    pub fn batchable(&self) -> bool {
        self.thread.is_none() && self.attach.is_empty()
    }

    fn into_event(self, channel: &str, seq: i64, id: String, ts: DateTime<Utc>) -> Event {
        Event {
            channel: channel.into(),
            seq,
            kind: self.kind.into(),
            id,
            user: self.user,
            cmid: self.cmid,
            text: self.text,
            ts,
            thread: self.thread,
            target: self.target,
            emoji: self.emoji,
            also_channel: self.also_channel,
            files: self.files.map(sqlx::types::Json),
            ..Default::default()
        }
    }
}

/// The event a repeated cmid already created (the idempotent answer to a send), or `conflict`
/// if that cmid was used for another channel.
pub(super) async fn sent_before(tx: &mut Transaction<'_, Postgres>, channel: &str, ev: &NewEvent) -> Result<Option<Appended>, ApiError> {
    let Some(cmid) = &ev.cmid else { return Ok(None) };
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.user_id = $1 AND e.cmid = $2");
    match sqlx::query_as::<_, Event>(&sql).bind(&ev.user).bind(cmid).fetch_optional(&mut **tx).await? {
        Some(orig) if orig.channel != channel => Err(ApiError::conflict(format!("cmid {cmid} was already used for another channel"))),
        Some(orig) => Ok(Some(Appended { event: orig, outbox_id: None })),
        None => Ok(None),
    }
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

impl Store {
    /// The send path: membership check, cmid idempotency, seq assignment under the channel's
    /// row lock, event and outbox row — one statement in one transaction. Returns only after
    /// COMMIT. A reply ([`Store::send_reply`]) and a message with files take their own
    /// transactions.
    pub async fn send_message(&self, ws: &WorkspaceName, channel: &str, ev: NewEvent) -> Result<Appended, ApiError> {
        if ev.thread.is_some() {
            return self.send_reply(ws, channel, ev).await;
        }
        if !ev.attach.is_empty() {
            return self.send_with_files(ws, channel, ev).await;
        }
        let id = new_id("m");
        let ts = now_ts();
        // One statement in autocommit: it commits when it returns, so the caller acks a durable
        // event after a single round trip. The UPDATE takes the channel's row lock, so seqs are
        // gap-free and commit order is seq order. The member/duplicate checks run on the
        // statement's snapshot; a same-cmid send that commits while this one waits for the lock
        // is caught by the unique index instead. An archived channel fails the UPDATE's own
        // condition (re-checked under the lock).
        let sql = Store::tenant_sql(
            ws,
            "WITH ok AS (SELECT EXISTS (SELECT 1 FROM {s}.members WHERE channel_id = $1 AND user_id = $4) \
                                AND NOT EXISTS (SELECT 1 FROM {s}.events WHERE user_id = $4 AND cmid = $5) AS go), \
                  c AS (UPDATE {s}.channels SET last_seq = last_seq + 1 WHERE id = $1 AND NOT archived AND (SELECT go FROM ok) \
                        RETURNING last_seq), \
                  e AS (INSERT INTO {s}.events (channel_id, seq, id, kind, user_id, cmid, body, thread, ts, target, emoji, also_channel, \
                                                files, state_seq) \
                        SELECT $1, c.last_seq, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, c.last_seq FROM c RETURNING seq) \
             INSERT INTO {s}.outbox (channel_id, seq) SELECT $1, seq FROM e RETURNING id, seq",
        );
        let inserted = bind_append(sqlx::query_as(&sql), channel, &id, &ev, ts).fetch_optional(self.pool()).await;
        match inserted {
            Ok(Some((outbox_id, seq))) => Ok(Appended { event: ev.into_event(channel, seq, id, ts), outbox_id: Some(outbox_id) }),
            // Nothing inserted (no channel, not a member, a repeated cmid), or a same-cmid race
            // lost on the unique index: find out which.
            Ok(None) => self.explain_refused_send(ws, channel, &ev).await,
            Err(e) if is_unique_violation(&e) => self.explain_refused_send(ws, channel, &ev).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Group commit (issue 12): plain messages (no thread, no files) to any channels of one
    /// workspace, in one statement in autocommit, so one commit (one WAL flush) acks them all.
    /// Each send gets what [`Store::send_message`] would have answered, in the batch's order;
    /// seqs within a channel follow that order. The channels' rows are locked in id order
    /// before any of them is updated, so batches of different pods touching the same channels
    /// cannot deadlock. One refused send (not a member, archived, a repeated cmid) does not fail
    /// the others; if the statement itself fails (a same-cmid send of another pod committed
    /// meanwhile, say), every send is retried on its own, which the returned flag tells. A
    /// batch of one may be any send; a reply or a message with files must come alone (the
    /// sender stage cuts them so).
    pub async fn send_messages(&self, ws: &WorkspaceName, batch: Vec<(String, NewEvent)>) -> (Vec<Result<Appended, ApiError>>, bool) {
        debug_assert!(batch.len() == 1 || batch.iter().all(|(_, ev)| ev.batchable()));
        if batch.len() == 1 {
            let (channel, ev) = batch.into_iter().next().expect("one send");
            return (vec![self.send_message(ws, &channel, ev).await], false);
        }
        // A cmid repeated within the batch (a client retrying before its ack) goes after it, on
        // its own, which answers it with the original (or `conflict` for another channel).
        let mut seen = std::collections::HashSet::new();
        let (first, again): (Vec<usize>, Vec<usize>) = (0..batch.len()).partition(|&i| seen.insert((&batch[i].1.user, &batch[i].1.cmid)));
        let stamped: Vec<(String, DateTime<Utc>)> = first.iter().map(|_| (new_id("m"), now_ts())).collect();
        let inserted = self.insert_batch(ws, &batch, &first, &stamped).await;
        let mut out: Vec<Option<Result<Appended, ApiError>>> = (0..batch.len()).map(|_| None).collect();
        let mut batch: Vec<Option<(String, NewEvent)>> = batch.into_iter().map(Some).collect();
        let fell_back = inserted.is_err();
        match inserted {
            Ok(rows) => {
                let rows: std::collections::HashMap<i32, (i64, i64)> = rows.into_iter().map(|(i, seq, o)| (i, (seq, o))).collect();
                for (k, &i) in first.iter().enumerate() {
                    let (channel, ev) = batch[i].take().expect("each send once");
                    out[i] = Some(match rows.get(&(k as i32)) {
                        Some(&(seq, outbox_id)) => {
                            let (id, ts) = stamped[k].clone();
                            Ok(Appended { event: ev.into_event(&channel, seq, id, ts), outbox_id: Some(outbox_id) })
                        }
                        None => self.explain_refused_send(ws, &channel, &ev).await,
                    });
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, sends = first.len(), "batched send failed; sending one by one");
                for &i in &first {
                    let (channel, ev) = batch[i].take().expect("each send once");
                    out[i] = Some(self.send_message(ws, &channel, ev).await);
                }
            }
        }
        for i in again {
            let (channel, ev) = batch[i].take().expect("each send once");
            out[i] = Some(self.send_message(ws, &channel, ev).await);
        }
        (out.into_iter().map(|r| r.expect("every send answered")).collect(), fell_back)
    }

    /// The statement of [`Store::send_messages`]: inserts the sends `first` (positions into
    /// `batch`, each with its id and time) that pass the checks [`Store::send_message`] makes;
    /// returns (index into `first`, seq, outbox id) of each inserted one.
    async fn insert_batch(
        &self,
        ws: &WorkspaceName,
        batch: &[(String, NewEvent)],
        first: &[usize],
        stamped: &[(String, DateTime<Utc>)],
    ) -> Result<Vec<(i32, i64, i64)>, sqlx::Error> {
        // `lk` locks the channel rows in id order; the UPDATE waits for it through the scalar
        // subquery in its condition, which is evaluated before it changes any row. Seqs are
        // handed out per channel in batch order (`rn`) from the locked `last_seq`.
        let sql = Store::tenant_sql(
            ws,
            "WITH t AS (SELECT * FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[]) \
                        AS t(i, channel_id, id, user_id, cmid, body, ts)), \
                  lk AS (SELECT id FROM {s}.channels WHERE id = ANY($2) ORDER BY id FOR UPDATE), \
                  ok AS (SELECT t.*, row_number() OVER (PARTITION BY t.channel_id ORDER BY t.i) AS rn FROM t \
                         WHERE EXISTS (SELECT 1 FROM {s}.members m WHERE m.channel_id = t.channel_id AND m.user_id = t.user_id) \
                           AND NOT EXISTS (SELECT 1 FROM {s}.events e WHERE e.user_id = t.user_id AND e.cmid = t.cmid)), \
                  n AS (SELECT channel_id, count(*) AS n FROM ok GROUP BY channel_id), \
                  c AS (UPDATE {s}.channels ch SET last_seq = ch.last_seq + n.n FROM n \
                        WHERE ch.id = n.channel_id AND NOT ch.archived AND (SELECT count(*) FROM lk) > 0 \
                        RETURNING ch.id, ch.last_seq - n.n AS base), \
                  r AS (SELECT ok.i, ok.channel_id, c.base + ok.rn AS seq, ok.id, ok.user_id, ok.cmid, ok.body, ok.ts \
                        FROM ok JOIN c ON c.id = ok.channel_id), \
                  e AS (INSERT INTO {s}.events (channel_id, seq, id, kind, user_id, cmid, body, ts, also_channel, state_seq) \
                        SELECT channel_id, seq, id, 'message', user_id, cmid, body, ts, false, seq FROM r RETURNING channel_id, seq), \
                  o AS (INSERT INTO {s}.outbox (channel_id, seq) SELECT channel_id, seq FROM e RETURNING id, channel_id, seq) \
             SELECT r.i, r.seq, o.id FROM r JOIN o ON o.channel_id = r.channel_id AND o.seq = r.seq",
        );
        let idx: Vec<i32> = (0..first.len() as i32).collect();
        let channels: Vec<&str> = first.iter().map(|&i| batch[i].0.as_str()).collect();
        let ids: Vec<&str> = stamped.iter().map(|(id, _)| id.as_str()).collect();
        let users: Vec<&str> = first.iter().map(|&i| batch[i].1.user.as_str()).collect();
        let cmids: Vec<Option<&str>> = first.iter().map(|&i| batch[i].1.cmid.as_deref()).collect();
        let bodies: Vec<Option<&str>> = first.iter().map(|&i| batch[i].1.text.as_deref()).collect();
        let ts: Vec<DateTime<Utc>> = stamped.iter().map(|(_, ts)| *ts).collect();
        sqlx::query_as(&sql).bind(idx).bind(channels).bind(ids).bind(users).bind(cmids).bind(bodies).bind(ts).fetch_all(self.pool()).await
    }

    async fn explain_refused_send(&self, ws: &WorkspaceName, channel: &str, ev: &NewEvent) -> Result<Appended, ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let tx = &mut tx;
        if let Some(orig) = sent_before(tx, channel, ev).await? {
            return Ok(orig);
        }
        let row: Option<(String, bool, bool)> = sqlx::query_as(
            "SELECT c.kind, EXISTS (SELECT 1 FROM members m WHERE m.channel_id = c.id AND m.user_id = $2), c.archived FROM channels c WHERE c.id = $1",
        )
        .bind(channel)
        .bind(&ev.user)
        .fetch_optional(&mut **tx)
        .await?;
        Err(match row.map(|(k, member, archived)| (ChannelKind::from_db(&k), member, archived)) {
            Some((_, true, true)) => archived_error(channel),
            // Membership changed between the send and this look: nothing was stored.
            Some((_, true, false)) => ApiError::unavailable(format!("the send to {channel} was not stored; retry with the same cmid")),
            Some((ChannelKind::Public, false, _)) => ApiError::forbidden(format!("not a member of {channel}: join it first")),
            // Private channels and DMs do not reveal that they exist.
            _ => ApiError::not_found(format!("no channel {channel}")),
        })
    }

    /// History page, each message rendered as `viewer` sees it now. `after`/`before` are
    /// exclusive seq bounds; with only `before` (or neither) the newest events are returned,
    /// oldest first.
    pub async fn history(
        &self,
        ws: &WorkspaceName,
        channel: &str,
        viewer: &str,
        after: Option<i64>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<HistoryPage, sqlx::Error> {
        let lo = after.unwrap_or(0);
        let hi = before.unwrap_or(i64::MAX);
        let ascending = after.is_some();
        let order = if ascending { "ASC" } else { "DESC" };
        let state = state_columns(5);
        let sql = Store::tenant_sql(
            ws,
            &format!(
                "SELECT {EVENT_COLUMNS}, {state} FROM {{s}}.events e \
                 WHERE e.channel_id = $1 AND e.seq > $2 AND e.seq < $3 ORDER BY e.seq {order} LIMIT $4"
            ),
        );
        let rows: Vec<RenderedRow> =
            sqlx::query_as(&sql).bind(channel).bind(lo).bind(hi).bind(limit + 1).bind(viewer).fetch_all(self.pool()).await?;
        let mut events: Vec<Event> = rows.into_iter().map(Event::from).collect();
        let has_more = events.len() as i64 > limit;
        events.truncate(limit as usize);
        if !ascending {
            events.reverse();
        }
        Ok(HistoryPage { events, has_more })
    }

    /// Events with `from <= seq <= to`, ascending, at most `limit`, as stored (hole fill).
    pub async fn events_range(&self, ws: &WorkspaceName, channel: &str, from: i64, to: i64, limit: i64) -> Result<Vec<Event>, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            &format!("SELECT {EVENT_COLUMNS} FROM {{s}}.events e WHERE e.channel_id = $1 AND e.seq >= $2 AND e.seq <= $3 ORDER BY e.seq LIMIT $4"),
        );
        sqlx::query_as(&sql).bind(channel).bind(from).bind(to).bind(limit).fetch_all(self.pool()).await
    }

    /// [`Store::events_range`] with each message rendered as `viewer` sees it now (replay; the
    /// change events follow at their own seqs, docs/protocol.md).
    pub async fn replay_range(
        &self,
        ws: &WorkspaceName,
        channel: &str,
        viewer: &str,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<Event>, sqlx::Error> {
        let state = state_columns(5);
        let sql = Store::tenant_sql(
            ws,
            &format!(
                "SELECT {EVENT_COLUMNS}, {state} FROM {{s}}.events e \
                 WHERE e.channel_id = $1 AND e.seq >= $2 AND e.seq <= $3 ORDER BY e.seq LIMIT $4"
            ),
        );
        let rows: Vec<RenderedRow> =
            sqlx::query_as(&sql).bind(channel).bind(from).bind(to).bind(limit).bind(viewer).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(Event::from).collect())
    }

    /// Current `last_seq` of the given channels (position check).
    pub async fn positions(&self, ws: &WorkspaceName, channels: &[String]) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let sql = Store::tenant_sql(ws, "SELECT id, last_seq FROM {s}.channels WHERE id = ANY($1)");
        sqlx::query_as(&sql).bind(channels).fetch_all(self.pool()).await
    }
}
