//! The reads scenario (issue 9's targets): how fast a client gets a channel's rendered state.
//! It builds one channel whose first `messages` messages each carry `emoji` reactions from each
//! of `reactors` users and, every fifth, a short thread (so the page carries summaries), plus
//! one root with `replies` replies; then times `requests` fetches each of
//! - the history page of those messages (`GET /v1/channels/{id}/events?after=&limit=`), and
//! - the long thread (`GET /v1/channels/{id}/threads/{root}?limit=`),
//!
//! from `concurrency` clients on keep-alive connections, checking every answer's shape.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::{json, Value};

use super::{http_url, Percentiles, PodTarget};
use crate::client::{Client, Rest};
use crate::token_with;

/// Replies in each short thread of the page.
const SHORT_THREAD: usize = 3;

#[derive(Debug, Clone, clap::Args)]
pub struct ReadsOpts {
    #[command(flatten)]
    pub target: PodTarget,
    /// Messages on the history page.
    #[arg(long, default_value_t = 50)]
    pub messages: usize,
    /// Replies in the long thread.
    #[arg(long, default_value_t = 100)]
    pub replies: usize,
    /// Users who react to every message.
    #[arg(long, default_value_t = 5)]
    pub reactors: usize,
    /// Distinct emoji each reactor puts on every message.
    #[arg(long, default_value_t = 3)]
    pub emoji: usize,
    /// Timed fetches of each kind.
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    /// Clients fetching at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ReadsReport {
    pub messages: usize,
    pub replies: usize,
    pub reactions_per_message: usize,
    pub setup_s: f64,
    /// The history page of `messages` messages with reactions and thread summaries.
    pub history: Percentiles,
    pub history_bytes: usize,
    /// The long thread, all replies in one page.
    pub thread: Percentiles,
    pub thread_bytes: usize,
    pub concurrency: usize,
}

impl ReadsReport {
    pub fn summary(&self) -> String {
        format!(
            "history page of {} messages ({} reactions each, {} bytes) ms: {}\n\
             thread of {} replies ({} bytes) ms: {}\n\
             {} concurrent clients; setup {:.1} s",
            self.messages,
            self.reactions_per_message,
            self.history_bytes,
            self.history.line(),
            self.replies,
            self.thread_bytes,
            self.thread.line(),
            self.concurrency,
            self.setup_s
        )
    }
}

fn check(status: u16, body: &Value, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!((200..300).contains(&status), "{what}: {status} {body}");
    Ok(())
}

