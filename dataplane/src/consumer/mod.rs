//! Partition-by-channel consumers: every pod is a member of two consumer groups over all
//! workspace topics (the inbox's and the search index's), so in each group a channel's events
//! are processed in order by one pod, and neither group waits for the other.
//!
//! Owns offsets (stored after processing, committed in the background), the subscription to
//! the active workspaces' topics, and consumer lag. What processing does lives in `notify`
//! (inbox entries for offline members), `index` (the search index) and `push` (the
//! push-provider hand-off). Processing is
//! idempotent by `(channel, seq)`: a redelivered event changes nothing. It must not deliver
//! to sockets (real time is the fan-out's job).

mod index;
mod notify;
pub mod push;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use palaver_crds::WorkspaceName;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, ResultLabel};
use crate::workspaces::Workspaces;
pub use index::Indexer;
pub use notify::Notifier;

use crate::protocol::Event;

const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(5);
const LAG_EVERY: Duration = Duration::from_secs(5);

/// What a consumer group does with each event. The inbox and the search index are separate
/// groups over the same topics, so a search index that falls behind never delays mentions,
/// DMs and pushes (ADR 0008).
pub enum Worker {
    /// Inbox entries and pushes: group `PALAVER_CONSUMER_GROUP`.
    Inbox(Notifier),
    /// The search index: group `<PALAVER_CONSUMER_GROUP>-search`.
    Search(Indexer),
}

/// Most events the search indexer takes from one poll into one round of writes.
const INDEX_BATCH_MAX: usize = 500;

impl Worker {
    /// Processes one workspace's events in order; returns each one's result.
    async fn process(&self, ws: &WorkspaceName, events: &[Event]) -> Result<Vec<&'static str>, sqlx::Error> {
        match self {
            Worker::Inbox(n) => {
                let mut results = Vec::with_capacity(events.len());
                for ev in events {
                    results.push(n.process(ws, ev).await?);
                }
                Ok(results)
            }
            Worker::Search(i) => i.index(ws, events).await,
        }
    }

    /// How many events one round may take: the indexer writes what has already arrived
    /// together (one transaction instead of one per event: the send rate it keeps up with,
    /// docs/benchmarks.md); the inbox takes them one at a time.
    fn batch_max(&self) -> usize {
        match self {
            Worker::Inbox(_) => 1,
            Worker::Search(_) => INDEX_BATCH_MAX,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Worker::Inbox(_) => "inbox",
            Worker::Search(_) => "search index",
        }
    }

    /// Its results counter and its lag gauge.
    fn metrics(&self) -> (&'static Family<ResultLabel, Counter>, &'static Gauge) {
        let m = metrics::global();
        match self {
            Worker::Inbox(_) => (&m.consumed, &m.consumer_lag),
            Worker::Search(_) => (&m.search_indexed, &m.search_consumer_lag),
        }
    }
}

pub async fn run(consumer: Arc<StreamConsumer>, worker: Worker, workspaces: Workspaces, stop: CancellationToken) {
    let (results, lag_gauge) = worker.metrics();
    let mut topics: Vec<String> = Vec::new();
    let mut resubscribe = tokio::time::interval(RESUBSCRIBE_EVERY);
    let mut lag = tokio::time::interval(LAG_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = resubscribe.tick() => {
                let want: Vec<String> = workspaces.list().iter().map(WorkspaceName::events_topic).collect();
                if want != topics && !want.is_empty() {
                    let refs: Vec<&str> = want.iter().map(String::as_str).collect();
                    match consumer.subscribe(&refs) {
                        Ok(()) => {
                            tracing::info!(topics = want.len(), worker = worker.name(), "consumer subscribed");
                            topics = want;
                        }
                        Err(e) => tracing::warn!(error = %e, "consumer subscribe failed"),
                    }
                }
            }
            _ = lag.tick() => {
                let c = consumer.clone();
                if let Ok(Some(l)) = tokio::task::spawn_blocking(move || total_lag(&c)).await {
                    lag_gauge.set(l);
                }
            }
            msg = consumer.recv(), if !topics.is_empty() => match msg {
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(first) => {
                    let mut polled = vec![first];
                    // What has already arrived joins the round (recv is cancellation safe: a
                    // poll that is not ready takes nothing).
                    while polled.len() < worker.batch_max() {
                        match consumer.recv().now_or_never() {
                            Some(Ok(m)) => polled.push(m),
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "consumer error");
                                break;
                            }
                            None => break,
                        }
                    }
                    for (ws, events) in decode(&worker, &polled, results) {
                        if !until_done(&stop, worker.name(), || worker.process(&ws, &events), results).await {
                            return;
                        }
                    }
                    for m in &polled {
                        if let Err(e) = consumer.store_offset_from_message(m) {
                            tracing::warn!(error = %e, "offset store failed");
                        }
                    }
                }
            }
        }
    }
    // Commit what was processed before leaving the group.
    let c = consumer.clone();
    let _ = tokio::task::spawn_blocking(move || c.commit_consumer_state(CommitMode::Sync)).await;
}

