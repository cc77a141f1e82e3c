//! The reference client fold of docs/protocol.md: a channel's messages as a client computes them
//! from the events it received (live, replayed or paged), to compare with what history renders.
//!
//! Rules: a `message` event creates or replaces the message (a rendered one carries its state
//! and `state_seq`; a live one is its own state at its seq). A change event (`edit`, `delete`,
//! `reaction_add`, `reaction_remove`) applies to its `target` only if its seq is above the
//! target's `state_seq`, which then becomes that seq. Events are deduplicated by seq.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// A message as a client shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub seq: i64,
    pub text: Option<String>,
    pub edited: bool,
    pub deleted: bool,
    pub state_seq: i64,
    /// emoji → who reacted (complete while at most five users share an emoji).
    pub reactions: BTreeMap<String, BTreeSet<String>>,
}

/// One channel's folded state.
#[derive(Debug, Default, Clone)]
pub struct Fold {
    seen: BTreeSet<i64>,
    pub messages: BTreeMap<String, Shown>,
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    v[k].as_str().map(str::to_string)
}

/// A message as rendered by history (or a rendered replay event).
pub fn shown_from_rendered(e: &Value) -> Shown {
    let mut reactions = BTreeMap::new();
    for r in e["reactions"].as_array().into_iter().flatten() {
        let users = r["users"].as_array().into_iter().flatten().filter_map(|u| u.as_str().map(str::to_string)).collect();
        reactions.insert(r["emoji"].as_str().unwrap_or_default().to_string(), users);
    }
    Shown {
        seq: e["seq"].as_i64().unwrap_or_default(),
        text: str_of(e, "text"),
        edited: !e["edited_at"].is_null(),
        deleted: e["deleted"].as_bool().unwrap_or(false),
        state_seq: e["state_seq"].as_i64().unwrap_or_else(|| e["seq"].as_i64().unwrap_or_default()),
        reactions,
    }
}

impl Fold {
    /// The highest seq folded (what a client sends in `sync`).
    pub fn last_seq(&self) -> i64 {
        self.seen.last().copied().unwrap_or(0)
    }

    /// Applies one event frame (or a history entry); repeats of a seq are ignored.
    pub fn apply(&mut self, e: &Value) {
        let Some(seq) = e["seq"].as_i64() else { return };
        if !self.seen.insert(seq) {
            return;
        }
        let kind = e["kind"].as_str().unwrap_or_default();
        if kind == "message" {
            let id = str_of(e, "id").unwrap_or_default();
            let shown = shown_from_rendered(e);
            // A rendered copy that is older than what we folded must not win.
            if self.messages.get(&id).is_none_or(|m| m.state_seq <= shown.state_seq) {
                self.messages.insert(id, shown);
            }
            return;
        }
        let Some(target) = str_of(e, "target") else { return };
        let Some(m) = self.messages.get_mut(&target) else { return };
        if seq <= m.state_seq {
            return;
        }
        m.state_seq = seq;
        let user = str_of(e, "user").unwrap_or_default();
        let emoji = str_of(e, "emoji").unwrap_or_default();
        match kind {
            "edit" => {
                m.text = str_of(e, "text");
                m.edited = true;
            }
            "delete" => {
                m.deleted = true;
                m.text = None;
                m.reactions.clear();
            }
            "reaction_add" => {
                m.reactions.entry(emoji).or_default().insert(user);
            }
            "reaction_remove" => {
                if let Some(users) = m.reactions.get_mut(&emoji) {
                    users.remove(&user);
                    if users.is_empty() {
                        m.reactions.remove(&emoji);
                    }
                }
            }
            _ => {}
        }
    }
}
