//! What the consumer does with an event: mentions and DMs for members without a live
//! connection become inbox entries (and pushes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use palaver_crds::WorkspaceName;

use crate::mentions::{self, parse as parse_mentions};
use crate::metrics::{self, TypeLabel};
use crate::presence::Presence;
use crate::protocol::Event;
use crate::publish::Publisher;
use crate::store::Store;

#[derive(Clone)]
pub struct Notifier {
    pub store: Store,
    pub presence: Presence,
    pub publisher: Publisher,
    /// Whether a push provider is configured (otherwise entries are inbox-only).
    pub push_enabled: bool,
    /// Channel kinds never change: remember them instead of asking Postgres per event.
    pub kinds: Arc<Mutex<HashMap<(WorkspaceName, String), String>>>,
}

/// Kinds remembered at most; beyond it the cache starts over (it is only a shortcut).
const KIND_CACHE_MAX: usize = 100_000;

impl Notifier {
    async fn channel_kind(&self, ws: &WorkspaceName, channel: &str) -> Result<Option<String>, sqlx::Error> {
        let key = (ws.clone(), channel.to_string());
        if let Some(k) = self.kinds.lock().expect("lock").get(&key) {
            return Ok(Some(k.clone()));
        }
        let kind = self.store.channel_kind(ws, channel).await?;
        if let Some(k) = &kind {
            let mut cache = self.kinds.lock().expect("lock");
            if cache.len() >= KIND_CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, k.clone());
        }
        Ok(kind)
    }

    /// Processes one event; returns what happened (for the metric). Errors are transient
    /// (storage): the caller retries the same event.
    pub async fn process(&self, ws: &WorkspaceName, ev: &Event) -> Result<&'static str, sqlx::Error> {
        // An edit can add mentions: they notify as of the original message's seq, so a user
        // the message already notified is not notified again (the inbox is unique per seq).
        let seq = match ev.kind.as_str() {
            "message" => ev.seq,
            "edit" => {
                let mentioned = parse_mentions(ev.text.as_deref().unwrap_or_default());
                let Some(target) = ev.target.as_deref().filter(|_| !mentioned.is_empty()) else { return Ok("ok") };
                match self.store.event_by_id(ws, target).await? {
                    Some(orig) => orig.seq,
                    None => return Ok("skipped"),
                }
            }
            _ => return Ok("skipped"),
        };
        let mentioned = parse_mentions(ev.text.as_deref().unwrap_or_default());
        let Some(kind) = self.channel_kind(ws, &ev.channel).await? else { return Ok("skipped") };
        // In DMs every message notifies; an edit there notifies only whom it mentions.
        let is_dm = (kind == "dm" || kind == "group_dm") && ev.kind == "message";
        if !is_dm && mentioned.is_empty() && ev.thread.is_none() {
            return Ok("ok"); // the common case costs no query at all
        }
        let members = self.store.members(ws, &ev.channel).await?;
        let others = || members.iter().filter(|m| **m != ev.user).cloned();
        // @channel: every member, like a mention of each; @here: the members online now.
        let everyone = mentioned.iter().any(|m| m == mentions::CHANNEL);
        let here = mentioned.iter().any(|m| m == mentions::HERE);
        let mut targets: Vec<(String, &'static str)> = if is_dm {
            others().map(|m| (m, "dm")).collect()
        } else if everyone {
            others().map(|m| (m, "mention")).collect()
        } else {
            mentioned.into_iter().filter(|u| *u != ev.user && members.contains(u)).map(|u| (u, "mention")).collect()
        };
        let mut online_targets = Vec::new();
        if here && !everyone {
            for m in others() {
                if self.presence.is_online(ws, &m).await {
                    online_targets.push(m);
                }
            }
        }
        // A reply notifies its thread's followers too (a mention or DM entry wins: one entry
        // per (user, channel, seq)).
        if let Some(root) = ev.thread.as_deref().filter(|_| ev.kind == "message") {
            for f in self.store.thread_followers(ws, root, &ev.user).await? {
                if members.contains(&f) && !targets.iter().any(|(u, _)| *u == f) {
                    targets.push((f, "thread"));
                }
            }
        }
        let mut notify: Vec<(String, &'static str)> = Vec::new();
        for (user, nkind) in targets {
            if !self.presence.is_online(ws, &user).await {
                notify.push((user, nkind)); // online users see the event live
            }
        }
        for u in online_targets {
            if !notify.iter().any(|(n, _)| *n == u) {
                notify.push((u, "mention"));
            }
        }
        for (user, nkind) in notify {
            if let Some(n) = self.store.notify(ws, &user, &ev.channel, seq, nkind, self.push_enabled).await? {
                metrics::global().notifications.get_or_create(&TypeLabel { r#type: nkind }).inc();
                // Reaches the user only if a connection opened meanwhile; otherwise they get it
                // after their next hello.
                self.publisher.notify_user(ws, &user, crate::protocol::notification_frame(&n)).await;
            }
        }
        Ok("ok")
    }
}
