//! Typing indicators: "user is typing in channel (thread)", through Redis pub/sub only.
//!
//! Owns the throttle (one forwarded per user and channel per [`TYPING_INTERVAL`], across pods
//! and connections, by a Redis key with a TTL) and the channel-size cut-off. It must never
//! touch Postgres for writing, nor fail a client: typing is best effort.

use std::time::Duration;

use super::Domain;
use crate::auth::Principal;
use crate::ids::{ChannelId, MessageId};
use crate::metrics::{self, ResultLabel};
use crate::protocol::ServerFrame;

/// At most one typing frame forwarded per user and channel in this time (issue 9).
pub const TYPING_INTERVAL: Duration = Duration::from_secs(3);
/// How long clients show the indicator unless it is renewed: two intervals, so one lost frame
/// does not make it flicker.
pub const TYPING_TTL_MS: u64 = 6_000;

impl Domain {
    /// Forwards a typing signal to the channel's connections (the typist's own connections
    /// drop it). `members` is the channel's member count. Returns what happened (the metric).
    pub async fn typing(&self, p: &Principal, channel: &ChannelId, thread: Option<&MessageId>, members: i64) -> &'static str {
        let result = self.forward_typing(p, channel, thread, members).await;
        metrics::global().typing.get_or_create(&ResultLabel { result }).inc();
        result
    }

    async fn forward_typing(&self, p: &Principal, channel: &ChannelId, thread: Option<&MessageId>, members: i64) -> &'static str {
        if members > self.limits.typing_max_members {
            return "too_many_members";
        }
        let frame = ServerFrame::Typing { channel, thread: thread.map(|t| t.as_str()), user: &p.user, ttl_ms: TYPING_TTL_MS }.to_json();
        self.forward_ephemeral(p, channel, "ty", TYPING_INTERVAL, frame).await
    }
}
