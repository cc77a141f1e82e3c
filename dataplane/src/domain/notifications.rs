//! The inbox: mentions, DMs (and, by the consumers, edits that add mentions) that arrived while
//! the user had no live connection.
//!
//! Owns the request rules of listing and marking read. It must not create entries: the
//! partition-by-channel consumers do, from the log.

use super::Domain;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::store::Notification;

/// Most ids one mark-read request may name.
pub const MARK_READ_MAX: usize = 1000;

/// Which entries to mark read.
pub enum MarkRead {
    Ids(Vec<i64>),
    All,
}

impl MarkRead {
    /// `{"ids":[…]}` (1 to [`MARK_READ_MAX`]) or `{"all":true}`, nothing else.
    pub fn from_request(ids: Option<Vec<i64>>, all: bool) -> Result<Self, ApiError> {
        match (ids, all) {
            (Some(ids), false) if !ids.is_empty() && ids.len() <= MARK_READ_MAX => Ok(Self::Ids(ids)),
            (None, true) => Ok(Self::All),
            _ => Err(ApiError::bad_request(format!("send either {{\"ids\":[…]}} (1 to {MARK_READ_MAX}) or {{\"all\":true}}"))),
        }
    }
}

impl Domain {
    /// The caller's inbox, newest first.
    pub async fn notifications(&self, p: &Principal, unread_only: bool, limit: i64) -> Result<Vec<Notification>, ApiError> {
        Ok(self.store.notifications(&p.workspace, &p.user, unread_only, limit).await?)
    }

    /// Marks entries read; returns how many changed.
    pub async fn mark_notifications_read(&self, p: &Principal, which: MarkRead) -> Result<u64, ApiError> {
        let ids = match &which {
            MarkRead::Ids(ids) => Some(ids.as_slice()),
            MarkRead::All => None,
        };
        Ok(self.store.mark_notifications_read(&p.workspace, &p.user, ids).await?)
    }
}
