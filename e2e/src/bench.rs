//! `palaver-bench`: an open-loop load generator that also checks correctness.
//!
//! It connects U users spread over the target pods, creates C channels of M members, and sends
//! at a fixed total rate R for duration D from S senders (each pipelines: it does not wait for
//! acks). Every delivery is checked against the acks: lost, duplicated and reordered events are
//! counted, and send→ack and send→deliver latencies are recorded.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::client::Rest;
use crate::token_with;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchOpts {
    /// Comma-separated WebSocket URLs of the pods (ws://host:port/v1/ws is implied by ws://host:port).
    #[arg(long, value_delimiter = ',', default_value = "ws://127.0.0.1:8081,ws://127.0.0.1:8082")]
    pub pods: Vec<String>,
    #[arg(long, default_value = "bench")]
    pub workspace: String,
    /// HS256 secret the pods accept (PALAVER_DEV_JWT_SECRET).
    #[arg(long, env = "PALAVER_DEV_JWT_SECRET", hide_env_values = true)]
    pub secret: String,
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    #[arg(long, default_value_t = 50)]
    pub channels: usize,
    #[arg(long, default_value_t = 10)]
    pub members: usize,
    #[arg(long, default_value_t = 20)]
    pub senders: usize,
    /// Total messages per second (open loop).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Sending time in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Longest wait for outstanding deliveries after sending stops, in seconds.
    #[arg(long, default_value_t = 15.0)]
    pub drain: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub samples: usize,
}

impl Percentiles {
    fn from_micros(mut v: Vec<u64>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1000.0;
        Self { p50_ms: at(0.50), p99_ms: at(0.99), p999_ms: at(0.999), max_ms: *v.last().unwrap() as f64 / 1000.0, samples: v.len() }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Connections the server closed during the run (none should be).
    pub closed: u64,
    pub ack_latency: Percentiles,
    pub delivery_latency: Percentiles,
    /// Acked messages per second, first send to last ack.
    pub throughput_msg_s: f64,
    pub duration_s: f64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.reordered == 0 && self.errors == 0 && self.closed == 0
    }

    pub fn summary(&self) -> String {
        format!(
            "sent {} acked {} errors {} closed {} | deliveries expected {} got {} lost {} duplicates {} reordered {}\n\
             ack latency ms: p50 {:.2} p99 {:.2} p999 {:.2} max {:.2}\n\
             delivery latency ms: p50 {:.2} p99 {:.2} p999 {:.2} max {:.2}\n\
             throughput {:.0} msg/s over {:.1} s",
            self.sent,
            self.acked,
            self.errors,
            self.closed,
            self.expected_deliveries,
            self.delivered,
            self.lost,
            self.duplicates,
            self.reordered,
            self.ack_latency.p50_ms,
            self.ack_latency.p99_ms,
            self.ack_latency.p999_ms,
            self.ack_latency.max_ms,
            self.delivery_latency.p50_ms,
            self.delivery_latency.p99_ms,
            self.delivery_latency.p999_ms,
            self.delivery_latency.max_ms,
            self.throughput_msg_s,
            self.duration_s
        )
    }
}

/// What every connection's reader records.
#[derive(Default)]
struct Shared {
    /// cmid → (channel, when it was sent)
    sent_at: HashMap<String, (String, Instant)>,
    /// cmid → seq, for acked sends
    acked: HashMap<String, i64>,
    ack_micros: Vec<u64>,
    delivery_micros: Vec<u64>,
    errors: u64,
    /// Connections that ended while the run was on.
    closed: u64,
    /// Set once the results are taken; connections ending after that are expected.
    finished: bool,
    last_ack: Option<Instant>,
    /// (user, channel) → seqs received (messages of this run only)
    seen: HashMap<(usize, String), Vec<i64>>,
}

fn ws_url(pod: &str) -> String {
    if pod.ends_with("/v1/ws") {
        pod.to_string()
    } else {
        format!("{}/v1/ws", pod.trim_end_matches('/'))
    }
}

fn http_url(pod: &str) -> String {
    pod.trim_end_matches("/v1/ws").replacen("ws://", "http://", 1)
}

