//! Group commit of sends (issue 12): the stage between the transports and the store that
//! commits concurrent sends together.
//!
//! Owns the sends a pod has accepted and not yet committed, and which of them are committed
//! together. Per workspace, plain messages (no thread, no files) that arrive while earlier
//! batches are committing go into one statement ([`Store::send_messages`]): one commit, one WAL
//! flush, for all of them. A reply or a message with files goes alone. A channel is in at most
//! one batch in flight and its sends leave the queue in the order they came, so sends to one
//! channel (a connection's pipelined sends among them) get seqs in the order they were
//! submitted. There is no timer: a lone send goes at once, and batches form only while commits
//! are in flight, so latency at low load is that of a single send.
//!
//! It must not validate or authorize (the domain did that before submitting) nor publish (the
//! transport does, after replying).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use palaver_crds::WorkspaceName;
use tokio::sync::{mpsc, oneshot};

use crate::config::SendBatching;
use crate::error::ApiError;
use crate::metrics;
use crate::store::{Appended, NewEvent, Store};

/// What a submitted send resolves to once committed (or refused).
pub type SendResult = Result<Appended, ApiError>;

/// Sends accepted and not yet taken by the stage; submitting waits when it is full.
const QUEUE: usize = 4096;

/// The handle transports' domain calls submit to; cheap to clone.
#[derive(Clone)]
pub struct Sender {
    tx: mpsc::Sender<(WorkspaceName, Queued)>,
}

struct Queued {
    channel: String,
    ev: NewEvent,
    reply: oneshot::Sender<SendResult>,
    queued_at: Instant,
}

/// One workspace's sends: waiting, and the channels of the batches in flight.
#[derive(Default)]
struct Lane {
    waiting: VecDeque<Queued>,
    busy: HashSet<String>,
    running: usize,
}

impl Sender {
    /// Starts the stage's task.
    pub fn start(store: Store, cfg: SendBatching) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, cfg, rx));
        Self { tx }
    }

    /// Queues a send; the receiver gets its result after its batch committed. Sends to a
    /// channel are committed in the order of their `submit` calls.
    pub async fn submit(&self, ws: &WorkspaceName, channel: String, ev: NewEvent) -> oneshot::Receiver<SendResult> {
        let (reply, rx) = oneshot::channel();
        let queued = Queued { channel, ev, reply, queued_at: Instant::now() };
        if let Err(mpsc::error::SendError((_, q))) = self.tx.send((ws.clone(), queued)).await {
            let _ = q.reply.send(Err(ApiError::unavailable("the server is shutting down; retry with the same cmid")));
        }
        rx
    }
}

async fn run(store: Store, cfg: SendBatching, mut rx: mpsc::Receiver<(WorkspaceName, Queued)>) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(WorkspaceName, Vec<String>)>();
    let mut lanes: HashMap<WorkspaceName, Lane> = HashMap::new();
    let (max_batch, max_running) = (cfg.send_batch_max.max(1), cfg.send_batches_in_flight.max(1));
    loop {
        let mut touched = HashSet::new();
        tokio::select! {
            biased;
            done = done_rx.recv() => {
                let Some((ws, channels)) = done else { return };
                if let Some(lane) = lanes.get_mut(&ws) {
                    lane.running -= 1;
                    for c in channels {
                        lane.busy.remove(&c);
                    }
                }
                touched.insert(ws);
            }
            got = rx.recv() => {
                let Some((ws, q)) = got else { return };
                lanes.entry(ws.clone()).or_default().waiting.push_back(q);
                touched.insert(ws);
            }
        }
        // Whatever else has arrived joins before batches are cut.
        while let Ok((ws, q)) = rx.try_recv() {
            lanes.entry(ws.clone()).or_default().waiting.push_back(q);
            touched.insert(ws);
        }
        for ws in touched {
            let Some(lane) = lanes.get_mut(&ws) else { continue };
            while lane.running < max_running {
                let batch = cut(lane, max_batch);
                if batch.is_empty() {
                    break;
                }
                lane.running += 1;
                let channels: Vec<String> = batch.iter().map(|q| q.channel.clone()).collect();
                lane.busy.extend(channels.iter().cloned());
                tokio::spawn(commit(store.clone(), ws.clone(), batch, Done { tx: done_tx.clone(), ws: Some(ws.clone()), channels }));
            }
            metrics::global().send_queued.set(lanes.values().map(|l| l.waiting.len() as i64).sum());
            if lane_idle(&lanes, &ws) {
                lanes.remove(&ws);
            }
        }
    }
}

