//! The `notifications` table: the per-user inbox of mentions and DMs, and its push queue.

use chrono::{DateTime, Utc};
use palaver_crds::WorkspaceName;
use serde::Serialize;

use super::Store;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Notification {
    pub id: i64,
    pub user_id: String,
    pub channel: String,
    pub seq: i64,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// A claimed push: one attempt is being made for it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PushJob {
    pub id: i64,
    pub user_id: String,
    pub channel: String,
    pub seq: i64,
    pub kind: String,
    pub push_attempts: i32,
}

impl Store {
    /// Records a notification; returns it only the first time for `(user, channel, seq)`, so a
    /// redelivered event never notifies (or pushes) twice.
    pub async fn notify(
        &self,
        ws: &WorkspaceName,
        user: &str,
        channel: &str,
        seq: i64,
        kind: &str,
        push: bool,
    ) -> Result<Option<Notification>, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            "INSERT INTO {s}.notifications (user_id, channel_id, seq, kind, push_state) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING \
             RETURNING id, user_id, channel_id AS channel, seq, kind, created_at, read_at",
        );
        sqlx::query_as(&sql)
            .bind(user)
            .bind(channel)
            .bind(seq)
            .bind(kind)
            .bind(if push { "pending" } else { "none" })
            .fetch_optional(self.pool())
            .await
    }

    pub async fn notifications(
        &self,
        ws: &WorkspaceName,
        user: &str,
        unread_only: bool,
        limit: i64,
    ) -> Result<Vec<Notification>, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            "SELECT id, user_id, channel_id AS channel, seq, kind, created_at, read_at FROM {s}.notifications \
             WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL) ORDER BY id DESC LIMIT $3",
        );
        sqlx::query_as(&sql).bind(user).bind(unread_only).bind(limit).fetch_all(self.pool()).await
    }

    /// Marks the user's notifications read: the given ids, or all of them. Returns how many.
    pub async fn mark_notifications_read(&self, ws: &WorkspaceName, user: &str, ids: Option<&[i64]>) -> Result<u64, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            "UPDATE {s}.notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL AND ($2::bigint[] IS NULL OR id = ANY($2))",
        );
        Ok(sqlx::query(&sql).bind(user).bind(ids).execute(self.pool()).await?.rows_affected())
    }

    /// Claims due pushes (skipping rows another pod holds) and hands them to `attempt`, which
    /// returns for each job `Ok(())` or the error text; outcomes are written in the same
    /// transaction. Returns the jobs that ran out of attempts (for the DLQ).
    pub async fn run_pushes<F, Fut>(
        &self,
        ws: &WorkspaceName,
        limit: i64,
        max_attempts: i32,
        backoff_ms: i64,
        attempt: F,
    ) -> Result<Vec<(PushJob, String)>, sqlx::Error>
    where
        F: FnOnce(Vec<PushJob>) -> Fut,
        Fut: std::future::Future<Output = Vec<Result<(), String>>>,
    {
        let mut tx = self.tenant_tx(ws).await?;
        let jobs: Vec<PushJob> = sqlx::query_as(
            "SELECT id, user_id, channel_id AS channel, seq, kind, push_attempts FROM notifications \
             WHERE push_state = 'pending' AND next_attempt_at <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if jobs.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let outcomes = attempt(jobs.clone()).await;
        let mut dead = Vec::new();
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            let attempts = job.push_attempts + 1;
            match outcome {
                Ok(()) => {
                    sqlx::query("UPDATE notifications SET push_state = 'sent', push_attempts = $2 WHERE id = $1")
                        .bind(job.id)
                        .bind(attempts)
                        .execute(&mut *tx)
                        .await?;
                }
                Err(e) if attempts >= max_attempts => {
                    sqlx::query("UPDATE notifications SET push_state = 'dead', push_attempts = $2 WHERE id = $1")
                        .bind(job.id)
                        .bind(attempts)
                        .execute(&mut *tx)
                        .await?;
                    dead.push((PushJob { push_attempts: attempts, ..job }, e));
                }
                Err(_) => {
                    // Exponential backoff: base × 2^(attempts-1), capped at an hour.
                    let delay_ms = (backoff_ms.saturating_mul(1i64 << (attempts - 1).min(20))).min(3_600_000);
                    sqlx::query("UPDATE notifications SET push_attempts = $2, next_attempt_at = now() + make_interval(secs => $3::float8 / 1000) WHERE id = $1")
                        .bind(job.id)
                        .bind(attempts)
                        .bind(delay_ms as f64)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(dead)
    }

    /// The kind of a channel (`public`, `private`, `dm`), for consumers.
    pub async fn channel_kind(&self, ws: &WorkspaceName, channel: &str) -> Result<Option<String>, sqlx::Error> {
        let sql = Store::tenant_sql(ws, "SELECT kind FROM {s}.channels WHERE id = $1");
        sqlx::query_scalar(&sql).bind(channel).fetch_optional(self.pool()).await
    }
}
