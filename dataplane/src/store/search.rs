//! The `search_docs` table (issue 11): the full-text index the consumers' indexer keeps from
//! the event log, and the search query over it. The indexer writes the text; PostgreSQL derives
//! both indexed columns from it (`tsv`, words; `grams`, CJK bigrams and parts of identifiers,
//! migration 0013), so an edit, a delete and `reindex` update them with the text.
//!
//! Owns that table's SQL. It must not decide who may read what (the caller passes the channel
//! ids the user may read) nor parse the query language (`domain::search_query` does).

use std::collections::HashSet;
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
    /// What every result's grams match (CJK text, parts of identifiers: migration 0013), as
    /// `tsquery` text with every lexeme quoted (`domain::search_query::route`).
    pub grams_all: Option<String>,
    /// What no result's grams match, the same way.
    pub grams_none: Option<String>,
    /// The lexemes of `grams_all`, for the plan of rare terms.
    pub grams_lexemes: Vec<String>,
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

/// A document as the indexer writes it: a message's state as of event `indexed_seq` (its own
/// seq, or that of an edit in the same batch).
#[derive(Debug, Clone)]
pub struct SearchDoc<'a> {
    pub message_id: &'a str,
    pub channel_id: &'a str,
    pub seq: i64,
    pub indexed_seq: i64,
    pub ts: DateTime<Utc>,
    pub user_id: &'a str,
    pub thread: Option<&'a str>,
    pub body: &'a str,
    /// It has attachments (`has:file`).
    pub has_file: bool,
}

/// An `edit` (event `seq`) of a message indexed before the batch.
#[derive(Debug, Clone)]
pub struct IndexEdit<'a> {
    pub message_id: &'a str,
    pub text: &'a str,
    pub seq: i64,
}

/// A `delete` (event `seq`) of a message indexed before the batch, or never.
#[derive(Debug, Clone)]
pub struct IndexDelete<'a> {
    pub message_id: &'a str,
    pub channel_id: &'a str,
    pub seq: i64,
}

/// What one round of the indexer writes ([`Store::index_batch`]).
#[derive(Debug, Default)]
pub struct IndexBatch<'a> {
    pub docs: Vec<SearchDoc<'a>>,
    pub edits: Vec<IndexEdit<'a>>,
    pub deletes: Vec<IndexDelete<'a>>,
}

impl IndexBatch<'_> {
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty() && self.edits.is_empty() && self.deletes.is_empty()
    }
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
       AND ($13::text IS NULL OR grams @@ $13::text::tsquery) \
       AND ($14::text IS NULL OR NOT grams @@ $14::text::tsquery) \
     ORDER BY ts DESC, message_id DESC LIMIT $12";

/// Chooses the plan for rare terms. The planner estimates a word's matches from the column's
/// most common elements (`pg_stats`; migrations 0011 and 0013 keep 10,000 of them). A word outside that
/// list is estimated at half the rarest one's frequency, which on 5M messages is about 1,400
/// matches. So it walks the newest-first index expecting a page soon, and for a word with 25
/// matches it reads the whole index: 3.4 s (docs/benchmarks.md). When some word of the query,
/// in both configurations, is outside the list, the query has at most as many matches as that
/// word; the same for a lexeme of the grams (`$2`) outside the grams' list (or with no list: a
/// workspace without CJK text or identifiers). Then index scans are turned off for the
/// transaction and the planner takes the GIN bitmaps, which are cheap for few matches. No
/// statistics yet (a new workspace) counts as rare.
const PLAN_FOR_RARE_WORDS: &str = "SELECT set_config('enable_indexscan', 'off', true) FROM ( \
       SELECT ($1::text IS NOT NULL AND coalesce(( \
           SELECT EXISTS (SELECT 1 FROM unnest(tsvector_to_array(to_tsvector('simple', $1))) l WHERE NOT l = ANY (m.elems)) \
              AND (to_tsvector('english', $1) = ''::tsvector \
                   OR EXISTS (SELECT 1 FROM unnest(tsvector_to_array(to_tsvector('english', $1))) l WHERE NOT l = ANY (m.elems))) \
           FROM (SELECT most_common_elems::text::text[] AS elems FROM pg_stats \
                 WHERE schemaname = current_schema() AND tablename = 'search_docs' AND attname = 'tsv') m), true)) \
           OR (cardinality($2::text[]) > 0 AND coalesce(( \
           SELECT EXISTS (SELECT 1 FROM unnest($2::text[]) l WHERE l <> ALL (coalesce(m.elems, '{}'))) \
           FROM (SELECT most_common_elems::text::text[] AS elems FROM pg_stats \
                 WHERE schemaname = current_schema() AND tablename = 'search_docs' AND attname = 'grams') m), true)) AS rare) r \
     WHERE r.rare";

/// [`SEARCH`] for one channel (`in:`, or a caller with one readable channel): an equality walks
/// `search_docs_channel_ts` newest first, which `= ANY` cannot (it is read unordered and
/// sorted: 54 ms instead of 10 on 1M messages, docs/benchmarks.md).
static SEARCH_ONE_CHANNEL: LazyLock<String> = LazyLock::new(|| SEARCH.replace("channel_id = ANY($1)", "channel_id = ($1::text[])[1]"));

