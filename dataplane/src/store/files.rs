//! The `files` table (migration 0012): uploads from `POST /v1/files` until their objects are
//! removed, and the attachment of completed ones to a message in its send transaction.
//!
//! Owns the rules that need the rows: which uploads a send may claim (the sender's own,
//! completed, for this channel, not attached yet) and which rows the sweeper may take. It must
//! not call object storage (the files domain does, around these calls) nor decide limits.

use chrono::{DateTime, Utc};
use palaver_crds::WorkspaceName;
use sqlx::{Postgres, Transaction};

use super::events::{append_locked, check_send, is_unique_violation, lock_channel, peek_channel, sent_before};
use super::{now_ts, Appended, NewEvent, Store};
use crate::error::ApiError;
use crate::protocol::FileRef;

/// An upload as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredFile {
    pub id: String,
    pub channel_id: String,
    pub uploader: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub object_key: String,
    pub state: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnail_key: Option<String>,
    pub message_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl StoredFile {
    pub fn file_ref(&self) -> FileRef {
        FileRef {
            id: self.id.clone(),
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            width: self.width,
            height: self.height,
            thumbnail: self.thumbnail_key.is_some(),
        }
    }
}

/// An upload to record (`pending`).
pub struct NewFile<'a> {
    pub id: &'a str,
    pub channel: &'a str,
    pub uploader: &'a str,
    pub name: &'a str,
    pub content_type: &'a str,
    pub size: i64,
    pub object_key: &'a str,
}

/// What `complete` found in object storage for an image.
#[derive(Debug, Clone, Default)]
pub struct Preview {
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnail_key: Option<String>,
}

const FILE_COLUMNS: &str = "id, channel_id, uploader, name, content_type, size, object_key, state, width, height, thumbnail_key, \
                            message_id, created_at";

impl Store {
    /// Records an upload, if `uploader` may send to the channel (member, not archived).
    pub async fn create_file(&self, ws: &WorkspaceName, f: &NewFile<'_>) -> Result<StoredFile, ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let locked = peek_channel(&mut tx, f.channel, f.uploader).await?;
        check_send(locked.as_ref(), f.channel)?;
        let sql = format!(
            "INSERT INTO files (id, channel_id, uploader, name, content_type, size, object_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {FILE_COLUMNS}"
        );
        let stored = sqlx::query_as(&sql)
            .bind(f.id)
            .bind(f.channel)
            .bind(f.uploader)
            .bind(f.name)
            .bind(f.content_type)
            .bind(f.size)
            .bind(f.object_key)
            .bind(now_ts())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub async fn file(&self, ws: &WorkspaceName, id: &str) -> Result<Option<StoredFile>, sqlx::Error> {
        let sql = Store::tenant_sql(ws, &format!("SELECT {FILE_COLUMNS} FROM {{s}}.files WHERE id = $1"));
        sqlx::query_as(&sql).bind(id).fetch_optional(self.pool()).await
    }

    /// Marks a pending upload `ready` with what `complete` found and returns it; `None` if it
    /// was not pending (completed meanwhile, or swept).
    pub async fn complete_file(&self, ws: &WorkspaceName, id: &str, preview: &Preview) -> Result<Option<StoredFile>, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            &format!(
                "UPDATE {{s}}.files SET state = 'ready', completed_at = $2, width = $3, height = $4, thumbnail_key = $5 \
                 WHERE id = $1 AND state = 'pending' RETURNING {FILE_COLUMNS}"
            ),
        );
        sqlx::query_as(&sql)
            .bind(id)
            .bind(now_ts())
            .bind(preview.width)
            .bind(preview.height)
            .bind(&preview.thumbnail_key)
            .fetch_optional(self.pool())
            .await
    }

    /// A top-level message with attachments: [`Store::send_message`]'s checks under the
    /// channel's lock, the uploads claimed ([`claim_files`]), the event and its outbox row, and
    /// the uploads attached to it, in one transaction.
    pub(super) async fn send_with_files(&self, ws: &WorkspaceName, channel: &str, ev: NewEvent) -> Result<Appended, ApiError> {
        let mut tx = self.tenant_tx(ws).await?;
        let locked = lock_channel(&mut tx, channel, &ev.user).await?;
        if let Some(orig) = sent_before(&mut tx, channel, &ev).await? {
            return Ok(orig);
        }
        check_send(locked.as_ref(), channel)?;
        let files = claim_files(&mut tx, channel, &ev.user, &ev.attach).await?;
        let cmid = ev.cmid.clone().unwrap_or_default();
        let attach = ev.attach.clone();
        let appended = match append_locked(&mut tx, channel, NewEvent { files: Some(files), ..ev }).await {
            // The same cmid, committed meanwhile for another channel (this one's lock is held).
            Err(e) if is_unique_violation(&e) => {
                return Err(ApiError::conflict(format!("cmid {cmid} was already used for another channel")))
            }
            r => r?,
        };
        attach_files(&mut tx, &appended.event.id, &attach).await?;
        tx.commit().await?;
        Ok(appended)
    }

    /// Takes up to `limit` rows the sweeper may remove — files of deleted messages, and uploads
    /// begun before `abandoned_before` that were never completed or never attached — skipping
    /// rows another pod is sweeping, and hands them to `remove`; the rows whose ids it returns
    /// (their objects are gone) are deleted in the same transaction.
    pub async fn sweep_files<F, Fut>(
        &self,
        ws: &WorkspaceName,
        abandoned_before: DateTime<Utc>,
        limit: i64,
        remove: F,
    ) -> Result<usize, sqlx::Error>
    where
        F: FnOnce(Vec<StoredFile>) -> Fut,
        Fut: std::future::Future<Output = Vec<String>>,
    {
        let mut tx = self.tenant_tx(ws).await?;
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE state = 'deleted' OR (message_id IS NULL AND created_at < $1) \
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        );
        let claimed: Vec<StoredFile> = sqlx::query_as(&sql).bind(abandoned_before).bind(limit).fetch_all(&mut *tx).await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let removed = remove(claimed).await;
        sqlx::query("DELETE FROM files WHERE id = ANY($1)").bind(&removed).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(removed.len())
    }
}

