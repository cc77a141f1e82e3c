//! The presence scenario (issue 9's target): `users` connected users, each following `subs`
//! others with `presence_sub` (and followed by exactly `subs`), measured in three phases:
//! subscribing (the initial statuses), idle (only the connections' refreshes), and churn
//! (`churn` users a second tell the server they are away, or back, each a transition that
//! fans out to its followers). For each phase: frames received per second and, when `--redis`
//! names the pods' Redis, its commands per second by command. Every expected frame must arrive.
//!
//! The users exist before the timed connect (a workspace in use), and each client answers its
//! `hello` with a `sync` from the channel ends it reports: it shows live state and would page
//! history over REST, so a connect replays nothing (without it, each of 10,000 new users would
//! replay up to 1,000 member joins of #general).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::{connect, http_url, total_rate, Heartbeat, Percentiles, RedisCalls, Target};
use crate::client::Rest;
use crate::token_with;

/// Users per `GET /v1/presence` while waiting for everyone to be online (the server takes
/// up to 500; 100 keeps the URL short).
const PRESENCE_QUERY_USERS: usize = 100;

#[derive(Debug, Clone, clap::Args)]
pub struct PresenceOpts {
    #[command(flatten)]
    pub target: Target,
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Users each user follows (and is followed by).
    #[arg(long, default_value_t = 50)]
    pub subs: usize,
    /// Seconds of the idle phase; the connections refresh their presence every 20 s, so
    /// shorter phases see only some of them.
    #[arg(long, default_value_t = 40.0)]
    pub idle: f64,
    /// Seconds of the churn phase.
    #[arg(long, default_value_t = 30.0)]
    pub churn_secs: f64,
    /// Users per second who go away or come back in the churn phase.
    #[arg(long, default_value_t = 100.0)]
    pub churn: f64,
    /// The pods' Redis (redis://host:port), whose INFO commandstats are sampled per phase.
    #[arg(long)]
    pub redis: Option<String>,
    /// Connection attempts in flight while connecting.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Longest wait for a phase's frames, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub drain: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Phase {
    pub secs: f64,
    /// presence frames expected / received in the phase
    pub expected_frames: u64,
    pub frames: u64,
    pub frames_per_s: f64,
    pub redis_ops_per_s: f64,
    pub redis_by_command: BTreeMap<String, f64>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct PresenceReport {
    pub users: usize,
    pub subs: usize,
    /// Seconds to create the users (first sight, with their default-channel joins).
    pub create_s: f64,
    pub connect_s: f64,
    pub subscribe: Phase,
    pub idle: Phase,
    pub churn: Phase,
    pub transitions: u64,
    /// A user's status change sent → the frame at a follower.
    pub transition_latency: Percentiles,
    pub closed: u64,
    pub errors: u64,
}

impl PresenceReport {
    pub fn ok(&self) -> bool {
        self.closed == 0
            && self.errors == 0
            && [&self.subscribe, &self.churn].iter().all(|p| p.frames == p.expected_frames)
            && self.idle.frames == 0
    }

    pub fn summary(&self) -> String {
        let phase = |name: &str, p: &Phase| {
            format!(
                "{name}: {:.1} s, frames {}/{} ({:.0}/s), redis {:.0} ops/s {:?}",
                p.secs, p.frames, p.expected_frames, p.frames_per_s, p.redis_ops_per_s, p.redis_by_command
            )
        };
        format!(
            "{} users x {} subscriptions, created in {:.1} s ({:.0}/s), connected in {:.1} s; closed {} errors {}\n{}\n{}\n{}\ntransition latency ms: {}",
            self.users,
            self.subs,
            self.create_s,
            self.users as f64 / self.create_s.max(1e-9),
            self.connect_s,
            self.closed,
            self.errors,
            phase("subscribe", &self.subscribe),
            phase("idle", &self.idle),
            phase("churn", &self.churn),
            self.transition_latency.line()
        )
    }
}

#[derive(Default)]
struct Shared {
    /// user index → (status it was set to, when) for the transition in flight
    pending: HashMap<usize, (String, Instant)>,
    latency_micros: Vec<u64>,
    closed: u64,
    errors: u64,
    finished: bool,
}

/// Where a phase began: when, the frames counted so far, and the Redis counters then.
struct Mark {
    at: Instant,
    frames: u64,
    redis: Option<RedisCalls>,
}

impl Mark {
    async fn now(o: &PresenceOpts, frames: &AtomicU64) -> anyhow::Result<Self> {
        let redis = match &o.redis {
            Some(url) => Some(RedisCalls::sample(url).await?),
            None => None,
        };
        Ok(Self { at: Instant::now(), frames: frames.load(Ordering::Relaxed), redis })
    }

