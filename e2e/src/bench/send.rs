//! The send scenario: U users spread over the target pods, C channels of M members, and
//! operations at a fixed total rate R for duration D from S senders (each pipelines: it does
//! not wait for acks). An operation is a send, or, in the shares given, a thread reply, a
//! reaction or an edit of the channel's latest message. Every event delivered is checked
//! against the acks: lost, duplicated and reordered events are counted, and send→ack and
//! send→deliver latencies are recorded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::{connect, http_url, Heartbeat, Percentiles, Target};
use crate::client::Rest;
use crate::token_with;

/// Distinct reactions per message the server allows (issue 9): the generator never asks for more.
const MAX_REACTIONS: u32 = 50;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchOpts {
    #[command(flatten)]
    pub target: Target,
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    #[arg(long, default_value_t = 50)]
    pub channels: usize,
    #[arg(long, default_value_t = 10)]
    pub members: usize,
    #[arg(long, default_value_t = 20)]
    pub senders: usize,
    /// Total operations per second (open loop).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Sending time in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Longest wait for outstanding deliveries after sending stops, in seconds.
    #[arg(long, default_value_t = 15.0)]
    pub drain: f64,
    /// Share of operations (0–1) that are thread replies to the channel's latest message.
    #[arg(long, default_value_t = 0.0)]
    pub replies: f64,
    /// Share of operations that add a reaction to the channel's latest message.
    #[arg(long, default_value_t = 0.0)]
    pub reactions: f64,
    /// Share of operations that edit the channel's latest message.
    #[arg(long, default_value_t = 0.0)]
    pub edits: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// Operations sent.
    pub sent: u64,
    /// Operations acked (with a seq: every operation of this generator changes something).
    pub acked: u64,
    /// Acked operations that changed nothing (`noop`): none expected.
    pub noops: u64,
    pub errors: u64,
    /// Operations sent, by kind (send, reply, react, edit).
    pub ops: BTreeMap<String, u64>,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Connections the server closed during the run (none should be).
    pub closed: u64,
    pub ack_latency: Percentiles,
    /// Operation sent → its event received, for every member's delivery.
    pub delivery_latency: Percentiles,
    /// Acked operations per second, first send to last ack.
    pub throughput_msg_s: f64,
    pub duration_s: f64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.reordered == 0 && self.errors == 0 && self.closed == 0 && self.noops == 0
    }

    pub fn summary(&self) -> String {
        format!(
            "sent {} {:?} acked {} noops {} errors {} closed {} | deliveries expected {} got {} lost {} duplicates {} reordered {}\n\
             ack latency ms: {}\n\
             delivery latency ms: {}\n\
             throughput {:.0} ops/s over {:.1} s",
            self.sent,
            self.ops,
            self.acked,
            self.noops,
            self.errors,
            self.closed,
            self.expected_deliveries,
            self.delivered,
            self.lost,
            self.duplicates,
            self.reordered,
            self.ack_latency.line(),
            self.delivery_latency.line(),
            self.throughput_msg_s,
            self.duration_s
        )
    }
}

/// Kinds of events the operations create (membership events of the setup are not counted).
const COUNTED_KINDS: [&str; 4] = ["message", "edit", "reaction_add", "reaction_remove"];

/// What every connection's reader records.
#[derive(Default)]
struct Shared {
    /// The run's channels (only their events are counted).
    channels: HashSet<String>,
    /// op ref → (channel, when it was sent)
    sent_at: HashMap<String, (String, Instant)>,
    /// op ref → seq, for acked operations
    acked: HashMap<String, i64>,
    /// Plain sends' refs, so their acked ids become the channel's latest message.
    plain: HashSet<String>,
    /// channel → (latest acked top-level message id, reactions asked on it)
    latest: HashMap<String, (String, u32)>,
    noops: u64,
    ack_micros: Vec<u64>,
    errors: u64,
    /// Connections that ended while the run was on.
    closed: u64,
    /// Set once the results are taken; connections ending after that are expected.
    finished: bool,
    last_ack: Option<Instant>,
    /// (user, channel) → (seq, when received), in arrival order
    seen: HashMap<(usize, String), Vec<(i64, Instant)>>,
}

/// The operation for op number `n` given the shares: a fixed pseudo-random spread, so two runs
/// with the same options send the same mix.
fn pick(o: &BenchOpts, n: u64) -> &'static str {
    let r = (n.wrapping_mul(2_654_435_761) % 10_000) as f64 / 10_000.0;
    if r < o.replies {
        "reply"
    } else if r < o.replies + o.reactions {
        "react"
    } else if r < o.replies + o.reactions + o.edits {
        "edit"
    } else {
        "send"
    }
}