fn lane_idle(lanes: &HashMap<WorkspaceName, Lane>, ws: &WorkspaceName) -> bool {
    lanes.get(ws).is_some_and(|l| l.waiting.is_empty() && l.running == 0)
}

/// Takes the next batch from the lane: waiting sends in order, skipping channels in flight, and
/// every later send to a channel skipped once (its order). Plain messages share a batch, up to
/// `max`; a reply or a message with files goes alone.
fn cut(lane: &mut Lane, max: usize) -> Vec<Queued> {
    let mut batch = Vec::new();
    let mut blocked: HashSet<String> = HashSet::new();
    let mut kept = VecDeque::with_capacity(lane.waiting.len());
    while let Some(q) = lane.waiting.pop_front() {
        let free = batch.len() < max && !lane.busy.contains(&q.channel) && !blocked.contains(&q.channel);
        if free && q.ev.batchable() {
            batch.push(q);
        } else if free && batch.is_empty() {
            batch.push(q);
            // Alone: nothing else joins it.
            kept.extend(lane.waiting.drain(..));
            break;
        } else {
            blocked.insert(q.channel.clone());
            kept.push_back(q);
        }
    }
    lane.waiting = kept;
    batch
}

/// Frees a batch's channels when its commit finished, or if its task ended any other way.
struct Done {
    tx: mpsc::UnboundedSender<(WorkspaceName, Vec<String>)>,
    ws: Option<WorkspaceName>,
    channels: Vec<String>,
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(ws) = self.ws.take() {
            let _ = self.tx.send((ws, std::mem::take(&mut self.channels)));
        }
    }
}

async fn commit(store: Store, ws: WorkspaceName, batch: Vec<Queued>, done: Done) {
    let m = metrics::global();
    m.send_batch_size.observe(batch.len() as f64);
    let now = Instant::now();
    for q in &batch {
        m.send_queue_wait.observe(now.duration_since(q.queued_at).as_secs_f64());
    }
    let (jobs, replies): (Vec<(String, NewEvent)>, Vec<oneshot::Sender<SendResult>>) =
        batch.into_iter().map(|q| ((q.channel, q.ev), q.reply)).unzip();
    let (results, fell_back) = store.send_messages(&ws, jobs).await;
    if fell_back {
        m.send_batch_fallbacks.inc();
    }
    drop(done);
    for (reply, r) in replies.into_iter().zip(results) {
        // A receiver gone (its connection closed) is fine: the send is stored and a retry with
        // the same cmid is answered with it.
        let _ = reply.send(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(channel: &str, thread: bool) -> Queued {
        let ev = NewEvent { kind: "message", thread: thread.then(|| "m_root".to_string()), ..Default::default() };
        Queued { channel: channel.into(), ev, reply: oneshot::channel().0, queued_at: Instant::now() }
    }

    fn channels(b: &[Queued]) -> Vec<&str> {
        b.iter().map(|q| q.channel.as_str()).collect()
    }

    #[test]
    fn plain_sends_share_a_batch_up_to_the_limit_in_order() {
        let mut lane = Lane::default();
        lane.waiting.extend(["a", "b", "a", "c"].map(|c| queued(c, false)));
        assert_eq!(channels(&cut(&mut lane, 3)), ["a", "b", "a"]);
        assert_eq!(lane.waiting.iter().map(|q| q.channel.as_str()).collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn a_channel_in_flight_waits_and_keeps_its_order() {
        let mut lane = Lane::default();
        lane.busy.insert("a".into());
        lane.waiting.extend([queued("a", false), queued("b", false), queued("a", false)]);
        assert_eq!(channels(&cut(&mut lane, 10)), ["b"]);
        assert_eq!(lane.waiting.len(), 2);
        lane.busy.clear();
        assert_eq!(channels(&cut(&mut lane, 10)), ["a", "a"]);
    }

    #[test]
    fn a_reply_goes_alone_and_later_sends_to_its_channel_wait_for_it() {
        let mut lane = Lane::default();
        lane.waiting.extend([queued("a", false), queued("a", true), queued("b", false), queued("a", false)]);
        // The reply cannot join the plain batch, and what follows it in "a" must not pass it.
        assert_eq!(channels(&cut(&mut lane, 10)), ["a", "b"]);
        lane.busy.extend(["a".to_string(), "b".to_string()]);
        assert!(cut(&mut lane, 10).is_empty());
        lane.busy.clear();
        let reply = cut(&mut lane, 10);
        assert_eq!(channels(&reply), ["a"]);
        assert!(reply[0].ev.thread.is_some());
        assert_eq!(channels(&cut(&mut lane, 10)), ["a"]);
        assert!(lane.waiting.is_empty());
    }
}