/// The polled events by workspace, in their order (a channel's events stay in order: a
/// channel belongs to one workspace). Undecodable ones are counted and skipped.
fn decode(worker: &Worker, polled: &[BorrowedMessage<'_>], results: &Family<ResultLabel, Counter>) -> Vec<(WorkspaceName, Vec<Event>)> {
    let mut by_ws: Vec<(WorkspaceName, Vec<Event>)> = Vec::new();
    for m in polled {
        let Some(ws) = WorkspaceName::from_events_topic(m.topic()) else { continue };
        if let (Worker::Inbox(_), Some(produced_ms)) = (worker, m.timestamp().to_millis()) {
            let delay_ms = chrono::Utc::now().timestamp_millis() - produced_ms;
            metrics::global().consume_delay.observe(delay_ms.max(0) as f64 / 1000.0);
        }
        match serde_json::from_slice::<Event>(m.payload().unwrap_or_default()) {
            Ok(ev) => match by_ws.iter_mut().find(|(w, _)| *w == ws) {
                Some((_, events)) => events.push(ev),
                None => by_ws.push((ws, vec![ev])),
            },
            Err(e) => {
                tracing::warn!(error = %e, workspace = %ws, "undecodable event on the log; skipped");
                results.get_or_create(&ResultLabel { result: "invalid" }).inc();
            }
        }
    }
    by_ws
}

/// Runs one processing step until it succeeds; false if shutdown came first. At least once:
/// an event is retried, never skipped. `counter` counts each event's result, and `error` for
/// each failed attempt.
async fn until_done<F, Fut>(stop: &CancellationToken, what: &str, mut step: F, counter: &Family<ResultLabel, Counter>) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<&'static str>, sqlx::Error>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match step().await {
            Ok(done) => {
                for result in done {
                    counter.get_or_create(&ResultLabel { result }).inc();
                }
                return true;
            }
            Err(e) => {
                counter.get_or_create(&ResultLabel { result: "error" }).inc();
                tracing::warn!(error = %e, what, "processing failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Sum over assigned partitions of (high watermark - position).
fn total_lag(c: &StreamConsumer) -> Option<i64> {
    let assignment = c.assignment().ok()?;
    let positions = c.position().ok()?;
    let mut lag = 0;
    for e in assignment.elements() {
        let (_, high) = c.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(2)).ok()?;
        let pos = match positions.find_partition(e.topic(), e.partition()).map(|p| p.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => committed_or_zero(c, e.topic(), e.partition()),
        };
        lag += (high - pos).max(0);
    }
    Some(lag)
}

fn committed_or_zero(c: &StreamConsumer, topic: &str, partition: i32) -> i64 {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    match c.committed_offsets(tpl, Duration::from_secs(2)).ok().and_then(|t| t.find_partition(topic, partition).map(|p| p.offset())) {
        Some(Offset::Offset(o)) => o,
        _ => 0,
    }
}
