//! Per-pod fan-out: Redis subscriptions → ordered, gap-free event streams → local sockets.
//!
//! Owns the pod's Redis SUBSCRIBE set (refcounted by the local connections that need a key), the
//! per-channel "next expected seq" with its reorder buffer, the Postgres fill for holes, and the
//! periodic position check that catches a lost publish on a channel that then went quiet.
//! The feeds are split over shards by key (one actor task each, as many as cores by default,
//! issue 12), so a shard's state needs no locks and a pod's fan-out is not limited to one core.
//! Redis messages reach a shard through a bounded queue: a shard that falls behind holds up the
//! pump, whose pub/sub buffer then drops messages, and the position check reads those from
//! Postgres. It must not write to sockets (it hands frames to each connection's bounded queue)
//! nor touch cursors.

mod feed;
mod subscriptions;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use fred::clients::SubscriberClient;
use palaver_crds::WorkspaceName;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, ReasonLabel};
use crate::protocol::{Event, EventHead};
use crate::store::Store;
use feed::{Feed, FeedState};
use subscriptions::SubCmd;

pub type ConnId = u64;

/// What the fan-out hands to a connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An `event` frame of a channel, in seq order per channel.
    Event { channel: String, seq: i64, ts: DateTime<Utc>, json: Utf8Bytes },
    /// A message on the user's own key (`us:{ws}:{user}`): membership changes.
    User(Utf8Bytes),
    /// An ephemeral frame of a channel (`typing`): unordered, never persisted, dropped rather
    /// than queued when the connection is behind.
    Ephemeral(Utf8Bytes),
}