pub async fn run(o: &BenchOpts) -> anyhow::Result<Report> {
    anyhow::ensure!(
        o.senders >= 1 && o.senders <= o.users && o.members >= 1 && o.members <= o.users && o.channels >= 1,
        "need 1 <= senders, members <= users and channels >= 1"
    );
    anyhow::ensure!(!o.pods.is_empty(), "no pods given");
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let tok = |u: usize| token_with(&o.workspace, &format!("b{run_id}-u{u}"), &o.secret, 3600);
    let shared = Arc::new(Mutex::new(Shared::default()));

    // Connect everybody first (creates the users), then build channels over REST.
    let mut writers = Vec::new();
    for u in 0..o.users {
        let pod = &o.pods[u % o.pods.len()];
        let url = format!("{}?token={}", ws_url(pod), tok(u));
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(crate::ws_config()), true)
            .await
            .with_context(|| format!("connecting user {u}"))?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
        });
        let sh = shared.clone();
        let prefix = format!("{run_id}-");
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else { continue };
                let now = Instant::now();
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                let mut s = sh.lock().unwrap();
                match v["t"].as_str() {
                    Some("event") if v["kind"] == "message" && v["cmid"].as_str().is_some_and(|c| c.starts_with(&prefix)) => {
                        let cmid = v["cmid"].as_str().unwrap();
                        if let Some((_, at)) = s.sent_at.get(cmid) {
                            let micros = (now - *at).as_micros() as u64;
                            s.delivery_micros.push(micros);
                        }
                        let channel = v["channel"].as_str().unwrap_or_default().to_string();
                        s.seen.entry((u, channel)).or_default().push(v["seq"].as_i64().unwrap_or(-1));
                    }
                    Some("ack") => {
                        let cmid = v["ref"].as_str().unwrap_or_default().to_string();
                        if let Some((_, at)) = s.sent_at.get(&cmid) {
                            let micros = (now - *at).as_micros() as u64;
                            s.ack_micros.push(micros);
                        }
                        s.acked.insert(cmid, v["seq"].as_i64().unwrap_or(-1));
                        s.last_ack = Some(now);
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
        writers.push(tx);
    }

    // Heartbeats, as every real client sends them: the server closes connections that stay
    // silent for two heartbeat intervals, and most bench users only read.
    let beat: Vec<mpsc::UnboundedSender<String>> = writers.clone();
    let heartbeat = tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(10));
        loop {
            t.tick().await;
            for w in &beat {
                let _ = w.send(r#"{"t":"ping"}"#.to_string());
            }
        }
    });

    // Channel i: sender (i % S) plus M-1 receivers, round-robin over the other users.
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut next_receiver = o.senders % o.users;
    let mut channel_ids = Vec::new();
    for i in 0..o.channels {
        let owner = i % o.senders;
        let rest = Rest::new(&http_url(&o.pods[owner % o.pods.len()]), &tok(owner));
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
        channel_ids.push(id);
    }
    // Let membership notices reach the connections before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let total = (o.rate * o.duration).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / o.rate);
    let started = Instant::now();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..total {
        tick.tick().await;
        let ch = (n as usize) % o.channels;
        let sender = members[ch][0];
        let cmid = format!("{run_id}-{n}");
        shared.lock().unwrap().sent_at.insert(cmid.clone(), (channel_ids[ch].clone(), Instant::now()));
        let frame = json!({"t": "send", "ref": cmid, "channel": channel_ids[ch], "cmid": cmid, "text": format!("bench {n}")});
        let _ = writers[sender].send(frame.to_string());
    }
    let send_time = started.elapsed().as_secs_f64();

    // Expected deliveries: every acked message to every member of its channel.
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
            let acked_all = s.acked.len() as u64 + s.errors >= total;
            let delivered: u64 = s.seen.values().map(|v| v.len() as u64).sum();
            if acked_all && delivered >= expected_for(&s) {
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    heartbeat.abort();
    let mut s = shared.lock().unwrap();
    s.finished = true;
    let acked_seqs: HashMap<&str, HashSet<i64>> = s
        .acked
        .iter()
        .filter_map(|(c, seq)| s.sent_at.get(c).map(|(ch, _)| (ch.as_str(), *seq)))
        .fold(HashMap::new(), |mut m, (ch, seq)| {
            m.entry(ch).or_default().insert(seq);
            m
        });
    let (mut delivered, mut duplicates, mut reordered, mut unique) = (0u64, 0u64, 0u64, 0u64);
    for ((u, ch), seqs) in &s.seen {
        let Some(want) = acked_seqs.get(ch.as_str()) else { continue };
        let idx = channel_ids.iter().position(|c| c == ch);
        if idx.is_none_or(|i| !members[i].contains(u)) {
            continue;
        }
        let mut got = HashSet::new();
        let mut last = i64::MIN;
        for seq in seqs {
            delivered += 1;
            if !got.insert(*seq) {
                duplicates += 1;
            } else if *seq < last {
                reordered += 1;
            }
            last = last.max(*seq);
        }
        unique += got.intersection(want).count() as u64;
    }
    let expected = expected_for(&s);
    Ok(Report {
        sent: total,
        acked: s.acked.len() as u64,
        errors: s.errors,
        expected_deliveries: expected,
        delivered,
        lost: expected.saturating_sub(unique),
        duplicates,
        reordered,
        closed: s.closed,
        ack_latency: Percentiles::from_micros(s.ack_micros.clone()),
        delivery_latency: Percentiles::from_micros(s.delivery_micros.clone()),
        // Acks per second from the first send to the last ack (drain included, so an overloaded
        // run shows its real rate, not the offered one).
        throughput_msg_s: s.acked.len() as f64 / s.last_ack.map_or(send_time, |t| (t - started).as_secs_f64()).max(send_time),
        duration_s: send_time,
    })
}
