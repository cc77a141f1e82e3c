//! After-commit publishing: Redis pub/sub (real time) and Kafka (durable log), then clearing the
//! outbox row; plus the sweeper that republishes rows a pod left behind.
//!
//! Owns the at-least-once hand-off from Postgres to Redis and Kafka. It must not decide order
//! (Postgres did) nor deliver to sockets (the fan-out does).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::*;
use palaver_crds::WorkspaceName;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, TypeLabel};
use crate::protocol::Event;
use crate::store::{Appended, OutboxRow, Store};
use crate::workspaces::Workspaces;

/// Redis pub/sub channel of a workspace channel's events.
pub fn event_channel(ws: &WorkspaceName, channel: &str) -> String {
    format!("ev:{ws}:{channel}")
}

/// How long the sweeper waits for Kafka to confirm a republished batch.
const SWEEP_PRODUCE_TIMEOUT: Duration = Duration::from_secs(3);
const SWEEP_BATCH: i64 = 500;

#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Client,
    producer: FutureProducer,
    cleared: mpsc::UnboundedSender<(WorkspaceName, i64)>,
    /// Swept rows whose republished copy Kafka has not answered yet: the next sweeps leave them
    /// alone instead of queueing more copies behind it.
    in_flight: Mutex<HashSet<(WorkspaceName, i64)>>,
}

impl Publisher {
    /// Returns the publisher and the receiver its outbox-clearing task consumes.
    pub fn new(redis: Client, producer: FutureProducer) -> (Self, mpsc::UnboundedReceiver<(WorkspaceName, i64)>) {
        let (cleared, rx) = mpsc::unbounded_channel();
        (Self { inner: Arc::new(Inner { redis, producer, cleared, in_flight: Mutex::default() }) }, rx)
    }

    /// Publishes a just-committed event. Never fails the caller: whatever does not get through
    /// stays in the outbox for the sweeper.
    pub async fn publish(&self, ws: &WorkspaceName, appended: &Appended) {
        let Some(outbox_id) = appended.outbox_id else {
            return; // a repeated cmid: the original was published already
        };
        let json = appended.event.frame_json();
        let redis_ok = self.redis_publish(ws, &appended.event, &json).await;
        let delivery = self.produce(ws, &appended.event, &json);
        self.notify_membership(ws, &appended.event).await;
        let cleared = self.inner.cleared.clone();
        let ws = ws.clone();
        tokio::spawn(async move {
            if delivery.await && redis_ok {
                let _ = cleared.send((ws, outbox_id));
            }
        });
    }

    /// A message to all of one user's connections (on any pod); at most once.
    pub async fn notify_user(&self, ws: &WorkspaceName, user: &str, msg: serde_json::Value) {
        if let Err(e) = self.inner.redis.publish::<i64, _, _>(crate::fanout::user_key(ws, user), msg.to_string()).await {
            tracing::debug!(error = %e, "user notice not published");
        }
    }

    /// Tells the user's connections (on any pod) to start or stop following a channel.
    /// At most once: a lost notice takes effect at the user's next connect.
    async fn notify_membership(&self, ws: &WorkspaceName, event: &Event) {
        let t = match event.kind.as_str() {
            "member_join" => "joined",
            "member_leave" => "left",
            _ => return,
        };
        self.notify_user(ws, &event.user, serde_json::json!({ "t": t, "channel": event.channel, "seq": event.seq })).await;
    }