pub async fn run(o: &BenchOpts) -> anyhow::Result<Report> {
    anyhow::ensure!(
        o.senders >= 1 && o.senders <= o.users && o.members >= 1 && o.members <= o.users && o.channels >= 1,
        "need 1 <= senders, members <= users and channels >= 1"
    );
    anyhow::ensure!(
        [o.replies, o.reactions, o.edits].iter().all(|s| *s >= 0.0) && o.replies + o.reactions + o.edits <= 1.0,
        "--replies, --reactions and --edits are shares: each >= 0, together <= 1"
    );
    anyhow::ensure!(!o.target.pods.is_empty(), "no pods given");
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let tok = |u: usize| token_with(&o.target.workspace, &format!("b{run_id}-u{u}"), &o.target.secret, 3600);
    let shared = Arc::new(Mutex::new(Shared::default()));

    // Connect everybody first (creates the users), then build channels over REST.
    let mut writers = Vec::new();
    let heartbeat = Heartbeat::start();
    for u in 0..o.users {
        let (tx, mut stream) =
            connect(&o.target.pods[u % o.target.pods.len()], &tok(u)).await.with_context(|| format!("connecting user {u}"))?;
        let sh = shared.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else { continue };
                let now = Instant::now();
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                let mut s = sh.lock().unwrap();
                match v["t"].as_str() {
                    Some("event") if v["kind"].as_str().is_some_and(|k| COUNTED_KINDS.contains(&k)) => {
                        let channel = v["channel"].as_str().unwrap_or_default();
                        if s.channels.contains(channel) {
                            let channel = channel.to_string();
                            s.seen.entry((u, channel)).or_default().push((v["seq"].as_i64().unwrap_or(-1), now));
                        }
                    }
                    Some("ack") => {
                        let r = v["ref"].as_str().unwrap_or_default().to_string();
                        if let Some((channel, at)) = s.sent_at.get(&r) {
                            let (channel, micros) = (channel.clone(), (now - *at).as_micros() as u64);
                            s.ack_micros.push(micros);
                            match v["seq"].as_i64() {
                                Some(seq) => {
                                    if s.plain.contains(&r) {
                                        s.latest.insert(channel, (v["id"].as_str().unwrap_or_default().to_string(), 0));
                                    }
                                    s.acked.insert(r, seq);
                                }
                                None => s.noops += 1,
                            }
                            s.last_ack = Some(now);
                        }
                    }
                    Some("error") => s.errors += 1,
                    _ => {}
                }
            }
            let mut s = sh.lock().unwrap();
            if !s.finished {
                s.closed += 1;
            }
        });
        heartbeat.add(tx.clone());
        writers.push(tx);
    }

    // Channel i: sender (i % S) plus M-1 receivers, round-robin over the other users.
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut next_receiver = o.senders % o.users;
    let mut channel_ids = Vec::new();
    for i in 0..o.channels {
        let owner = i % o.senders;
        let rest = Rest::new(&http_url(&o.target.pods[owner % o.target.pods.len()]), &tok(owner));
        let (s, body) = rest.post("/v1/channels", json!({"name": format!("b{run_id}-{i}")})).await?;
        anyhow::ensure!(s == 201, "create channel: {s} {body}");
        let id = body["id"].as_str().context("channel id")?.to_string();
        let mut m = vec![owner];
        while m.len() < o.members {
            let cand = next_receiver;
            next_receiver = (next_receiver + 1) % o.users;
            if !m.contains(&cand) {
                let (s, body) = rest.post(&format!("/v1/channels/{id}/members"), json!({"user": format!("b{run_id}-u{cand}")})).await?;
                anyhow::ensure!(s == 200, "add member: {s} {body}");
                m.push(cand);
            }
        }
        members.push(m);
        shared.lock().unwrap().channels.insert(id.clone());
        channel_ids.push(id);
    }
    // Let membership notices reach the connections before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let total = (o.rate * o.duration).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / o.rate);
    let started = Instant::now();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut ops: BTreeMap<String, u64> = BTreeMap::new();
    for n in 0..total {
        tick.tick().await;
        let ch = (n as usize) % o.channels;
        let (sender, channel) = (members[ch][0], &channel_ids[ch]);
        let r = format!("{run_id}-{n}");
        let frame = {
            let mut s = shared.lock().unwrap();
            // Until the channel has an acked message (and while its latest one has all the
            // reactions it may take) the operation is a plain send.
            let latest = s.latest.get_mut(channel).filter(|(_, reactions)| *reactions < MAX_REACTIONS);
            let (kind, frame) = match (pick(o, n), latest) {
                ("reply", Some((root, _))) => {
                    ("reply", json!({"t": "send", "ref": r, "channel": channel, "cmid": r, "text": format!("reply {n}"), "thread": root}))
                }
                ("react", Some((id, reactions))) => {
                    *reactions += 1;
                    ("react", json!({"t": "react", "ref": r, "channel": channel, "id": id, "emoji": format!(":b{reactions}:")}))
                }
                ("edit", Some((id, _))) => {
                    ("edit", json!({"t": "edit", "ref": r, "channel": channel, "id": id, "text": format!("edit {n}")}))
                }
                _ => {
                    s.plain.insert(r.clone());
                    ("send", json!({"t": "send", "ref": r, "channel": channel, "cmid": r, "text": format!("bench {n}")}))
                }
            };
            s.sent_at.insert(r, (channel.clone(), Instant::now()));
            *ops.entry(kind.to_string()).or_default() += 1;
            frame
        };
        let _ = writers[sender].send(frame.to_string());
    }
    let send_time = started.elapsed().as_secs_f64();

    // Expected deliveries: every acked operation's event to every member of its channel.
    let expected_for = |s: &Shared| -> u64 {
        let by_channel: HashMap<&str, u64> = s.acked.keys().filter_map(|c| s.sent_at.get(c)).fold(HashMap::new(), |mut m, (ch, _)| {
            *m.entry(ch.as_str()).or_default() += 1;
            m
        });
        channel_ids.iter().zip(&members).map(|(id, m)| by_channel.get(id.as_str()).copied().unwrap_or(0) * m.len() as u64).sum()
    };
    let deadline = Instant::now() + Duration::from_secs_f64(o.drain);
    loop {
        {
            let s = shared.lock().unwrap();
            let answered = s.acked.len() as u64 + s.noops + s.errors >= total;
            let delivered: u64 = s.seen.values().map(|v| v.len() as u64).sum();
            if answered && delivered >= expected_for(&s) {
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    drop(heartbeat);
    let mut s = shared.lock().unwrap();
    s.finished = true;
    // (channel, seq) → when its operation was sent.
    let sent_by_seq: HashMap<(&str, i64), Instant> =
        s.acked.iter().filter_map(|(r, seq)| s.sent_at.get(r).map(|(ch, at)| ((ch.as_str(), *seq), *at))).collect();
    let (mut delivered, mut duplicates, mut reordered, mut unique) = (0u64, 0u64, 0u64, 0u64);
    let mut delivery_micros = Vec::new();
    for ((u, ch), seqs) in &s.seen {
        let idx = channel_ids.iter().position(|c| c == ch);
        if idx.is_none_or(|i| !members[i].contains(u)) {
            continue;
        }
        let mut got = HashSet::new();
        let mut last = i64::MIN;
        for (seq, at) in seqs {
            delivered += 1;
            let first = got.insert(*seq);
            if !first {
                duplicates += 1;
            } else if *seq < last {
                reordered += 1;
            }
            last = last.max(*seq);
            if let Some(sent) = sent_by_seq.get(&(ch.as_str(), *seq)).filter(|_| first) {
                unique += 1;
                delivery_micros.push(at.saturating_duration_since(*sent).as_micros() as u64);
            }
        }
    }
    let expected = expected_for(&s);
    Ok(Report {
        sent: total,
        acked: s.acked.len() as u64,
        noops: s.noops,
        errors: s.errors,
        ops,
        expected_deliveries: expected,
        delivered,
        lost: expected.saturating_sub(unique),
        duplicates,
        reordered,
        closed: s.closed,
        ack_latency: Percentiles::from_micros(s.ack_micros.clone()),
        delivery_latency: Percentiles::from_micros(delivery_micros),
        // Acks per second from the first send to the last ack (drain included, so an overloaded
        // run shows its real rate, not the offered one).
        throughput_msg_s: s.acked.len() as f64 / s.last_ack.map_or(send_time, |t| (t - started).as_secs_f64()).max(send_time),
        duration_s: send_time,
    })
}