    /// Waits until `want` frames arrived since the mark (or the drain deadline), then closes
    /// the phase.
    async fn finish(self, o: &PresenceOpts, frames: &AtomicU64, want: u64) -> anyhow::Result<Phase> {
        let deadline = Instant::now() + Duration::from_secs_f64(o.drain);
        while frames.load(Ordering::Relaxed) - self.frames < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = self.at.elapsed().as_secs_f64();
        let got = frames.load(Ordering::Relaxed) - self.frames;
        let end = Mark::now(o, frames).await?;
        let by_command = match (self.redis, end.redis) {
            (Some(a), Some(b)) => b.rate_since(&a, secs),
            _ => BTreeMap::new(),
        };
        Ok(Phase {
            secs,
            expected_frames: want,
            frames: got,
            frames_per_s: got as f64 / secs,
            redis_ops_per_s: total_rate(&by_command),
            redis_by_command: by_command,
        })
    }
}

/// The users user `u` follows: `subs` distinct others, at a stride, so every user is followed
/// by exactly `subs` users too.
fn followees(u: usize, users: usize, subs: usize) -> Vec<usize> {
    let stride = (users / (subs + 1)).max(1);
    (1..=subs).map(|k| (u + k * stride) % users).collect()
}

pub async fn run(o: &PresenceOpts) -> anyhow::Result<PresenceReport> {
    anyhow::ensure!(!o.target.pods.is_empty(), "no pods given");
    anyhow::ensure!(o.subs >= 1 && o.users > o.subs * 2 && o.subs <= 500, "need 1 <= subs <= 500 and users > 2 * subs");
    anyhow::ensure!(o.churn > 0.0 && o.churn_secs > 0.0 && o.idle >= 0.0, "--churn and --churn-secs must be positive");
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let name = |u: usize| format!("p{run_id}-u{u}");
    let index: Arc<HashMap<String, usize>> = Arc::new((0..o.users).map(|u| (name(u), u)).collect());
    let frames = Arc::new(AtomicU64::new(0));
    let shared = Arc::new(Mutex::new(Shared::default()));
    // A user's first request creates them and joins them to the default channels (a sequenced
    // member_join each, fanned out to whoever is connected). A workspace's users arrive over
    // days, not in one burst: create them first, one REST request each, and time the connects
    // of users who exist, as in a workspace in use.
    let created = Instant::now();
    let rest = Rest::new(&http_url(&o.target.pods[0]), &token_with(&o.target.workspace, &name(0), &o.target.secret, 3600));
    futures::stream::iter(0..o.users)
        .map(|u| {
            let rest = rest.with_token(&token_with(&o.target.workspace, &name(u), &o.target.secret, 3600));
            async move {
                let (s, body) = rest.get(&format!("/v1/users/{}", name(u))).await?;
                anyhow::ensure!(s == 200, "creating user {u}: {s} {body}");
                Ok(())
            }
        })
        .buffer_unordered(o.connect_concurrency.max(1))
        .try_collect::<()>()
        .await?;
    let create_s = created.elapsed().as_secs_f64();

    let started = Instant::now();
    let connecting = futures::stream::iter(0..o.users).map(|u| {
        let (pod, token) =
            (o.target.pods[u % o.target.pods.len()].clone(), token_with(&o.target.workspace, &name(u), &o.target.secret, 3600));
        async move { connect(&pod, &token).await.with_context(|| format!("connecting user {u}")).map(|c| (u, c)) }
    });
    let mut writers: Vec<Option<mpsc::UnboundedSender<String>>> = vec![None; o.users];
    let heartbeat = Heartbeat::start();
    let mut conns = connecting.buffer_unordered(o.connect_concurrency.max(1));
    while let Some((u, (tx, mut stream))) = conns.try_next().await? {
        heartbeat.add(tx.clone());
        let writer = tx.clone();
        writers[u] = Some(tx);
        let (frames, shared, index) = (frames.clone(), shared.clone(), index.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else { continue };
                let now = Instant::now();
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                match v["t"].as_str() {
                    Some("hello") => {
                        let since: serde_json::Map<String, Value> = v["channels"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|c| Some((c["id"].as_str()?.to_string(), c["last_seq"].clone())))
                            .collect();
                        let _ = writer.send(json!({"t": "sync", "since": since}).to_string());
                    }
                    Some("presence") => {
                        frames.fetch_add(1, Ordering::Relaxed);
                        let Some(&who) = v["user"].as_str().and_then(|w| index.get(w)) else { continue };
                        let mut s = shared.lock().unwrap();
                        if let Some((status, at)) = s.pending.get(&who) {
                            if v["status"] == status.as_str() {
                                let micros = (now - *at).as_micros() as u64;
                                s.latency_micros.push(micros);
                            }
                        }
                    }
                    Some("error") => shared.lock().unwrap().errors += 1,
                    _ => {}
                }
            }
            let mut s = shared.lock().unwrap();
            if !s.finished {
                s.closed += 1;
            }
        });
    }
    drop(conns);
    let writers: Vec<mpsc::UnboundedSender<String>> = writers.into_iter().map(|w| w.expect("every user connected")).collect();
    // A connection's own "online" transition is published just after its hello: wait until
    // every user is online, so no late one lands in a phase as an extra frame.
    let names: Vec<String> = (0..o.users).map(name).collect();
    let deadline = Instant::now() + Duration::from_secs_f64(o.drain);
    for chunk in names.chunks(PRESENCE_QUERY_USERS) {
        let path = format!("/v1/presence?users={}", chunk.join(","));
        loop {
            let (s, body) = rest.get(&path).await?;
            anyhow::ensure!(s == 200, "presence query: {s} {body}");
            let online = body["presence"].as_array().is_some_and(|a| a.len() == chunk.len() && a.iter().all(|p| p["status"] == "online"));
            if online {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "users not online after {} s: {body}", o.drain);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let connect_s = started.elapsed().as_secs_f64();

    // Subscribe: every user's followees' statuses (all online) come back at once.
    let mark = Mark::now(o, &frames).await?;
    for (u, w) in writers.iter().enumerate() {
        let users: Vec<String> = followees(u, o.users, o.subs).into_iter().map(name).collect();
        let _ = w.send(json!({"t": "presence_sub", "users": users}).to_string());
    }
    let subscribe = mark.finish(o, &frames, (o.users * o.subs) as u64).await?;

    // Idle: nobody changes status; only the connections' refreshes run.
    let mark = Mark::now(o, &frames).await?;
    tokio::time::sleep(Duration::from_secs_f64(o.idle)).await;
    let idle = mark.finish(o, &frames, 0).await?;

    // Churn: users in turn go away, then (a round later) come back.
    let mark = Mark::now(o, &frames).await?;
    let transitions = (o.churn * o.churn_secs).round() as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / o.churn));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // A step coprime with `users` visits every user once per `users` transitions: the first
    // round sends everyone away, the next brings them back.
    let step = if o.users.is_multiple_of(7919) { 1 } else { 7919 };
    for n in 0..transitions {
        tick.tick().await;
        let n = n as usize;
        let u = (n * step) % o.users;
        let status = if (n / o.users).is_multiple_of(2) { "away" } else { "online" };
        shared.lock().unwrap().pending.insert(u, (status.to_string(), Instant::now()));
        let _ = writers[u].send(json!({"t": "presence", "status": status}).to_string());
    }
    let churn = mark.finish(o, &frames, transitions * o.subs as u64).await?;

    drop(heartbeat);
    let mut s = shared.lock().unwrap();
    s.finished = true;
    Ok(PresenceReport {
        users: o.users,
        subs: o.subs,
        create_s,
        connect_s,
        subscribe,
        idle,
        churn,
        transitions,
        transition_latency: Percentiles::from_micros(std::mem::take(&mut s.latency_micros)),
        closed: s.closed,
        errors: s.errors,
    })
}
