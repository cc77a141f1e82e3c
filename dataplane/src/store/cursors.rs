//! Delivered/read cursors in `members` (the batched, durable copy of what Redis holds first).

use palaver_crds::WorkspaceName;

use super::Store;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CursorUpdate {
    pub channel: String,
    pub user: String,
    pub delivered: i64,
    pub read: i64,
}

impl Store {
    /// Applies a batch; cursors only move forward and never past the channel's last seq.
    pub async fn flush_cursors(&self, ws: &WorkspaceName, batch: &[CursorUpdate]) -> Result<(), sqlx::Error> {
        let channels: Vec<&str> = batch.iter().map(|c| c.channel.as_str()).collect();
        let users: Vec<&str> = batch.iter().map(|c| c.user.as_str()).collect();
        let delivered: Vec<i64> = batch.iter().map(|c| c.delivered).collect();
        let read: Vec<i64> = batch.iter().map(|c| c.read).collect();
        let sql = Store::tenant_sql(
            ws,
            "UPDATE {s}.members m SET delivered_seq = GREATEST(m.delivered_seq, LEAST(u.d, c.last_seq)), \
                                  read_seq = GREATEST(m.read_seq, LEAST(u.r, c.last_seq)) \
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(ch, usr, d, r), {s}.channels c \
             WHERE m.channel_id = u.ch AND m.user_id = u.usr AND c.id = u.ch",
        );
        sqlx::query(&sql).bind(&channels).bind(&users).bind(&delivered).bind(&read).execute(self.pool()).await.map(|_| ())
    }
}