    async fn redis_publish(&self, ws: &WorkspaceName, event: &Event, json: &str) -> bool {
        // Fail fast while disconnected instead of queueing: the sweeper republishes later.
        if !self.inner.redis.is_connected() {
            metrics::global().publish_failures.get_or_create(&TypeLabel { r#type: "redis" }).inc();
            return false;
        }
        match self.inner.redis.publish::<i64, _, _>(event_channel(ws, &event.channel), json).await {
            Ok(_) => true,
            Err(e) => {
                metrics::global().publish_failures.get_or_create(&TypeLabel { r#type: "redis" }).inc();
                tracing::debug!(error = %e, "redis publish failed; the sweeper will retry");
                false
            }
        }
    }

    /// Enqueues the event on the workspace topic (key = channel); the future tells whether the
    /// broker confirmed it.
    fn produce(&self, ws: &WorkspaceName, event: &Event, json: &str) -> impl std::future::Future<Output = bool> + Send + 'static {
        let topic = ws.events_topic();
        let record = FutureRecord::to(&topic).key(event.channel.as_bytes()).payload(json.as_bytes());
        // The error carries the borrowed record back; only whether it was queued matters here.
        let sent = self.inner.producer.send_result(record).map_err(|_| ());
        async move {
            let ok = match sent {
                Ok(delivery) => matches!(delivery.await, Ok(Ok(_))),
                Err(_) => false,
            };
            if !ok {
                metrics::global().publish_failures.get_or_create(&TypeLabel { r#type: "kafka" }).inc();
            }
            ok
        }
    }

    /// Republishes swept rows; returns the outbox ids confirmed by both Redis and Kafka.
    async fn republish(&self, ws: &WorkspaceName, rows: Vec<OutboxRow>) -> Vec<i64> {
        let mut pending = Vec::with_capacity(rows.len());
        let busy = self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for row in rows.into_iter().filter(|r| !busy.contains(&(ws.clone(), r.id))) {
            let json = row.event.frame_json();
            let redis_ok = self.redis_publish(ws, &row.event, &json).await;
            pending.push((row.id, redis_ok, self.produce(ws, &row.event, &json)));
        }
        let mut done = Vec::new();
        let deadline = tokio::time::Instant::now() + SWEEP_PRODUCE_TIMEOUT;
        for (id, redis_ok, delivery) in pending {
            let mut delivery = Box::pin(delivery);
            match tokio::time::timeout_at(deadline, &mut delivery).await {
                Ok(true) if redis_ok => done.push(id),
                Ok(_) => {}
                // Still queued in the producer (a broker that just came back works through its
                // backlog): clear the row whenever Kafka confirms it, and until Kafka answers
                // (at most message.timeout.ms) sweep past it rather than queue another copy.
                Err(_) => {
                    let (inner, key) = (self.inner.clone(), (ws.clone(), id));
                    inner.in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone());
                    tokio::spawn(async move {
                        if delivery.await && redis_ok {
                            let _ = inner.cleared.send(key.clone());
                        }
                        inner.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                    });
                }
            }
        }
        metrics::global().outbox_republished.inc_by(done.len() as u64);
        done
    }
}

/// Deletes confirmed outbox rows in batches (one statement per workspace per batch).
pub async fn run_outbox_clearer(store: Store, mut rx: mpsc::UnboundedReceiver<(WorkspaceName, i64)>) {
    let mut batch: HashMap<WorkspaceName, Vec<i64>> = HashMap::new();
    while let Some((ws, id)) = rx.recv().await {
        batch.entry(ws).or_default().push(id);
        // Take whatever else is already queued, then write.
        while let Ok((ws, id)) = rx.try_recv() {
            batch.entry(ws).or_default().push(id);
        }
        for (ws, ids) in batch.drain() {
            if let Err(e) = store.outbox_delete(&ws, &ids).await {
                // The rows stay; the sweeper republishes them (consumers dedupe by seq).
                tracing::warn!(error = %e, workspace = %ws, rows = ids.len(), "outbox delete failed");
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every pod sweeps every workspace: rows older than `age` were left by a pod that died (or
/// whose publish failed) and are republished. `SKIP LOCKED` keeps pods from sweeping the same
/// rows at once.
pub async fn run_sweeper(
    store: Store,
    publisher: Publisher,
    workspaces: Workspaces,
    interval: Duration,
    age_ms: u64,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut backlog = 0;
        for ws in workspaces.list() {
            let p = publisher.clone();
            let w = ws.clone();
            match store.outbox_sweep(&ws, age_ms, SWEEP_BATCH, |rows| async move { p.republish(&w, rows).await }).await {
                Ok((claimed, published)) if claimed > 0 => {
                    tracing::info!(workspace = %ws, claimed, published, "outbox sweep republished stranded events");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, workspace = %ws, "outbox sweep failed"),
            }
            backlog += store.outbox_backlog(&ws, age_ms).await.unwrap_or(0);
        }
        metrics::global().outbox_backlog.set(backlog);
    }
}