/// Locks the uploads `ids` asks for and checks that this send may attach each: the sender's,
/// for this channel, completed, not attached to another message. Returns them as the event
/// carries them, in the order asked.
pub(super) async fn claim_files(
    tx: &mut Transaction<'_, Postgres>,
    channel: &str,
    user: &str,
    ids: &[String],
) -> Result<Vec<FileRef>, ApiError> {
    let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ANY($1) FOR UPDATE");
    let rows: Vec<StoredFile> = sqlx::query_as(&sql).bind(ids).fetch_all(&mut **tx).await?;
    ids.iter()
        .map(|id| {
            // Another user's upload is as unknown as one that does not exist.
            let f = rows.iter().find(|f| &f.id == id && f.uploader == user && f.state != "deleted");
            let f = f.ok_or_else(|| ApiError::not_found(format!("no file {id}")))?;
            if f.channel_id != channel {
                return Err(ApiError::bad_request(format!("file {id} was uploaded for channel {}, not {channel}", f.channel_id)));
            }
            if f.state == "pending" {
                return Err(ApiError::conflict(format!("file {id} is not complete: POST /v1/files/{id}/complete first")));
            }
            if let Some(m) = &f.message_id {
                return Err(ApiError::conflict(format!("file {id} is already attached to message {m}")));
            }
            Ok(f.file_ref())
        })
        .collect()
}

/// Attaches claimed uploads to the message just appended.
pub(super) async fn attach_files(tx: &mut Transaction<'_, Postgres>, message: &str, ids: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE files SET message_id = $1 WHERE id = ANY($2)").bind(message).bind(ids).execute(&mut **tx).await?;
    Ok(())
}

/// A deleted message's files: the sweeper removes their objects, then the rows.
pub(super) async fn delete_message_files(tx: &mut Transaction<'_, Postgres>, message: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE files SET state = 'deleted' WHERE message_id = $1").bind(message).execute(&mut **tx).await?;
    Ok(())
}
