//! The `search_docs` table (issue 11): the full-text index the consumers' indexer keeps from
//! the event log, and the search query over it.
//!
//! Owns that table's SQL. It must not decide who may read what (the caller passes the channel
//! ids the user may read) nor parse the query language (`domain::search_query` does).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use palaver_crds::WorkspaceName;

use super::Store;

/// What a search asks of the index, ready for SQL.
#[derive(Debug, Clone, Default)]
pub struct SearchParams {
    /// Channels to search: the ones the caller may read (narrowed by `in:`). Passed as an array,
    /// never a subquery (issue 11: 741 ms vs < 35 ms on 5M messages).
    pub channels: Vec<String>,
    /// Terms every result contains, as `websearch_to_tsquery` text (every term quoted).
    pub all_of: Option<String>,
    /// Terms no result contains, the same way, joined with `or`.
    pub none_of: Option<String>,
    /// Authors (empty: anyone).
    pub users: Vec<String>,
    /// Sent at or after / before these instants.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub has_link: bool,
    pub has_file: bool,
    /// Replies only.
    pub replies: bool,
    /// Continue after this result (its time and message id), newest first.
    pub after: Option<(DateTime<Utc>, String)>,
    pub limit: i64,
    /// The statement's time limit.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SearchHit {
    pub message_id: String,
    pub channel_id: String,
    pub seq: i64,
    pub ts: DateTime<Utc>,
    pub user_id: String,
    pub thread: Option<String>,
    pub body: String,
}

/// A document as the indexer writes it: a message's state as of event `indexed_seq`.
#[derive(Debug, Clone)]
pub struct SearchDoc<'a> {
    pub message_id: &'a str,
    pub channel_id: &'a str,
    pub seq: i64,
    pub ts: DateTime<Utc>,
    pub user_id: &'a str,
    pub thread: Option<&'a str>,
    pub body: &'a str,
}

/// `http://` or `https://` anywhere: `has:link`.
pub fn has_link(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("http://") || lower.contains("https://")
}

const SEARCH: &str = "SELECT message_id, channel_id, seq, ts, user_id, thread, body FROM search_docs \
     WHERE channel_id = ANY($1) AND NOT deleted \
       AND ($2::text IS NULL OR tsv @@ (websearch_to_tsquery('simple', $2) || websearch_to_tsquery('english', $2))) \
       AND ($3::text IS NULL OR NOT tsv @@ (websearch_to_tsquery('simple', $3) || websearch_to_tsquery('english', $3))) \
       AND (cardinality($4::text[]) = 0 OR user_id = ANY($4)) \
       AND ($5::timestamptz IS NULL OR ts >= $5) \
       AND ($6::timestamptz IS NULL OR ts < $6) \
       AND (NOT $7 OR has_link) AND (NOT $8 OR has_file) AND (NOT $9 OR thread IS NOT NULL) \
       AND ($10::timestamptz IS NULL OR (ts, message_id) < ($10, $11)) \
     ORDER BY ts DESC, message_id DESC LIMIT $12";

/// Chooses the plan for rare words. The planner estimates a word's matches from the column's
/// most common elements (`pg_stats`; migration 0011 keeps 10,000 of them). A word outside that
/// list is estimated at half the rarest one's frequency, which on 5M messages is about 1,400
/// matches. So it walks the newest-first index expecting a page soon, and for a word with 25
/// matches it reads the whole index: 3.4 s (docs/benchmarks.md). When some word of the query,
/// in both configurations, is outside the list, the query has at most as many matches as that
/// word. Then index scans are turned off for the transaction and the planner takes the GIN
/// bitmap, which is cheap for few matches. No statistics yet (a new workspace) counts as rare.
const PLAN_FOR_RARE_WORDS: &str = "SELECT set_config('enable_indexscan', 'off', true) FROM (        SELECT coalesce((          SELECT EXISTS (SELECT 1 FROM unnest(tsvector_to_array(to_tsvector('simple', $1))) l WHERE NOT l = ANY (m.elems))             AND (to_tsvector('english', $1) = ''::tsvector                  OR EXISTS (SELECT 1 FROM unnest(tsvector_to_array(to_tsvector('english', $1))) l WHERE NOT l = ANY (m.elems)))          FROM (SELECT most_common_elems::text::text[] AS elems FROM pg_stats                WHERE schemaname = current_schema() AND tablename = 'search_docs' AND attname = 'tsv') m), true) AS rare) r      WHERE r.rare";

/// [`SEARCH`] for one channel (`in:`, or a caller with one readable channel): an equality walks
/// `search_docs_channel_ts` newest first, which `= ANY` cannot (it is read unordered and
/// sorted: 54 ms instead of 10 on 1M messages, docs/benchmarks.md).
static SEARCH_ONE_CHANNEL: LazyLock<String> = LazyLock::new(|| SEARCH.replace("channel_id = ANY($1)", "channel_id = ($1::text[])[1]"));

