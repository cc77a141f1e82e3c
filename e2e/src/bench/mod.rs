//! `palaver-bench`'s scenarios, each a load generator that also checks what it measures:
//! - [`send`]: open-loop sends (optionally mixed with thread replies, reactions and edits),
//!   every delivery checked against the acks for loss, duplicates and reordering;
//! - [`reads`]: latency of a rendered history page and of a long thread (issue 9's targets);
//! - [`presence`]: many connected users following each other's presence, with Redis operations
//!   and frames per second while idle and under churn.
//!
//! This module owns what the scenarios share: connecting a user, heartbeats, percentiles, the
//! pods' URLs and Redis INFO sampling. It must not hold scenario logic.

pub mod presence;
pub mod reads;
pub mod search;
pub mod send;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The pod a single-pod scenario (reads, search) talks to, its workspace, and the token secret.
#[derive(Debug, Clone, clap::Args)]
pub struct PodTarget {
    /// WebSocket URL of the pod (the setup writes there too).
    #[arg(long, default_value = "ws://127.0.0.1:8081")]
    pub pod: String,
    #[arg(long, default_value = "bench")]
    pub workspace: String,
    /// HS256 secret the pods accept (PALAVER_DEV_JWT_SECRET).
    #[arg(long, env = "PALAVER_DEV_JWT_SECRET", hide_env_values = true)]
    pub secret: String,
}

pub use send::{run, BenchOpts, Report};

/// The pods a scenario spreads its users over, and the workspace and token secret it uses.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Comma-separated WebSocket URLs of the pods (ws://host:port/v1/ws is implied by ws://host:port).
    #[arg(long, value_delimiter = ',', default_value = "ws://127.0.0.1:8081,ws://127.0.0.1:8082")]
    pub pods: Vec<String>,
    #[arg(long, default_value = "bench")]
    pub workspace: String,
    /// HS256 secret the pods accept (PALAVER_DEV_JWT_SECRET).
    #[arg(long, env = "PALAVER_DEV_JWT_SECRET", hide_env_values = true)]
    pub secret: String,
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
    pub fn from_micros(mut v: Vec<u64>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1000.0;
        Self { p50_ms: at(0.50), p99_ms: at(0.99), p999_ms: at(0.999), max_ms: *v.last().unwrap() as f64 / 1000.0, samples: v.len() }
    }

    pub fn line(&self) -> String {
        format!("p50 {:.2} p99 {:.2} p999 {:.2} max {:.2} ({} samples)", self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms, self.samples)
    }
}

pub(crate) fn ws_url(pod: &str) -> String {
    if pod.ends_with("/v1/ws") {
        pod.to_string()
    } else {
        format!("{}/v1/ws", pod.trim_end_matches('/'))
    }
}

pub(crate) fn http_url(pod: &str) -> String {
    pod.trim_end_matches("/v1/ws").replacen("ws://", "http://", 1)
}

pub(crate) type WsStream = SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>;

/// Connects a user: frames sent into the returned sender go out in order (a task owns the
/// sink); the stream is the caller's to read.
pub(crate) async fn connect(pod: &str, token: &str) -> anyhow::Result<(mpsc::UnboundedSender<String>, WsStream)> {
    let url = format!("{}?token={token}", ws_url(pod));
    let (ws, _) =
        tokio::time::timeout(Duration::from_secs(30), tokio_tungstenite::connect_async_with_config(url, Some(crate::ws_config()), true))
            .await
            .context("connect timed out")??;
    let (mut sink, stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
    });
    Ok((tx, stream))
}

/// How often each connection pings, and in how many slices of the connections.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
const HEARTBEAT_SLICES: usize = 100;

/// Pings every connection added to it every 10 s, as every real client does: the server closes
/// connections that stay silent for two heartbeat intervals, and most bench users only read.
/// Add each connection as soon as it is open: connecting thousands takes longer than that.
pub(crate) struct Heartbeat {
    writers: Arc<Mutex<Vec<mpsc::UnboundedSender<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    pub(crate) fn start() -> Self {
        let writers: Arc<Mutex<Vec<mpsc::UnboundedSender<String>>>> = Arc::default();
        let list = writers.clone();
        let task = tokio::spawn(async move {
            // Spread over the interval, as independent clients are: one slice of the
            // connections per tick, never all at once.
            let mut t = tokio::time::interval(HEARTBEAT_EVERY / HEARTBEAT_SLICES as u32);
            for tick in 0usize.. {
                t.tick().await;
                for w in list.lock().expect("lock").iter().skip(tick % HEARTBEAT_SLICES).step_by(HEARTBEAT_SLICES) {
                    let _ = w.send(r#"{"t":"ping"}"#.to_string());
                }
            }
        });
        Self { writers, task }
    }

    pub(crate) fn add(&self, w: mpsc::UnboundedSender<String>) {
        self.writers.lock().expect("lock").push(w);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Calls per Redis command (`INFO commandstats`), to difference two samples.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RedisCalls(pub BTreeMap<String, u64>);

impl RedisCalls {
    /// Samples `INFO commandstats` of the Redis at `url` (redis://host:port, no auth).
    pub async fn sample(url: &str) -> anyhow::Result<Self> {
        let addr = url.trim_start_matches("redis://").trim_end_matches('/');
        let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await.context("redis connect timed out")??;
        s.write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n").await?;
        let mut buf = Vec::new();
        let body = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let mut chunk = [0u8; 8192];
                let n = s.read(&mut chunk).await?;
                anyhow::ensure!(n > 0, "redis closed the connection");
                buf.extend_from_slice(&chunk[..n]);
                let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else { continue };
                anyhow::ensure!(buf[0] == b'$', "unexpected INFO reply {:?}", String::from_utf8_lossy(&buf));
                let len: usize = std::str::from_utf8(&buf[1..eol])?.parse()?;
                if buf.len() >= eol + 2 + len {
                    return Ok(String::from_utf8_lossy(&buf[eol + 2..eol + 2 + len]).into_owned());
                }
            }
        })
        .await
        .context("redis INFO timed out")??;
        let mut calls = BTreeMap::new();
        for line in body.lines() {
            let Some((name, stats)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else { continue };
            let n = stats.split(',').find_map(|kv| kv.strip_prefix("calls=")).and_then(|v| v.parse().ok()).unwrap_or(0);
            calls.insert(name.to_string(), n);
        }
        Ok(Self(calls))
    }

    /// Per-command calls per second from `earlier` to `self` over `secs`, commands that ran only.
    pub fn rate_since(&self, earlier: &Self, secs: f64) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let d = v.saturating_sub(earlier.0.get(k).copied().unwrap_or(0));
                (d > 0).then(|| (k.clone(), (d as f64 / secs * 10.0).round() / 10.0))
            })
            .collect()
    }
}

/// The total of a per-command rate map.
pub fn total_rate(rates: &BTreeMap<String, f64>) -> f64 {
    (rates.values().sum::<f64>() * 10.0).round() / 10.0
}
