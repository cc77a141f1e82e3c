//! Channels and membership: create, join, leave, add a member, DMs, the caller's channel list.
//!
//! Owns the input rules (names, kinds, user ids) before the store's membership checks. It must
//! not hide or reveal channels itself: the store answers `not_found` for what the caller may
//! not see.

use serde_json::{json, Value};

use super::{Committed, Domain};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::ChannelId;
use crate::store::{Appended, ChannelInfo, ChannelKind};

/// A user id from a request body, validated.
pub fn user_ref(user: String) -> Result<String, ApiError> {
    if crate::auth::valid_user_id(&user) {
        Ok(user)
    } else {
        Err(ApiError::bad_request("invalid user id"))
    }
}

impl Domain {
    /// The caller's channels with cursors and unread counts (Redis cursors win when fresher).
    pub async fn my_channels(&self, p: &Principal) -> Result<Vec<Value>, ApiError> {
        let fresh = self.cursors.fresh(&p.workspace, &p.user).await;
        let rows = self.store.my_channels(&p.workspace, &p.user, &fresh.read).await?;
        Ok(rows
            .into_iter()
            .map(|c| json!({"id": c.id, "name": c.name, "kind": c.kind, "last_seq": c.last_seq, "read_seq": c.read_seq, "unread": c.unread, "mentions": c.mentions}))
            .collect())
    }

    pub async fn create_channel(&self, p: &Principal, name: &str, kind: ChannelKind) -> Result<Committed<ChannelInfo>, ApiError> {
        if kind == ChannelKind::Dm {
            return Err(ApiError::bad_request("open DMs with POST /v1/dms"));
        }
        palaver_crds::validate_channel_name(name).map_err(ApiError::bad_request)?;
        let (info, joined) = self.store.create_channel(&p.workspace, &p.user, name, kind).await?;
        Ok(Committed::new(self, &p.workspace, info, joined))
    }

    /// `actor` adds `user` (themselves for a join). The value: whether anything changed.
    pub async fn add_member(&self, p: &Principal, channel: &ChannelId, user: &str) -> Result<Committed<bool>, ApiError> {
        let joined = self.store.add_member(&p.workspace, channel, &p.user, user).await?;
        Ok(self.changed(p, joined))
    }

    pub async fn leave(&self, p: &Principal, channel: &ChannelId) -> Result<Committed<bool>, ApiError> {
        let left = self.store.leave(&p.workspace, channel, &p.user).await?;
        Ok(self.changed(p, left))
    }

    pub async fn open_dm(&self, p: &Principal, other: &str) -> Result<Committed<ChannelInfo>, ApiError> {
        let (info, joined) = self.store.open_dm(&p.workspace, &p.user, other).await?;
        Ok(Committed::new(self, &p.workspace, info, joined))
    }

    fn changed(&self, p: &Principal, appended: Option<Appended>) -> Committed<bool> {
        let changed = appended.is_some();
        Committed::new(self, &p.workspace, changed, appended.into_iter().collect())
    }
}