impl Store {
    /// Indexes a `message` event (a first delivery, or a redelivery that changes nothing).
    pub async fn index_message(&self, ws: &WorkspaceName, d: &SearchDoc<'_>) -> Result<bool, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            "INSERT INTO {s}.search_docs (message_id, channel_id, seq, ts, user_id, thread, body, has_link, indexed_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $3) \
             ON CONFLICT (message_id) DO UPDATE SET body = excluded.body, has_link = excluded.has_link, indexed_seq = excluded.indexed_seq \
             WHERE search_docs.indexed_seq < excluded.indexed_seq AND NOT search_docs.deleted",
        );
        let done = sqlx::query(&sql)
            .bind(d.message_id)
            .bind(d.channel_id)
            .bind(d.seq)
            .bind(d.ts)
            .bind(d.user_id)
            .bind(d.thread)
            .bind(d.body)
            .bind(has_link(d.body))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Applies an `edit` (event `seq`) to its message's document, unless a newer state is there.
    pub async fn index_edit(&self, ws: &WorkspaceName, message_id: &str, text: &str, seq: i64) -> Result<bool, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            "UPDATE {s}.search_docs SET body = $2, has_link = $3, indexed_seq = $4 \
             WHERE message_id = $1 AND indexed_seq < $4 AND NOT deleted",
        );
        let done = sqlx::query(&sql).bind(message_id).bind(text).bind(has_link(text)).bind(seq).execute(self.pool()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Applies a `delete` (event `seq`): the document becomes a tombstone, also if the message
    /// was never indexed (so a late `message` event cannot index it).
    pub async fn index_delete(&self, ws: &WorkspaceName, channel: &str, message_id: &str, seq: i64) -> Result<bool, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            "INSERT INTO {s}.search_docs (message_id, channel_id, seq, ts, user_id, body, has_link, deleted, indexed_seq) \
             VALUES ($1, $2, 0, now(), '', '', false, true, $3) \
             ON CONFLICT (message_id) DO UPDATE SET body = '', has_link = false, has_file = false, deleted = true, indexed_seq = excluded.indexed_seq \
             WHERE search_docs.indexed_seq < excluded.indexed_seq",
        );
        let done = sqlx::query(&sql).bind(message_id).bind(channel).bind(seq).execute(self.pool()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Rebuilds a workspace's index from the messages' stored state (`palaverd reindex`); the
    /// indexer may run meanwhile (both write only newer states). Returns the documents written.
    pub async fn reindex(&self, ws: &WorkspaceName) -> Result<u64, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            "INSERT INTO {s}.search_docs (message_id, channel_id, seq, ts, user_id, thread, body, has_link, deleted, indexed_seq) \
             SELECT id, channel_id, seq, ts, user_id, thread, CASE WHEN deleted THEN '' ELSE coalesce(body, '') END, \
                    NOT deleted AND coalesce(body, '') ~* 'https?://', deleted, coalesce(state_seq, seq) \
             FROM {s}.events WHERE kind = 'message' \
             ON CONFLICT (message_id) DO UPDATE SET body = excluded.body, has_link = excluded.has_link, deleted = excluded.deleted, \
                 indexed_seq = excluded.indexed_seq \
             WHERE search_docs.indexed_seq <= excluded.indexed_seq",
        );
        Ok(sqlx::query(&sql).execute(self.pool()).await?.rows_affected())
    }

    /// One page of results, newest first, under the statement time limit.
    pub async fn search(&self, ws: &WorkspaceName, p: &SearchParams) -> Result<Vec<SearchHit>, sqlx::Error> {
        // Custom plans always: a cached generic plan cannot fold the unused filters
        // (`$2 IS NULL OR …`) away, and then neither index serves the query (600 ms instead of
        // milliseconds on 1M messages, docs/benchmarks.md). The timeout is a number, formatted:
        // SET takes no parameters.
        let settings = format!("SET LOCAL statement_timeout = {}; SET LOCAL plan_cache_mode = force_custom_plan", p.timeout_ms.max(1));
        let mut tx = self.tenant_tx_with(ws, &settings).await?;
        if let Some(words) = &p.all_of {
            sqlx::query(PLAN_FOR_RARE_WORDS).bind(words).execute(&mut *tx).await?;
        }
        let sql = if p.channels.len() == 1 { SEARCH_ONE_CHANNEL.as_str() } else { SEARCH };
        let hits = sqlx::query_as(sql)
            .bind(&p.channels)
            .bind(&p.all_of)
            .bind(&p.none_of)
            .bind(&p.users)
            .bind(p.since)
            .bind(p.until)
            .bind(p.has_link)
            .bind(p.has_file)
            .bind(p.replies)
            .bind(p.after.as_ref().map(|a| a.0))
            .bind(p.after.as_ref().map(|a| a.1.as_str()))
            .bind(p.limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(hits)
    }

    /// The channels `user` may read: every public channel, and the private channels and DMs
    /// they are a member of.
    pub async fn readable_channels(&self, ws: &WorkspaceName, user: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            "SELECT c.id, c.name FROM {s}.channels c WHERE c.kind = 'public' \
             OR EXISTS (SELECT 1 FROM {s}.members m WHERE m.channel_id = c.id AND m.user_id = $1)",
        );
        sqlx::query_as(&sql).bind(user).fetch_all(self.pool()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_channel_query_differs_only_in_its_channel_test() {
        assert!(SEARCH.contains("channel_id = ANY($1)"));
        assert_eq!(SEARCH_ONE_CHANNEL.replace("channel_id = ($1::text[])[1]", "channel_id = ANY($1)"), SEARCH);
        assert!(!SEARCH_ONE_CHANNEL.contains("ANY($1)"));
    }

    #[test]
    fn links_are_http_urls_in_any_case() {
        assert!(has_link("see https://example.com/x"));
        assert!(has_link("HTTP://EXAMPLE.COM"));
        assert!(!has_link("ftp://example.com and example.com"));
    }
}
