//! Read receipts: who has read a small channel up to which seq (issue 9).
//!
//! Owns the size rule (channels, DMs included, of at most `PALAVER_RECEIPTS_MAX_MEMBERS`
//! members), the throttle (one receipt per user and channel per [`RECEIPT_INTERVAL`], across
//! pods, by a Redis key with a TTL; the connection sends the latest one it held back once the
//! interval has passed) and the receipts list. Receipts are Redis pub/sub only; the read cursors
//! they report are the ones `crate::cursors` keeps.

use std::time::Duration;

use serde::Serialize;

use super::Domain;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::ChannelId;
use crate::metrics::{self, ResultLabel};
use crate::protocol::ServerFrame;

/// At most one receipt forwarded per user and channel in this time (issue 9).
pub const RECEIPT_INTERVAL: Duration = Duration::from_secs(2);

/// One member's read position.
#[derive(Debug, Clone, Serialize)]
pub struct Read {
    pub user: String,
    pub seq: i64,
}

impl Domain {
    /// Tells the channel's other members' connections that the user has read up to `seq`.
    /// `members` is the channel's member count. Returns what happened: `throttled` means the
    /// caller should try again after [`RECEIPT_INTERVAL`] with its latest seq.
    pub async fn receipt(&self, p: &Principal, channel: &ChannelId, seq: i64, members: i64) -> &'static str {
        let result = self.forward_receipt(p, channel, seq, members).await;
        metrics::global().receipts.get_or_create(&ResultLabel { result }).inc();
        result
    }

    async fn forward_receipt(&self, p: &Principal, channel: &ChannelId, seq: i64, members: i64) -> &'static str {
        if members > self.limits.receipts_max_members {
            return "too_many_members";
        }
        let frame = ServerFrame::Receipt { channel, user: &p.user, seq }.to_json();
        self.forward_ephemeral(p, channel, "rc", RECEIPT_INTERVAL, frame).await
    }

    /// Who has read the channel up to which seq (members; receipts-sized channels only).
    pub async fn reads(&self, p: &Principal, channel: &ChannelId) -> Result<Vec<Read>, ApiError> {
        self.store.can_read(&p.workspace, channel, &p.user).await?;
        let max = self.limits.receipts_max_members;
        if self.store.member_count(&p.workspace, channel).await? > max {
            return Err(ApiError::forbidden(format!("read receipts are kept for channels of at most {max} members")));
        }
        let mut reads = Vec::new();
        for (user, read) in self.store.member_reads(&p.workspace, channel).await? {
            // Redis has the newest cursor; Postgres gets it within a flush interval.
            let fresh = self.cursors.fresh(&p.workspace, &user).await.read.get(channel.as_str()).copied().unwrap_or(0);
            reads.push(Read { user, seq: read.max(fresh) });
        }
        Ok(reads)
    }
}