/// Ephemeral frames (typing, receipts) share a channel's pub/sub key with its events and are
/// told apart by these prefixes, which no `event` frame has.
pub const EPHEMERAL_PREFIXES: [&str; 2] = [r#"{"t":"typing""#, r#"{"t":"receipt""#];

/// A connection as the fan-out sees it: its bounded queue, and the token to cancel when the
/// queue is full (the connection then closes with the slow-consumer code).
#[derive(Clone)]
pub struct ConnHandle {
    pub id: ConnId,
    pub tx: mpsc::Sender<Outbound>,
    pub slow: CancellationToken,
}

/// What a feed carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Channel(String),
    User(String),
    /// A user's presence transitions (`pr:{ws}:{user}`), delivered like user messages.
    Presence(String),
}

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("fan-out unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, Clone)]
pub struct Tuning {
    pub reorder_wait: Duration,
    pub position_check: Duration,
    /// Actor tasks the feeds are split over (at least 1).
    pub shards: usize,
}

/// Redis messages queued for one shard before the pump waits for it.
const MESSAGE_QUEUE: usize = 16 * 1024;

/// Most events one fill reads; a longer hole takes several fills.
const FILL_MAX: i64 = 500;

pub(crate) enum Cmd {
    Attach { key: String, ws: WorkspaceName, target: Target, conn: ConnHandle, reply: oneshot::Sender<Result<(), FanoutError>> },
    Detach { key: String, conn: ConnId },
    Ready { key: String, last_seq: Result<i64, String>, subscribed: bool },
    Filled { key: String, reason: &'static str, events: Result<Vec<Event>, String> },
    Reorder { key: String },
    Positions { ws: WorkspaceName, rows: Vec<(String, i64)> },
    Resubscribed { key: String, ok: bool },
    Tick,
}

/// A Redis message for a feed.
pub(crate) struct Message {
    key: String,
    payload: Utf8Bytes,
}

/// One shard's queues: control commands (attach, detach, the shard's own results) and the
/// bounded queue of Redis messages.
#[derive(Clone)]
pub(crate) struct Shard {
    cmd: mpsc::UnboundedSender<Cmd>,
    messages: mpsc::Sender<Message>,
}

/// The shards, each key always on the same one.
#[derive(Clone)]
pub(crate) struct Shards(Arc<[Shard]>);

impl Shards {
    fn of(&self, key: &str) -> &Shard {
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        &self.0[(h.finish() % self.0.len() as u64) as usize]
    }

    /// Hands a Redis message to its key's shard, waiting while that shard's queue is full.
    /// False once the fan-out stopped.
    pub(crate) async fn message(&self, key: String, payload: Utf8Bytes) -> bool {
        self.of(&key).messages.send(Message { key, payload }).await.is_ok()
    }
}

/// Handle to the fan-out actors.
#[derive(Clone)]
pub struct Fanout {
    shards: Shards,
}

pub fn key_for(ws: &WorkspaceName, target: &Target) -> String {
    match target {
        Target::Channel(c) => crate::publish::event_channel(ws, c),
        Target::User(u) => user_key(ws, u),
        Target::Presence(u) => crate::presence::presence_key(ws, u),
    }
}

/// Redis pub/sub channel for messages to one user's connections.
pub fn user_key(ws: &WorkspaceName, user: &str) -> String {
    format!("us:{ws}:{user}")
}

impl Fanout {
    /// Starts the shards, the Redis message pump and the tick.
    pub fn start(store: Store, subscriber: SubscriberClient, tuning: Tuning, stop: CancellationToken) -> Self {
        let subs = subscriptions::start(subscriber.clone(), stop.clone());
        let mut shards = Vec::new();
        for _ in 0..tuning.shards.max(1) {
            let (cmd, rx) = mpsc::unbounded_channel();
            let (messages, messages_rx) = mpsc::channel(MESSAGE_QUEUE);
            let actor = Actor { store: store.clone(), subs: subs.clone(), tx: cmd.clone(), feeds: HashMap::new(), tuning: tuning.clone() };
            tokio::spawn(actor.run(rx, messages_rx, stop.clone()));
            shards.push(Shard { cmd, messages });
        }
        let shards = Shards(shards.into());
        tokio::spawn(subscriptions::pump(subscriber, shards.clone(), stop.clone()));
        let tick = shards.clone();
        let every = tuning.position_check;
        let tick_stop = stop.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick_stop.cancelled() => return,
                    _ = t.tick() => if tick.0.iter().any(|s| s.cmd.send(Cmd::Tick).is_err()) { return },
                }
            }
        });
        Self { shards }
    }

    /// Adds the connection to the feed of `target`, subscribing first if this pod was not. On
    /// return every event with a seq above the channel's committed position at that moment
    /// will reach the connection's queue, in order.
    pub async fn attach(&self, ws: &WorkspaceName, target: Target, conn: ConnHandle) -> Result<(), FanoutError> {
        let (reply, rx) = oneshot::channel();
        let key = key_for(ws, &target);
        self.shards
            .of(&key)
            .cmd
            .send(Cmd::Attach { key, ws: ws.clone(), target, conn, reply })
            .map_err(|_| FanoutError::Unavailable("fan-out stopped".into()))?;
        rx.await.map_err(|_| FanoutError::Unavailable("fan-out stopped".into()))?
    }

    pub fn detach(&self, ws: &WorkspaceName, target: &Target, conn: ConnId) {
        let key = key_for(ws, target);
        let _ = self.shards.of(&key).cmd.send(Cmd::Detach { key, conn });
    }
}