/// Checks the page the bench times: every message there, rendered with its reactions, and the
/// thread roots with their summaries.
fn check_history(page: &Value, o: &ReadsOpts) -> anyhow::Result<()> {
    let events = page["events"].as_array().context("history: no events")?;
    anyhow::ensure!(events.len() == o.messages, "history: {} events, expected {}", events.len(), o.messages);
    for (i, e) in events.iter().enumerate() {
        anyhow::ensure!(e["kind"] == "message", "history: event {i} is {}", e["kind"]);
        let reactions = e["reactions"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(reactions == o.emoji, "history: message {i} has {reactions} reactions, expected {}", o.emoji);
        let counts_ok = e["reactions"].as_array().into_iter().flatten().all(|r| r["count"] == o.reactors);
        anyhow::ensure!(counts_ok, "history: message {i} reactions {}", e["reactions"]);
        let want_replies = match i {
            0 => o.replies,
            i if i % 5 == 0 => SHORT_THREAD,
            _ => 0,
        };
        anyhow::ensure!(
            e["reply_count"].as_u64().unwrap_or(0) == want_replies as u64,
            "history: message {i} reply_count {}",
            e["reply_count"]
        );
    }
    Ok(())
}

pub async fn run(o: &ReadsOpts) -> anyhow::Result<ReadsReport> {
    anyhow::ensure!(o.messages >= 1 && o.replies >= 1 && o.reactors >= 1 && o.emoji >= 1, "every count must be at least 1");
    anyhow::ensure!(o.requests >= 1 && o.concurrency >= 1, "--requests and --concurrency must be at least 1");
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let user = |u: usize| format!("r{run_id}-u{u}");
    let tok = |u: usize| token_with(&o.target.workspace, &user(u), &o.target.secret, 3600);
    let base = http_url(&o.target.pod);
    let setup_started = Instant::now();

    // Users exist once they have connected; user 0 owns the channel, 1..=reactors react and reply.
    for u in 0..=o.reactors {
        Client::connect(&super::ws_url(&o.target.pod), &tok(u)).await.with_context(|| format!("connecting {}", user(u)))?.close().await?;
    }
    let rests: Vec<Rest> = (0..=o.reactors).map(|u| Rest::new(&base, &tok(u))).collect();
    let (s, body) = rests[0].post("/v1/channels", json!({"name": format!("r{run_id}")})).await?;
    check(s, &body, "create channel")?;
    let ch = body["id"].as_str().context("channel id")?.to_string();
    for u in 1..=o.reactors {
        let (s, body) = rests[0].post(&format!("/v1/channels/{ch}/members"), json!({"user": user(u)})).await?;
        check(s, &body, "add member")?;
    }
    // The messages first, so the page after the first one's seq holds exactly them.
    let mut ids = Vec::new();
    let mut first_seq = None;
    for i in 0..o.messages {
        let (s, body) = rests[0]
            .post(
                &format!("/v1/channels/{ch}/messages"),
                json!({"cmid": format!("m{i}"), "text": format!("message {i} of the reads bench")}),
            )
            .await?;
        check(s, &body, "send")?;
        first_seq.get_or_insert(body["seq"].as_i64().context("seq")?);
        ids.push(body["id"].as_str().context("message id")?.to_string());
    }
    for id in &ids {
        for r in rests.iter().skip(1) {
            for e in 0..o.emoji {
                let (s, body) = r.call(reqwest::Method::PUT, &format!("/v1/channels/{ch}/messages/{id}/reactions/:r{e}:")).await?;
                check(s, &body, "react")?;
            }
        }
    }
    let reply = |root: &str, n: usize| {
        let (r, root) = (&rests[1 + n % o.reactors], root.to_string());
        let ch = ch.clone();
        async move {
            let (s, body) = r
                .post(
                    &format!("/v1/channels/{ch}/messages"),
                    json!({"cmid": format!("t{root}-{n}"), "text": format!("reply {n}"), "thread": root}),
                )
                .await?;
            check(s, &body, "reply")
        }
    };
    for n in 0..o.replies {
        reply(&ids[0], n).await?;
    }
    for root in ids.iter().step_by(5).skip(1) {
        for n in 0..SHORT_THREAD {
            reply(root, n).await?;
        }
    }
    let history_path = format!("/v1/channels/{ch}/events?after={}&limit={}", first_seq.unwrap_or(1) - 1, o.messages);
    let thread_path = format!("/v1/channels/{ch}/threads/{}?limit={}", ids[0], o.replies);
    // One checked fetch of each through the spec-validating client before timing.
    let (s, page) = rests[0].get(&history_path).await?;
    check(s, &page, "history")?;
    check_history(&page, o)?;
    let (s, thread) = rests[0].get(&thread_path).await?;
    check(s, &thread, "thread")?;
    let got = thread["replies"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(got == o.replies && thread["next_cursor"].is_null(), "thread: {got} replies, next_cursor {}", thread["next_cursor"]);
    let setup_s = setup_started.elapsed().as_secs_f64();

    let (history, history_bytes) = time(o, &format!("{base}{history_path}"), tok(0)).await?;
    let (thread, thread_bytes) = time(o, &format!("{base}{thread_path}"), tok(0)).await?;
    Ok(ReadsReport {
        messages: o.messages,
        replies: o.replies,
        reactions_per_message: o.reactors * o.emoji,
        setup_s,
        history,
        history_bytes,
        thread,
        thread_bytes,
        concurrency: o.concurrency,
    })
}

/// Fetches `url` `requests` times from `concurrency` clients (after a warm-up), timing each
/// request from send to the last body byte; every answer must be a 200 of the same size.
async fn time(o: &ReadsOpts, url: &str, token: String) -> anyhow::Result<(Percentiles, usize)> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(o.concurrency).timeout(Duration::from_secs(10)).build()?;
    let get = |http: reqwest::Client, url: String, token: String| async move {
        let started = Instant::now();
        let r = http.get(&url).bearer_auth(&token).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        let micros = started.elapsed().as_micros() as u64;
        anyhow::ensure!(status == 200, "{url}: {status}");
        anyhow::Ok((micros, body.len()))
    };
    for _ in 0..(50usize).min(o.requests) {
        get(http.clone(), url.to_string(), token.clone()).await?;
    }
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(o.requests));
    let workers = (0..o.concurrency).map(|_| {
        let (http, url, token, left) = (http.clone(), url.to_string(), token.clone(), left.clone());
        tokio::spawn(async move {
            let mut out = Vec::new();
            while left
                .fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                out.push(get(http.clone(), url.clone(), token.clone()).await?);
            }
            anyhow::Ok(out)
        })
    });
    let mut micros = Vec::new();
    let mut sizes = std::collections::BTreeSet::new();
    for w in futures::future::join_all(workers).await {
        for (m, size) in w.context("fetch worker panicked")?? {
            micros.push(m);
            sizes.insert(size);
        }
    }
    anyhow::ensure!(sizes.len() == 1, "answers of different sizes: {sizes:?}");
    Ok((Percentiles::from_micros(micros), sizes.into_iter().next().unwrap_or(0)))
}
