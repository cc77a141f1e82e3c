//! The `outbox` table: events committed but not yet confirmed published.

use palaver_crds::WorkspaceName;

use super::events::EVENT_COLUMNS;
use super::Store;
use crate::protocol::Event;

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub event: Event,
}

impl Store {
    /// Deletes rows whose event was published to both Redis and Kafka.
    pub async fn outbox_delete(&self, ws: &WorkspaceName, ids: &[i64]) -> Result<(), sqlx::Error> {
        let sql = Store::tenant_sql(ws, "DELETE FROM {s}.outbox WHERE id = ANY($1)");
        sqlx::query(&sql).bind(ids).execute(self.pool()).await.map(|_| ())
    }

    /// Claims up to `limit` rows older than `min_age_ms` (skipping rows another pod is sweeping)
    /// and hands them with their events to `publish`; rows it reports as published are deleted in
    /// the same transaction. Returns (rows claimed, rows published).
    pub async fn outbox_sweep<F, Fut>(
        &self,
        ws: &WorkspaceName,
        min_age_ms: u64,
        limit: i64,
        publish: F,
    ) -> Result<(usize, usize), sqlx::Error>
    where
        F: FnOnce(Vec<OutboxRow>) -> Fut,
        Fut: std::future::Future<Output = Vec<i64>>,
    {
        let mut tx = self.tenant_tx(ws).await?;
        let sql = format!(
            "WITH o AS (SELECT id, channel_id, seq FROM outbox WHERE created_at < now() - make_interval(secs => $1::float8 / 1000) \
                                ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                   SELECT o.id AS outbox_id, {EVENT_COLUMNS} \
                   FROM o JOIN events e ON e.channel_id = o.channel_id AND e.seq = o.seq ORDER BY o.id"
        );
        let claimed: Vec<OutboxRowDb> = sqlx::query_as(&sql).bind(min_age_ms as f64).bind(limit).fetch_all(&mut *tx).await?;
        let n = claimed.len();
        if n == 0 {
            tx.commit().await?;
            return Ok((0, 0));
        }
        let rows = claimed.into_iter().map(OutboxRowDb::into_row).collect();
        let done = publish(rows).await;
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)").bind(&done).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok((n, done.len()))
    }

    /// Rows older than `min_age_ms` (the backlog an SRE watches).
    pub async fn outbox_backlog(&self, ws: &WorkspaceName, min_age_ms: u64) -> Result<i64, sqlx::Error> {
        let sql =
            Store::tenant_sql(ws, "SELECT count(*) FROM {s}.outbox WHERE created_at < now() - make_interval(secs => $1::float8 / 1000)");
        sqlx::query_scalar(&sql).bind(min_age_ms as f64).fetch_one(self.pool()).await
    }
}

#[derive(sqlx::FromRow)]
struct OutboxRowDb {
    outbox_id: i64,
    #[sqlx(flatten)]
    event: Event,
}

impl OutboxRowDb {
    fn into_row(self) -> OutboxRow {
        OutboxRow { id: self.outbox_id, event: self.event }
    }
}
