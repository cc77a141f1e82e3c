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
    Subscribing {
        waiters: Vec<Waiter>,
        early: Vec<Utf8Bytes>,
    },
    Live {
        next: i64,
        pending: BTreeMap<i64, (DateTime<Utc>, Utf8Bytes)>,
    },
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

    /// Best effort: a connection whose queue is full misses the frame (it is not flagged slow
    /// for it: nothing durable was lost).
    pub fn deliver_ephemeral(&mut self, payload: Utf8Bytes) {
        self.conns.retain(|c| match c.tx.try_send(Outbound::Ephemeral(payload.clone())) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                metrics::global().ephemeral_dropped.inc();
                true
            }
            Err(TrySendError::Closed(_)) => false,
        });
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

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::*;

    fn event(seq: i64) -> Event {
        Event {
            channel: "c1".into(),
            seq,
            kind: "message".into(),
            id: format!("m{seq}"),
            user: "u".into(),
            cmid: None,
            text: None,
            ts: Utc::now(),
            ..Default::default()
        }
    }

    fn live_feed(next: i64, queue: usize) -> (Feed, mpsc::Receiver<Outbound>, CancellationToken) {
        let (tx, rx) = mpsc::channel(queue);
        let slow = CancellationToken::new();
        let (reply, _) = oneshot::channel();
        let conn = ConnHandle { id: 1, tx, slow: slow.clone() };
        let mut f = Feed::new(WorkspaceName::new("ws").unwrap(), Target::Channel("c1".into()), conn.clone(), reply);
        f.go_live(next, true);
        // The waiter's reply receiver was dropped, so attach the connection directly.
        f.conns.push(conn);
        (f, rx, slow)
    }

    fn offer(f: &mut Feed, seq: i64) {
        let e = event(seq);
        f.offer(seq, e.ts, Utf8Bytes::from(e.frame_json()));
    }

    fn drained(rx: &mut mpsc::Receiver<Outbound>) -> Vec<i64> {
        let mut out = Vec::new();
        while let Ok(Outbound::Event { seq, .. }) = rx.try_recv() {
            out.push(seq);
        }
        out
    }

    #[test]
    fn early_events_wait_for_the_missing_one_and_repeats_are_dropped() {
        let (mut f, mut rx, _) = live_feed(1, 16);
        offer(&mut f, 1);
        offer(&mut f, 3);
        offer(&mut f, 4);
        assert_eq!(drained(&mut rx), [1]);
        assert_eq!(f.hole(), Some((2, 2)));
        offer(&mut f, 2);
        assert_eq!(drained(&mut rx), [2, 3, 4]);
        assert_eq!(f.hole(), None);
        offer(&mut f, 3);
        assert!(drained(&mut rx).is_empty(), "a repeat must not be delivered again");
        assert_eq!(f.next(), Some(5));
    }

    #[test]
    fn a_fill_closes_the_hole_and_buffered_events_follow_in_order() {
        let (mut f, mut rx, _) = live_feed(10, 16);
        offer(&mut f, 13);
        offer(&mut f, 12);
        assert!(drained(&mut rx).is_empty());
        assert_eq!(f.hole(), Some((10, 11)));
        // Postgres returns the hole (and, harmlessly, an event already buffered).
        let n = f.accept_filled(vec![event(10), event(11), event(12)]);
        assert_eq!(n, 2);
        assert_eq!(drained(&mut rx), [10, 11, 12, 13]);
        // A fill that finds nothing new makes no progress.
        assert_eq!(f.accept_filled(vec![event(12)]), 0);
    }

    #[test]
    fn a_full_queue_flags_the_connection_slow_and_drops_it() {
        let (mut f, _rx, slow) = live_feed(1, 2);
        for seq in 1..=3 {
            offer(&mut f, seq);
        }
        assert!(slow.is_cancelled());
        assert!(f.conns.is_empty());
        assert_eq!(f.next(), Some(4), "the feed itself keeps going for other connections");
    }

    #[test]
    fn the_reorder_buffer_is_bounded() {
        let (mut f, _rx, _) = live_feed(1, 16);
        for seq in 2..(MAX_PENDING as i64 + 100) {
            offer(&mut f, seq);
        }
        let FeedState::Live { pending, .. } = &f.state else { panic!("live") };
        assert_eq!(pending.len(), MAX_PENDING);
    }
}