impl Store {
    /// Applies one round of the indexer in one transaction: the documents of `message` events,
    /// then edits and deletes of messages indexed before, each only over an older state (a
    /// redelivered event changes nothing; a delete leaves a tombstone, also for a message never
    /// indexed, so a late `message` event cannot index it). Every message is in the batch at most
    /// once. Returns the ids of the messages whose document changed.
    pub async fn index_batch(&self, ws: &WorkspaceName, b: &IndexBatch<'_>) -> Result<HashSet<String>, sqlx::Error> {
        let mut tx = self.tenant_tx(ws).await?;
        let mut changed: HashSet<String> = HashSet::new();
        if !b.docs.is_empty() {
            let d = &b.docs;
            let ids: Vec<&str> = d.iter().map(|x| x.message_id).collect();
            let channels: Vec<&str> = d.iter().map(|x| x.channel_id).collect();
            let seqs: Vec<i64> = d.iter().map(|x| x.seq).collect();
            let states: Vec<i64> = d.iter().map(|x| x.indexed_seq).collect();
            let ts: Vec<DateTime<Utc>> = d.iter().map(|x| x.ts).collect();
            let users: Vec<&str> = d.iter().map(|x| x.user_id).collect();
            let threads: Vec<Option<&str>> = d.iter().map(|x| x.thread).collect();
            let bodies: Vec<&str> = d.iter().map(|x| x.body).collect();
            let links: Vec<bool> = d.iter().map(|x| has_link(x.body)).collect();
            let files: Vec<bool> = d.iter().map(|x| x.has_file).collect();
            let rows: Vec<String> = sqlx::query_scalar(
                "INSERT INTO search_docs (message_id, channel_id, seq, ts, user_id, thread, body, has_link, has_file, indexed_seq) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], \
                                      $8::bool[], $9::bool[], $10::int8[]) \
                 ON CONFLICT (message_id) DO UPDATE SET body = excluded.body, has_link = excluded.has_link, has_file = excluded.has_file, \
                     indexed_seq = excluded.indexed_seq \
                 WHERE search_docs.indexed_seq < excluded.indexed_seq AND NOT search_docs.deleted \
                 RETURNING message_id",
            )
            .bind(&ids)
            .bind(&channels)
            .bind(&seqs)
            .bind(&ts)
            .bind(&users)
            .bind(&threads)
            .bind(&bodies)
            .bind(&links)
            .bind(&files)
            .bind(&states)
            .fetch_all(&mut *tx)
            .await?;
            changed.extend(rows);
        }
        if !b.edits.is_empty() {
            let ids: Vec<&str> = b.edits.iter().map(|e| e.message_id).collect();
            let bodies: Vec<&str> = b.edits.iter().map(|e| e.text).collect();
            let links: Vec<bool> = b.edits.iter().map(|e| has_link(e.text)).collect();
            let seqs: Vec<i64> = b.edits.iter().map(|e| e.seq).collect();
            let rows: Vec<String> = sqlx::query_scalar(
                "UPDATE search_docs d SET body = u.body, has_link = u.link, indexed_seq = u.seq \
                 FROM unnest($1::text[], $2::text[], $3::bool[], $4::int8[]) AS u(id, body, link, seq) \
                 WHERE d.message_id = u.id AND d.indexed_seq < u.seq AND NOT d.deleted RETURNING d.message_id",
            )
            .bind(&ids)
            .bind(&bodies)
            .bind(&links)
            .bind(&seqs)
            .fetch_all(&mut *tx)
            .await?;
            changed.extend(rows);
        }
        if !b.deletes.is_empty() {
            let ids: Vec<&str> = b.deletes.iter().map(|d| d.message_id).collect();
            let channels: Vec<&str> = b.deletes.iter().map(|d| d.channel_id).collect();
            let seqs: Vec<i64> = b.deletes.iter().map(|d| d.seq).collect();
            let rows: Vec<String> = sqlx::query_scalar(
                "INSERT INTO search_docs (message_id, channel_id, seq, ts, user_id, body, has_link, deleted, indexed_seq) \
                 SELECT u.id, u.channel, 0, now(), '', '', false, true, u.seq FROM unnest($1::text[], $2::text[], $3::int8[]) AS u(id, channel, seq) \
                 ON CONFLICT (message_id) DO UPDATE SET body = '', has_link = false, has_file = false, deleted = true, \
                     indexed_seq = excluded.indexed_seq \
                 WHERE search_docs.indexed_seq < excluded.indexed_seq RETURNING message_id",
            )
            .bind(&ids)
            .bind(&channels)
            .bind(&seqs)
            .fetch_all(&mut *tx)
            .await?;
            changed.extend(rows);
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Rebuilds a workspace's index from the messages' stored state (`palaverd reindex`); the
    /// indexer may run meanwhile (both write only newer states). Returns the documents written.
    pub async fn reindex(&self, ws: &WorkspaceName) -> Result<u64, sqlx::Error> {
        let sql = Store::tenant_sql(
            ws,
            "INSERT INTO {s}.search_docs (message_id, channel_id, seq, ts, user_id, thread, body, has_link, has_file, deleted, indexed_seq) \
             SELECT id, channel_id, seq, ts, user_id, thread, CASE WHEN deleted THEN '' ELSE coalesce(body, '') END, \
                    NOT deleted AND coalesce(body, '') ~* 'https?://', NOT deleted AND coalesce(jsonb_array_length(files), 0) > 0, \
                    deleted, coalesce(state_seq, seq) \
             FROM {s}.events WHERE kind = 'message' \
             ON CONFLICT (message_id) DO UPDATE SET body = excluded.body, has_link = excluded.has_link, has_file = excluded.has_file, \
                 deleted = excluded.deleted, \
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
        if p.all_of.is_some() || !p.grams_lexemes.is_empty() {
            sqlx::query(PLAN_FOR_RARE_WORDS).bind(&p.all_of).bind(&p.grams_lexemes).execute(&mut *tx).await?;
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
            .bind(&p.grams_all)
            .bind(&p.grams_none)
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
