//! One feed: the local connections interested in one Redis key, and for a channel the ordering
//! state (next expected seq, reorder buffer).

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use palaver_crds::WorkspaceName;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;

use super::{ConnHandle, ConnId, FanoutError, Outbound, Target};
use crate::metrics;
use crate::protocol::Event;

/// Early events held per channel while a hole is filled; beyond it they are dropped and read
/// back from Postgres, so memory stays bounded whatever Redis does.
const MAX_PENDING: usize = 10_000;

type Waiter = (ConnHandle, oneshot::Sender<Result<(), FanoutError>>);

pub(super) enum FeedState {
    /// SUBSCRIBE sent, position not read yet: connections wait, messages are kept.
    Subscribing { waiters: Vec<Waiter>, early: Vec<Utf8Bytes> },
    Live { next: i64, pending: BTreeMap<i64, (DateTime<Utc>, Utf8Bytes)> },
}

pub(super) struct Feed {
    pub ws: WorkspaceName,
    pub target: Target,
    pub conns: Vec<ConnHandle>,
    pub state: FeedState,
    /// Whether the Redis SUBSCRIBE succeeded; if not, the tick retries and the position check
    /// keeps delivering from Postgres meanwhile.
    pub subscribed: bool,
    pub resubscribing: bool,
    pub reorder_armed: bool,
    pub fill_in_flight: bool,
    pub empty_since: Option<Instant>,
}

impl Feed {
    pub fn new(ws: WorkspaceName, target: Target, conn: ConnHandle, reply: oneshot::Sender<Result<(), FanoutError>>) -> Self {
        Self {
            ws,
            target,
            conns: Vec::new(),
            state: FeedState::Subscribing { waiters: vec![(conn, reply)], early: Vec::new() },
            subscribed: false,
            resubscribing: false,
            reorder_armed: false,
            fill_in_flight: false,
            empty_since: None,
        }
    }

    /// Switches to live at `next`; releases the waiting connections and returns the messages
    /// that arrived meanwhile (to be offered again).
    pub fn go_live(&mut self, next: i64, subscribed: bool) -> Vec<Utf8Bytes> {
        self.subscribed = subscribed;
        let old = std::mem::replace(&mut self.state, FeedState::Live { next, pending: BTreeMap::new() });
        let FeedState::Subscribing { waiters, early } = old else {
            self.state = old;
            return Vec::new();
        };
        for (conn, reply) in waiters {
            if reply.send(Ok(())).is_ok() {
                self.conns.push(conn);
            }
        }
        early
    }

    pub fn remove(&mut self, conn: ConnId) {
        self.conns.retain(|c| c.id != conn);
        if let FeedState::Subscribing { waiters, .. } = &mut self.state {
            waiters.retain(|(c, _)| c.id != conn);
        }
    }

    pub fn next(&self) -> Option<i64> {
        match &self.state {
            FeedState::Live { next, .. } => Some(*next),
            FeedState::Subscribing { .. } => None,
        }
    }

    /// The missing range before the first buffered event, if any.
    pub fn hole(&self) -> Option<(i64, i64)> {
        match &self.state {
            FeedState::Live { next, pending } => pending.keys().next().map(|first| (*next, first - 1)),
            FeedState::Subscribing { .. } => None,
        }
    }

    pub fn has_hole(&self) -> bool {
        self.hole().is_some()
    }

    /// An event from pub/sub: deliver it if it is next, drop it if seen, buffer it if early.
    pub fn offer(&mut self, seq: i64, ts: DateTime<Utc>, payload: Utf8Bytes) {
        let FeedState::Live { next, pending } = &mut self.state else { return };
        if seq < *next {
            metrics::global().fanout_duplicates.inc();
            return;
        }
        if seq > *next {
            if pending.len() < MAX_PENDING {
                pending.insert(seq, (ts, payload));
            }
            return;
        }
        self.deliver(seq, ts, payload);
        self.drain();
    }

    /// Events read from Postgres for a hole or a position check; returns how many were new.
    pub fn accept_filled(&mut self, events: Vec<Event>) -> u64 {
        let mut n = 0;
        for e in events {
            let Some(next) = self.next() else { return n };
            if e.seq == next {
                self.deliver(e.seq, e.ts, Utf8Bytes::from(e.frame_json()));
                n += 1;
                self.drain();
            }
        }
        n
    }

    fn drain(&mut self) {
        loop {
            let FeedState::Live { next, pending } = &mut self.state else { return };
            // Buffered events below `next` arrived twice (pub/sub and fill): drop them.
            while pending.first_key_value().is_some_and(|(s, _)| s < next) {
                pending.pop_first();
            }
            match pending.first_key_value() {
                Some((s, _)) if s == next => {
                    let (seq, (ts, payload)) = pending.pop_first().expect("checked");
                    self.deliver(seq, ts, payload);
                }
                _ => return,
            }
        }
    }

    fn deliver(&mut self, seq: i64, ts: DateTime<Utc>, json: Utf8Bytes) {
        if let FeedState::Live { next, .. } = &mut self.state {
            *next = seq + 1;
        }
        let Target::Channel(channel) = &self.target else { return };
        self.conns.retain(|c| {
            let item = Outbound::Event { channel: channel.clone(), seq, ts, json: json.clone() };
            keep_or_flag(c, c.tx.try_send(item))
        });
    }

    pub fn deliver_user(&mut self, payload: Utf8Bytes) {
        self.conns.retain(|c| keep_or_flag(c, c.tx.try_send(Outbound::User(payload.clone()))));
    }
}

/// A full queue marks the connection slow (it closes and resumes); a closed one is gone.
fn keep_or_flag(c: &ConnHandle, r: Result<(), TrySendError<Outbound>>) -> bool {
    match r {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            c.slow.cancel();
            false
        }
        Err(TrySendError::Closed(_)) => false,
    }
}
