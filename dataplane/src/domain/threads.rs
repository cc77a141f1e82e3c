//! Threads: pages of replies, following, thread read cursors, the followed-threads list.
//!
//! Owns who may see a thread (whoever may read its channel) and the paging cursors. It must not
//! send replies (a reply is a send, `domain::messages`) nor notify (the consumers do).

use chrono::{DateTime, Utc};

use super::Domain;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::{ChannelId, MessageId};
use crate::store::{FollowedThread, ThreadPage};

/// The `next_cursor` of the followed-threads list: the last entry's reply time and root.
fn threads_cursor(t: &FollowedThread) -> Option<String> {
    t.last_reply_ts.map(|ts| format!("{}.{}", ts.timestamp_micros(), t.root))
}

fn parse_threads_cursor(c: &str) -> Result<(DateTime<Utc>, String), ApiError> {
    let bad = || ApiError::bad_request("invalid cursor: pass the next_cursor of the previous page");
    let (micros, root) = c.split_once('.').ok_or_else(bad)?;
    let ts = micros.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(bad)?;
    let root = MessageId::new(root).map_err(|_| bad())?;
    Ok((ts, root.into_string()))
}

/// A thread page cursor: the seq of the last reply of the previous page.
fn parse_seq_cursor(c: &str) -> Result<i64, ApiError> {
    c.parse::<i64>()
        .ok()
        .filter(|s| *s >= 0)
        .ok_or_else(|| ApiError::bad_request("invalid cursor: pass the next_cursor of the previous page"))
}

impl Domain {
    /// A page of a thread, each message rendered as it is now (first page: with its root).
    pub async fn thread(
        &self,
        p: &Principal,
        channel: &ChannelId,
        root: &MessageId,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<ThreadPage, ApiError> {
        let after = cursor.map(parse_seq_cursor).transpose()?;
        self.store.can_read(&p.workspace, channel, &p.user).await?;
        self.store.thread_page(&p.workspace, channel, root, &p.user, after, limit).await
    }

    pub async fn follow(&self, p: &Principal, channel: &ChannelId, root: &MessageId, follow: bool) -> Result<(), ApiError> {
        self.store.can_read(&p.workspace, channel, &p.user).await?;
        self.store.follow_thread(&p.workspace, channel, root, &p.user, follow).await
    }

    /// Moves the caller's read cursor of a thread (the seq of the last reply read).
    pub async fn read_thread(&self, p: &Principal, channel: &ChannelId, root: &MessageId, seq: i64) -> Result<(), ApiError> {
        if seq < 0 {
            return Err(ApiError::bad_request("seq must be >= 0"));
        }
        self.store.can_read(&p.workspace, channel, &p.user).await?;
        self.store.read_thread(&p.workspace, channel, root, &p.user, seq).await
    }

    /// The threads the caller follows, most recent reply first; and the next page's cursor.
    pub async fn followed_threads(
        &self,
        p: &Principal,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<FollowedThread>, Option<String>), ApiError> {
        let before = cursor.map(parse_threads_cursor).transpose()?;
        let mut threads = self.store.followed_threads(&p.workspace, &p.user, before, limit + 1).await?;
        let more = threads.len() as i64 > limit;
        threads.truncate(limit as usize);
        let next = if more { threads.last().and_then(threads_cursor) } else { None };
        Ok((threads, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let ts = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let t = FollowedThread { channel: "c".into(), root: "m_1".into(), reply_count: 1, last_reply_ts: Some(ts), read_seq: 0, unread: 0 };
        let c = threads_cursor(&t).unwrap();
        assert_eq!(parse_threads_cursor(&c).unwrap(), (ts, "m_1".to_string()));
        for bad in ["", "x", "1.", "abc.m_1", "1.m 1"] {
            assert!(parse_threads_cursor(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_seq_cursor("42").unwrap(), 42);
        assert!(parse_seq_cursor("-1").is_err() && parse_seq_cursor("x").is_err());
    }
}
