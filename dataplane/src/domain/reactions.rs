//! Reactions: add and remove one user's emoji on a message.
//!
//! Owns emoji validity (at the edge, by [`crate::ids::Emoji`]) and the per-message limit the
//! store enforces under its lock. It must not render reaction summaries (the store does, for
//! history).

use super::messages::ChangeResult;
use super::Domain;
use crate::auth::Principal;
use crate::ids::{ChannelId, Emoji, MessageId};

impl Domain {
    pub async fn react(&self, p: &Principal, channel: &ChannelId, message: &MessageId, emoji: &Emoji) -> ChangeResult {
        let r = self.store.react(&p.workspace, channel, message, &p.user, emoji).await;
        self.committed(&p.workspace, "reaction_add", r)
    }

    pub async fn unreact(&self, p: &Principal, channel: &ChannelId, message: &MessageId, emoji: &Emoji) -> ChangeResult {
        let r = self.store.unreact(&p.workspace, channel, message, &p.user, emoji).await;
        self.committed(&p.workspace, "reaction_remove", r)
    }
}