struct Actor {
    store: Store,
    subs: mpsc::UnboundedSender<SubCmd>,
    tx: mpsc::UnboundedSender<Cmd>,
    feeds: HashMap<String, Feed>,
    tuning: Tuning,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>, mut messages: mpsc::Receiver<Message>, stop: CancellationToken) {
        // The gauge is the sum over shards: each adds the change of its own count.
        let mut counted = 0i64;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                cmd = rx.recv() => match cmd { Some(c) => self.handle(c), None => return },
                m = messages.recv() => match m { Some(m) => self.message(&m.key, m.payload), None => return },
            }
            let n = self.feeds.len() as i64;
            if n != counted {
                metrics::global().fanout_channels.inc_by(n - counted);
                counted = n;
            }
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Attach { key, ws, target, conn, reply } => self.attach(key, ws, target, conn, reply),
            Cmd::Detach { key, conn } => {
                if let Some(f) = self.feeds.get_mut(&key) {
                    f.remove(conn);
                }
            }
            Cmd::Ready { key, last_seq, subscribed } => self.ready(&key, last_seq, subscribed),
            Cmd::Filled { key, reason, events } => self.filled(&key, reason, events),
            Cmd::Reorder { key } => {
                if let Some(f) = self.feeds.get_mut(&key) {
                    f.reorder_armed = false;
                }
                self.maybe_fill_hole(&key);
            }
            Cmd::Positions { ws, rows } => self.positions(&ws, rows),
            Cmd::Resubscribed { key, ok } => {
                if let Some(f) = self.feeds.get_mut(&key) {
                    f.subscribed = ok;
                    f.resubscribing = false;
                }
            }
            Cmd::Tick => self.tick(),
        }
    }

    fn attach(
        &mut self,
        key: String,
        ws: WorkspaceName,
        target: Target,
        conn: ConnHandle,
        reply: oneshot::Sender<Result<(), FanoutError>>,
    ) {
        if let Some(feed) = self.feeds.get_mut(&key) {
            feed.empty_since = None;
            match &mut feed.state {
                FeedState::Subscribing { waiters, .. } => waiters.push((conn, reply)),
                FeedState::Live { .. } => {
                    feed.conns.push(conn);
                    let _ = reply.send(Ok(()));
                }
            }
            return;
        }
        let feed = Feed::new(ws.clone(), target.clone(), conn, reply);
        self.feeds.insert(key.clone(), feed);
        // Subscribe first, then read the position: an event committed before the read is in
        // Postgres (the connection replays it), one committed after reaches us by pub/sub.
        let (done, subscribed) = oneshot::channel();
        let _ = self.subs.send(SubCmd::Subscribe { key: key.clone(), done });
        let store = self.store.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let subscribed = subscribed.await.unwrap_or(false);
            let last_seq = match &target {
                Target::User(_) | Target::Presence(_) => Ok(0),
                Target::Channel(c) => match store.positions(&ws, std::slice::from_ref(c)).await {
                    Ok(rows) => rows.first().map(|r| r.1).ok_or_else(|| format!("no channel {c}")),
                    Err(e) => Err(e.to_string()),
                },
            };
            let _ = tx.send(Cmd::Ready { key, last_seq, subscribed });
        });
    }

    fn ready(&mut self, key: &str, last_seq: Result<i64, String>, subscribed: bool) {
        let Some(feed) = self.feeds.get_mut(key) else { return };
        match last_seq {
            Ok(last) => {
                let early = feed.go_live(last + 1, subscribed);
                for payload in early {
                    self.message(key, payload);
                }
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "fan-out could not start feed");
                if let Some(Feed { state: FeedState::Subscribing { waiters, .. }, .. }) = self.feeds.remove(key) {
                    for (_, reply) in waiters {
                        let _ = reply.send(Err(FanoutError::Unavailable(e.clone())));
                    }
                }
                let _ = self.subs.send(SubCmd::Unsubscribe { key: key.to_string() });
            }
        }
    }

    fn message(&mut self, key: &str, payload: Utf8Bytes) {
        let Some(feed) = self.feeds.get_mut(key) else { return };
        if let Target::User(_) | Target::Presence(_) = feed.target {
            if let FeedState::Live { .. } = feed.state {
                feed.deliver_user(payload);
            }
            return;
        }
        if EPHEMERAL_PREFIXES.iter().any(|p| payload.as_str().starts_with(p)) {
            if let FeedState::Live { .. } = feed.state {
                feed.deliver_ephemeral(payload);
            }
            return;
        }
        let head: EventHead = match serde_json::from_str(payload.as_str()) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(key, error = %e, "undecodable event on pub/sub");
                return;
            }
        };
        match &mut feed.state {
            FeedState::Subscribing { early, .. } => early.push(payload),
            FeedState::Live { .. } => {
                feed.offer(head.seq, head.ts, payload);
                if feed.has_hole() && !feed.fill_in_flight {
                    self.arm_reorder(key);
                }
            }
        }
    }

    fn maybe_fill_hole(&mut self, key: &str) {
        let Some(feed) = self.feeds.get(key) else { return };
        if feed.fill_in_flight {
            return;
        }
        if let Some((from, to)) = feed.hole() {
            self.start_fill(key, from, to, "hole");
        }
    }

    fn start_fill(&mut self, key: &str, from: i64, to: i64, reason: &'static str) {
        let Some(feed) = self.feeds.get_mut(key) else { return };
        let Target::Channel(channel) = feed.target.clone() else { return };
        feed.fill_in_flight = true;
        let ws = feed.ws.clone();
        let store = self.store.clone();
        let tx = self.tx.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            let events = store.events_range(&ws, &channel, from, to, FILL_MAX).await.map_err(|e| e.to_string());
            let _ = tx.send(Cmd::Filled { key, reason, events });
        });
    }

    fn filled(&mut self, key: &str, reason: &'static str, events: Result<Vec<Event>, String>) {
        let Some(feed) = self.feeds.get_mut(key) else { return };
        feed.fill_in_flight = false;
        let progress = match events {
            Ok(events) => {
                let n = feed.accept_filled(events);
                if n > 0 {
                    metrics::global().fanout_fills.get_or_create(&ReasonLabel { reason }).inc_by(n);
                }
                n > 0
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "fan-out fill failed; will retry");
                false
            }
        };
        if !feed.has_hole() {
            return;
        }
        if progress {
            // More than one fill's worth was missing: keep reading.
            self.maybe_fill_hole(key);
        } else {
            // Nothing readable yet (or Postgres failed): retry after the reorder wait, never in
            // a tight loop.
            self.arm_reorder(key);
        }
    }

    fn arm_reorder(&mut self, key: &str) {
        let Some(feed) = self.feeds.get_mut(key) else { return };
        if feed.reorder_armed {
            return;
        }
        feed.reorder_armed = true;
        let tx = self.tx.clone();
        let key = key.to_string();
        let wait = self.tuning.reorder_wait;
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = tx.send(Cmd::Reorder { key });
        });
    }

    fn tick(&mut self) {
        // Drop feeds nobody has used for a whole tick (lingering avoids churn on reconnects).
        let now = Instant::now();
        let linger = self.tuning.position_check;
        let stale: Vec<String> =
            self.feeds.iter().filter(|(_, f)| f.empty_since.is_some_and(|t| now - t >= linger)).map(|(k, _)| k.clone()).collect();
        for key in stale {
            self.feeds.remove(&key);
            let _ = self.subs.send(SubCmd::Unsubscribe { key });
        }
        let mut by_ws: HashMap<WorkspaceName, Vec<String>> = HashMap::new();
        for (key, f) in self.feeds.iter_mut() {
            if f.conns.is_empty() && f.empty_since.is_none() && matches!(f.state, FeedState::Live { .. }) {
                f.empty_since = Some(now);
            }
            if !f.subscribed && !f.resubscribing && matches!(f.state, FeedState::Live { .. }) {
                f.resubscribing = true;
                let (done, rx) = oneshot::channel();
                let _ = self.subs.send(SubCmd::Subscribe { key: key.clone(), done });
                let tx = self.tx.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let ok = rx.await.unwrap_or(false);
                    let _ = tx.send(Cmd::Resubscribed { key, ok });
                });
            }
            if let (Target::Channel(c), FeedState::Live { .. }) = (&f.target, &f.state) {
                by_ws.entry(f.ws.clone()).or_default().push(c.clone());
            }
        }
        for (ws, channels) in by_ws {
            let store = self.store.clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                match store.positions(&ws, &channels).await {
                    Ok(rows) => {
                        let _ = tx.send(Cmd::Positions { ws, rows });
                    }
                    Err(e) => tracing::warn!(workspace = %ws, error = %e, "position check failed"),
                }
            });
        }
    }

    fn positions(&mut self, ws: &WorkspaceName, rows: Vec<(String, i64)>) {
        for (channel, last_seq) in rows {
            let key = crate::publish::event_channel(ws, &channel);
            let Some(feed) = self.feeds.get(&key) else { continue };
            if feed.fill_in_flight {
                continue;
            }
            if let Some(next) = feed.next() {
                if last_seq >= next {
                    self.start_fill(&key, next, last_seq, "position");
                }
            }
        }
    }
}
