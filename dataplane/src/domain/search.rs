//! Search (issue 11): a query in the search language, over every channel the caller may read
//! (public channels, joined or not, and the private channels and DMs they are in), newest
//! first, with highlighted snippets and cursor paging.
//!
//! Owns who may find what, turning the parsed query into the index's parameters, and the
//! cursor. It must not parse the language (`search_query`) nor touch the index's SQL (the
//! store's `search` module); the index is written by the consumers, never here.

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use super::search_query::{self, ChannelRef, DEFAULT_SNIPPET_CHARS};
use super::Domain;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::metrics::{self, ResultLabel};
use crate::store::{SearchHit, SearchParams};

/// SQLSTATE 57014, `query_canceled`: the statement timeout ended the search.
const SQLSTATE_QUERY_CANCELED: &str = "57014";

#[derive(Debug, Serialize)]
pub struct SearchResult {
    pub channel: String,
    pub seq: i64,
    pub id: String,
    pub user: String,
    pub text: String,
    /// HTML-escaped, with the matched words in `<mark>…</mark>`.
    pub snippet: String,
    pub ts: DateTime<Utc>,
    /// A reply's thread root.
    pub thread: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SearchPage {
    pub results: Vec<SearchResult>,
    pub next_cursor: Option<String>,
}

/// The start of a UTC day.
fn day_start(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

fn next_day(d: NaiveDate) -> NaiveDate {
    d.checked_add_days(Days::new(1)).unwrap_or(d)
}

/// `<microseconds since the epoch>.<message id>` of the last result: where the next page
/// starts. Opaque to clients.
fn encode_cursor(h: &SearchHit) -> String {
    format!("{}.{}", h.ts.timestamp_micros(), h.message_id)
}

fn decode_cursor(c: &str) -> Result<(DateTime<Utc>, String), ApiError> {
    let bad = || ApiError::bad_request("invalid cursor: pass next_cursor from the previous page");
    let (micros, id) = c.split_once('.').ok_or_else(bad)?;
    let ts = micros.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(bad)?;
    if id.is_empty() || id.len() > crate::ids::MAX_ID_LEN {
        return Err(bad());
    }
    Ok((ts, id.to_string()))
}

impl Domain {
    /// One page of results for `q` (the caller's rate limit is the transport's).
    pub async fn search(&self, p: &Principal, q: &str, cursor: Option<&str>, limit: i64) -> Result<SearchPage, ApiError> {
        let started = std::time::Instant::now();
        let result = self.search_page(p, q, cursor, limit).await;
        let m = metrics::global();
        let label = result.as_ref().map_or_else(|(_, outcome)| *outcome, |_| "ok");
        m.searches.get_or_create(&ResultLabel { result: label }).inc();
        m.search_duration.observe(started.elapsed().as_secs_f64());
        result.map_err(|(e, _)| e)
    }

    /// Fails with the error and the `palaver_searches_total` result it counts as.
    async fn search_page(&self, p: &Principal, q: &str, cursor: Option<&str>, limit: i64) -> Result<SearchPage, (ApiError, &'static str)> {
        let bad = |e: ApiError| (e, "bad_request");
        let failed = |e: sqlx::Error| (ApiError::from(e), "error");
        let limits = search_query::Limits { max_chars: self.limits.search_max_chars, max_terms: self.limits.search_max_terms };
        let query = search_query::parse(q, &limits).map_err(|e| bad(ApiError::bad_request(e.to_string()).at(e.position)))?;
        let after = cursor.map(decode_cursor).transpose().map_err(bad)?;

        let readable = self.store.readable_channels(&p.workspace, &p.user).await.map_err(failed)?;
        let channels: Vec<String> = readable
            .into_iter()
            .filter(|(id, name)| {
                query.channels.is_empty()
                    || query.channels.iter().any(|c| match c {
                        ChannelRef::Id(i) => i == id,
                        ChannelRef::Name(n) => n == name,
                    })
            })
            .map(|(id, _)| id)
            .collect();
        // `in:` naming nothing the caller may read finds nothing, exactly like a channel that
        // does not exist (private channels stay invisible).
        if channels.is_empty() {
            return Ok(SearchPage { results: Vec::new(), next_cursor: None });
        }

        // after: and before: are exclusive days; on: is that day.
        let mut since = query.after.map(|d| day_start(next_day(d)));
        let mut until = query.before.map(day_start);
        if let Some(d) = query.on {
            since = since.max(Some(day_start(d)));
            until = Some(until.map_or(day_start(next_day(d)), |u| u.min(day_start(next_day(d)))));
        }
        let nonempty = |s: String| (!s.is_empty()).then_some(s);
        // Words for word search, CJK text and parts of identifiers for the grams.
        let terms = search_query::route(&query.terms);
        let excluded = search_query::route(&query.excluded);
        let params = SearchParams {
            channels,
            all_of: nonempty(search_query::websearch_text(&terms.words, " ")),
            none_of: nonempty(search_query::websearch_text(&excluded.words, " or ")),
            grams_all: terms.grams_query("&"),
            grams_none: excluded.grams_query("|"),
            grams_lexemes: terms.lexemes,
            users: query.from.clone(),
            since,
            until,
            has_link: query.has_link,
            has_file: query.has_file,
            replies: query.is_thread,
            after,
            // One more than asked: whether there is a next page.
            limit: limit + 1,
            timeout_ms: self.limits.search_timeout_ms,
        };
        let mut hits = self.store.search(&p.workspace, &params).await.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some(SQLSTATE_QUERY_CANCELED) => {
                let ms = self.limits.search_timeout_ms;
                (ApiError::bad_request(format!("this search did not finish within {ms} ms; narrow it with in:, from: or dates")), "timeout")
            }
            _ => failed(e),
        })?;
        let next_cursor = if hits.len() as i64 > limit {
            hits.truncate(limit as usize);
            hits.last().map(encode_cursor)
        } else {
            None
        };
        let words = query.positive_words();
        let results = hits
            .into_iter()
            .map(|h| SearchResult {
                snippet: search_query::snippet(&h.body, &words, DEFAULT_SNIPPET_CHARS),
                channel: h.channel_id,
                seq: h.seq,
                id: h.message_id,
                user: h.user_id,
                text: h.body,
                ts: h.ts,
                thread: h.thread,
            })
            .collect();
        Ok(SearchPage { results, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let ts = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let hit = SearchHit {
            message_id: "m_01".into(),
            channel_id: "c".into(),
            seq: 1,
            ts,
            user_id: "u".into(),
            thread: None,
            body: String::new(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&hit)).unwrap(), (ts, "m_01".to_string()));
        for bad in ["", "x.m", "123", "123.", "99999999999999999999.m"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn day_bounds_are_utc_midnights() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        assert_eq!(day_start(d).to_rfc3339(), "2026-12-31T00:00:00+00:00");
        assert_eq!(day_start(next_day(d)).to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }
}
