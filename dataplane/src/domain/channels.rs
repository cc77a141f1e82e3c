//! Channels and membership: create, join, leave, add a member, DMs, the caller's channel list.
//!
//! Owns the input rules (names, kinds, user ids) before the store's membership checks. It must
//! not hide or reveal channels itself: the store answers `not_found` for what the caller may
//! not see.

use serde_json::{json, Value};

use super::messages::ChangeResult;
use super::{authz, Committed, Domain};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::ChannelId;
use crate::store::{Appended, ChannelDetails, ChannelInfo, ChannelKind, ChannelPatch};

/// Longest topic or purpose, in characters.
pub const MAX_TOPIC_CHARS: usize = 250;

fn validate_setting(what: &str, v: &str) -> Result<(), ApiError> {
    if v.contains('\0') {
        return Err(ApiError::bad_request(format!("{what} must not contain U+0000 (NUL)")));
    }
    if v.chars().count() > MAX_TOPIC_CHARS {
        return Err(ApiError::too_large(format!("{what} is longer than {MAX_TOPIC_CHARS} characters")));
    }
    Ok(())
}

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
        let rows = self.store.my_channels(&p.workspace, &p.user, &fresh.read, None).await?;
        Ok(rows
            .into_iter()
            .map(|c| json!({"id": c.id, "name": c.name, "kind": c.kind, "last_seq": c.last_seq, "read_seq": c.read_seq, "unread": c.unread, "mentions": c.mentions}))
            .collect())
    }

    pub async fn create_channel(&self, p: &Principal, name: &str, kind: ChannelKind) -> Result<Committed<ChannelInfo>, ApiError> {
        if kind.is_direct() {
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

    /// Opens (or finds) the DM with one other user, or the group DM with 2 to 8.
    pub async fn open_dm(&self, p: &Principal, others: Vec<String>) -> Result<Committed<ChannelInfo>, ApiError> {
        let others = others.into_iter().map(user_ref).collect::<Result<Vec<_>, _>>()?;
        let (info, joined) = self.store.open_dm(&p.workspace, &p.user, &others).await?;
        Ok(Committed::new(self, &p.workspace, info, joined))
    }

    /// A channel's settings and member count.
    pub async fn channel(&self, p: &Principal, channel: &ChannelId) -> Result<ChannelDetails, ApiError> {
        self.store.channel_details(&p.workspace, channel, &p.user).await
    }

    /// Renames, sets topic or purpose, archives or unarchives; a `channel_update` event says what
    /// changed (nothing changed: a no-op).
    pub async fn update_channel(&self, p: &Principal, channel: &ChannelId, patch: ChannelPatch) -> ChangeResult {
        let r = async {
            if let Some(name) = &patch.name {
                palaver_crds::validate_channel_name(name).map_err(ApiError::bad_request)?;
            }
            for (what, v) in [("topic", &patch.topic), ("purpose", &patch.purpose)] {
                if let Some(v) = v {
                    validate_setting(what, v)?;
                }
            }
            let moderator = authz::role(&self.store, &p.workspace, &p.user).await?.moderates();
            self.store.update_channel(&p.workspace, channel, &p.user, moderator, &patch).await
        };
        self.committed(&p.workspace, "channel_update", r.await)
    }

    /// The public channels, by name (the channel browser); and the next page's cursor.
    pub async fn browse_channels(
        &self,
        p: &Principal,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<ChannelDetails>, Option<String>), ApiError> {
        let mut page = self.store.public_channels(&p.workspace, cursor, limit + 1).await?;
        let next = (page.len() as i64 > limit).then(|| page[limit as usize - 1].name.clone());
        page.truncate(limit as usize);
        Ok((page, next))
    }

    /// A page of a channel's members by user id; and the next page's cursor.
    pub async fn members(
        &self,
        p: &Principal,
        channel: &ChannelId,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<String>, Option<String>), ApiError> {
        let mut page = self.store.channel_members(&p.workspace, channel, &p.user, cursor, limit + 1).await?;
        let next = (page.len() as i64 > limit).then(|| page[limit as usize - 1].clone());
        page.truncate(limit as usize);
        Ok((page, next))
    }

    /// Removes a member: oneself is a leave; someone else needs the creator or a moderator.
    pub async fn remove_member(&self, p: &Principal, channel: &ChannelId, user: &str) -> Result<Committed<bool>, ApiError> {
        if user == p.user {
            return self.leave(p, channel).await;
        }
        let moderator = authz::role(&self.store, &p.workspace, &p.user).await?.moderates();
        let removed = self.store.remove_member(&p.workspace, channel, &p.user, moderator, user).await?;
        Ok(self.changed(p, removed))
    }

    fn changed(&self, p: &Principal, appended: Option<Appended>) -> Committed<bool> {
        let changed = appended.is_some();
        Committed::new(self, &p.workspace, changed, appended.into_iter().collect())
    }
}
