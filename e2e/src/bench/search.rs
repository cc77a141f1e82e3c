//! The search scenario (issue 11's targets): query latency over a large index, for a user who
//! may read `member_of` of `channels` private channels.
//!
//! The messages are written straight into the workspace's `search_docs` table in batches, as
//! the consumers' indexer leaves them: sending millions of messages through the API would take
//! hours on one machine and measure the send path instead. Their text is synthetic: eight
//! words from a Zipf-like vocabulary of 2,000 (`w0` most frequent), plus `meeting` in 10% of
//! messages, the phrase `release notes` in 1% and `zanzibar` in one of 200,000. Then every
//! query kind is timed `requests` times through `GET /v1/search`, checking each answer.

use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use serde_json::{json, Value};

use super::{http_url, Percentiles, PodTarget};
use crate::client::Rest;
use crate::{token_with, urlencode};

/// Rows per INSERT of the seeding.
const BATCH: i64 = 100_000;

#[derive(Debug, Clone, clap::Args)]
pub struct SearchOpts {
    #[command(flatten)]
    pub target: PodTarget,
    /// The pods' database, where the messages are seeded.
    #[arg(long, env = "PALAVER_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/palaver")]
    pub database_url: String,
    /// Messages to seed (added to what an earlier run left in the workspace).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: i64,
    /// Private channels the messages are spread over.
    #[arg(long, default_value_t = 200)]
    pub channels: usize,
    /// Of those, how many the searching user is a member of.
    #[arg(long, default_value_t = 50)]
    pub member_of: usize,
    /// Authors of the messages.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Timed searches of each query kind.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    pub name: &'static str,
    pub q: String,
    pub latency: Percentiles,
    pub p95_ms: f64,
    /// Results on the first page (at most 20).
    pub results: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    pub messages_seeded: i64,
    pub index_rows: i64,
    pub seed_s: f64,
    pub seed_rows_per_s: f64,
    pub channels: usize,
    pub member_of: usize,
    pub queries: Vec<QueryReport>,
}

impl SearchReport {
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} messages in the index ({} seeded in {:.0} s, {:.0} rows/s); the searcher reads {} of {} channels\n",
            self.index_rows, self.messages_seeded, self.seed_s, self.seed_rows_per_s, self.member_of, self.channels
        );
        for q in &self.queries {
            s += &format!("{:<10} {:<45} p95 {:.2} ms, {} ({} results)\n", q.name, q.q, q.p95_ms, q.latency.line(), q.results);
        }
        s
    }
}

/// The private channels `bench-s0…` (created by `seeder` once, reused by later runs) and the
/// searcher's membership of the first `member_of`.
async fn channels(o: &SearchOpts, seeder: &Rest, searcher_id: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for i in 0..o.channels {
        let name = format!("bench-s{i}");
        let (s, body) = seeder.post("/v1/channels", json!({"name": name, "kind": "private"})).await?;
        let id = match s {
            200 | 201 => body["id"].as_str().context("channel id")?.to_string(),
            // An earlier run made it: its id is the seeder's to look up.
            409 => {
                let (s, list) = seeder.get("/v1/channels").await?;
                anyhow::ensure!(s == 200, "list channels: {s} {list}");
                let found = list["channels"].as_array().into_iter().flatten().find(|c| c["name"] == name.as_str());
                found.and_then(|c| c["id"].as_str()).with_context(|| format!("{name} exists but is not the seeder's"))?.to_string()
            }
            _ => anyhow::bail!("create {name}: {s} {body}"),
        };
        if i < o.member_of {
            let (s, body) = seeder.post(&format!("/v1/channels/{id}/members"), json!({"user": searcher_id})).await?;
            anyhow::ensure!((200..300).contains(&s), "add the searcher to {name}: {s} {body}");
        }
        out.push((id, name));
    }
    Ok(out)
}

/// Writes `n` synthetic messages into the index, spread over `channels`.
async fn seed(o: &SearchOpts, channel_ids: &[String], run: &str) -> anyhow::Result<()> {
    let ws = palaver_crds::WorkspaceName::new(o.target.workspace.clone()).map_err(anyhow::Error::msg)?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&o.database_url).await?;
    let sql = format!(
        "INSERT INTO {s}.search_docs (message_id, channel_id, seq, ts, user_id, body, has_link, indexed_seq) \
         SELECT 'm_' || $1 || '_' || i, ($2::text[])[1 + i % cardinality($2::text[])], 1 + i / cardinality($2::text[]), \
                now() - ($4 - i) * interval '100 milliseconds', 'u' || (i % $3), body, body LIKE '%https://%', 1 + i / cardinality($2::text[]) \
         FROM (SELECT i, concat_ws(' ', \
                 'w' || floor(power(2000, random()))::int, 'w' || floor(power(2000, random()))::int, \
                 'w' || floor(power(2000, random()))::int, 'w' || floor(power(2000, random()))::int, \
                 'w' || floor(power(2000, random()))::int, 'w' || floor(power(2000, random()))::int, \
                 'w' || floor(power(2000, random()))::int, 'w' || floor(power(2000, random()))::int, \
                 CASE WHEN random() < 0.1 THEN 'meeting' END, \
                 CASE WHEN random() < 0.01 THEN 'release notes' END, \
                 CASE WHEN random() < 0.000005 THEN 'zanzibar' END, \
                 CASE WHEN random() < 0.02 THEN 'see https://example.com/doc' END) AS body \
               FROM generate_series($5::bigint, $6::bigint) AS i) AS g",
        s = ws.schema()
    );
    let mut from = 0;
    while from < o.messages {
        let to = (from + BATCH).min(o.messages) - 1;
        let started = Instant::now();
        sqlx::query(&sql)
            .bind(run)
            .bind(channel_ids)
            .bind(o.users as i64)
            .bind(o.messages)
            .bind(from)
            .bind(to)
            .execute(&pool)
            .await
            .context("seeding search_docs")?;
        eprintln!("seeded {} of {} messages ({:.1} s for this batch)", to + 1, o.messages, started.elapsed().as_secs_f64());
        from = to + 1;
    }
    sqlx::query(&format!("ANALYZE {}.search_docs", ws.schema())).execute(&pool).await?;
    Ok(())
}

async fn index_rows(o: &SearchOpts) -> anyhow::Result<i64> {
    let ws = palaver_crds::WorkspaceName::new(o.target.workspace.clone()).map_err(anyhow::Error::msg)?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&o.database_url).await?;
    Ok(sqlx::query_scalar(&format!("SELECT count(*) FROM {}.search_docs", ws.schema())).fetch_one(&pool).await?)
}

pub async fn run(o: &SearchOpts) -> anyhow::Result<SearchReport> {
    anyhow::ensure!(o.channels >= 1 && (1..=o.channels).contains(&o.member_of), "--member-of must be 1..=--channels");
    anyhow::ensure!(o.messages >= 0 && o.users >= 1 && o.requests >= 1, "--users and --requests must be at least 1");
    let base = http_url(&o.target.pod);
    let seeder = Rest::new(&base, &token_with(&o.target.workspace, "bench-seeder", &o.target.secret, 3600));
    let searcher = Rest::new(&base, &token_with(&o.target.workspace, "bench-searcher", &o.target.secret, 3600));
    // Both exist once they have made a request.
    for r in [&seeder, &searcher] {
        let (s, body) = r.get("/v1/channels").await?;
        anyhow::ensure!(s == 200, "{s} {body}");
    }
    let chans = channels(o, &seeder, "bench-searcher").await?;
    let ids: Vec<String> = chans.iter().map(|(id, _)| id.clone()).collect();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let started = Instant::now();
    seed(o, &ids, &run_id).await?;
    let seed_s = started.elapsed().as_secs_f64();
    let three_days_ago = (chrono::Utc::now() - chrono::Duration::days(3)).date_naive();
    let queries = [
        ("word", "w37".to_string()),
        ("common", "meeting".to_string()),
        ("rare", "zanzibar".to_string()),
        ("phrase", "\"release notes\"".to_string()),
        ("filtered", format!("meeting from:@u7 after:{three_days_ago}")),
        ("channel", format!("w37 in:#{}", chans[0].1)),
        ("excluded", "w5 -meeting has:link".to_string()),
    ];
    let mut reports = Vec::new();
    for (name, q) in queries {
        let path = format!("/v1/search?q={}", urlencode(&q));
        let (s, first) = searcher.get(&path).await?;
        anyhow::ensure!(s == 200, "{name}: {s} {first}");
        let results = first["results"].as_array().map_or(0, Vec::len);
        check_unreadable_absent(&first, &ids[o.member_of..])?;
        let mut micros = Vec::with_capacity(o.requests);
        let client = reqwest::Client::new();
        let url = format!("{base}{path}");
        let auth = format!("Bearer {}", token_with(&o.target.workspace, "bench-searcher", &o.target.secret, 3600));
        for _ in 0..o.requests {
            let t = Instant::now();
            let resp = client.get(&url).header("authorization", &auth).send().await?;
            let status = resp.status().as_u16();
            let _ = resp.bytes().await?;
            anyhow::ensure!(status == 200, "{name}: status {status}");
            micros.push(t.elapsed().as_micros() as u64);
        }
        let p95_ms = {
            let mut v = micros.clone();
            v.sort_unstable();
            v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1000.0
        };
        reports.push(QueryReport { name, q, latency: Percentiles::from_micros(micros), p95_ms, results });
    }
    Ok(SearchReport {
        messages_seeded: o.messages,
        index_rows: index_rows(o).await?,
        seed_s,
        seed_rows_per_s: o.messages as f64 / seed_s.max(1e-9),
        channels: o.channels,
        member_of: o.member_of,
        queries: reports,
    })
}

/// No result is in a private channel the searcher is not a member of.
fn check_unreadable_absent(page: &Value, unreadable: &[String]) -> anyhow::Result<()> {
    for r in page["results"].as_array().into_iter().flatten() {
        let ch = r["channel"].as_str().unwrap_or_default();
        anyhow::ensure!(!unreadable.iter().any(|c| c == ch), "a result in channel {ch}, which the searcher may not read");
    }
    Ok(())
}
