//! The TypeScript SDK (clients/sdk-js, issue 10) against real pods: Node scripts under
//! clients/sdk-js/test/integration drive SDK clients and print JSON lines; these tests start
//! the pods and a private Redis, inject the faults when the script reports progress, and check
//! the result against the stored history. The SDK must be built first (`npm ci && npm run
//! build` in clients/).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use palaver_e2e::{new_workspace, token, Pod, PodOptions, PrivateRedis, Rest, Services};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;

/// The clients/ workspace, checked to hold a built SDK and its dev dependencies (run first, so
/// a missing build fails before any pod starts).
fn built_clients() -> PathBuf {
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository root").join("clients");
    let dist = clients.join("sdk-js/dist/index.js");
    assert!(dist.exists(), "{} is missing: build the SDK first with `npm ci && npm run build` in {}", dist.display(), clients.display());
    assert!(clients.join("node_modules/ws").exists(), "the ws package is missing: run `npm ci` in {}", clients.display());
    clients
}

/// A running integration script and its stdout, one JSON value per line.
struct Script {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Script {
    fn spawn(name: &str, env: &[(&str, String)]) -> Self {
        let clients = built_clients();
        let mut cmd = Command::new("node");
        cmd.arg(clients.join("sdk-js/test/integration").join(name))
            .current_dir(clients.join("sdk-js"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting `node {name}` (is Node.js on PATH?): {e}"));
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Self { child, lines }
    }

    /// The next JSON line, or None at the end of the output; panics after `deadline`.
    async fn next(&mut self, deadline: Instant) -> Option<Value> {
        let line = tokio::time::timeout_at(deadline, self.lines.next_line())
            .await
            .expect("the SDK script took too long")
            .expect("reading the script's output")?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("the script printed {line:?}, not JSON: {e}")))
    }

    /// Reads to the script's final `{"ok":…}` line, handing progress lines to `progress`.
    async fn result(&mut self, deadline: Instant, mut progress: impl AsyncFnMut(&Value)) -> Value {
        loop {
            match self.next(deadline).await {
                Some(v) if v.get("ok").is_some() => return v,
                Some(v) => progress(&v).await,
                None => panic!("the script ended without a result (exit: {:?})", self.child.try_wait()),
            }
        }
    }

    async fn exit(&mut self, deadline: Instant) -> ExitStatus {
        tokio::time::timeout_at(deadline, self.child.wait()).await.expect("the script did not exit").expect("waiting for the script")
    }
}

fn pod_options(redis: Option<String>) -> PodOptions {
    // 50 sends a second per client (and bursts after an outage) against the default 10/s: the
    // rate limit is not what these tests are about, though the SDK retries rate_limited too.
    let env = [("PALAVER_SEND_RATE", "100"), ("PALAVER_SEND_BURST", "100")];
    PodOptions { env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), redis_url: redis, ..Default::default() }
}

/// Message seqs of a channel from `after` on, as REST history stores them.
async fn stored_messages(rest: &Rest, channel: &str, mut after: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    loop {
        let (status, page) = rest.get(&format!("/v1/channels/{channel}/events?after={after}&limit=200")).await.unwrap();
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        for e in events.iter().filter(|e| e["kind"] == "message") {
            out.push((e["seq"].as_i64().unwrap(), e["text"].as_str().unwrap_or_default().to_string()));
        }
        match events.last() {
            Some(e) if page["has_more"] == true => after = e["seq"].as_i64().unwrap(),
            _ => return out,
        }
    }
}

fn seqs(v: &Value) -> Vec<i64> {
    v.as_array().expect("an array of seqs").iter().map(|s| s.as_i64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_sdk_clients_exchange_1000_messages_through_a_pod_kill_and_a_redis_restart() {
    built_clients();
    let deadline = Instant::now() + Duration::from_secs(170);
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "sdk").await.unwrap();
    let mut redis = PrivateRedis::start().await.unwrap();
    let mut pod1 = Pod::start("pod-1", &svc, pod_options(Some(redis.url()))).await.unwrap();
    let pod2 = Pod::start("pod-2", &svc, pod_options(Some(redis.url()))).await.unwrap();
    let (alice, bob) = (token(&ws, "alice"), token(&ws, "bob"));
    let (u1, u2) = (pod1.http_url(), pod2.http_url());
    let mut script = Script::spawn(
        "exchange.mjs",
        &[
            ("PALAVER_URLS_A", format!("{u1},{u2}")),
            ("PALAVER_URLS_B", format!("{u2},{u1}")),
            ("PALAVER_TOKEN_A", alice.clone()),
            ("PALAVER_TOKEN_B", bob),
            ("PALAVER_MESSAGES", "500".into()),
        ],
    );
    let (mut killed_at, mut redis_restarted_at) = (None, None);
    let result = script
        .result(deadline, async |line: &Value| {
            let Some(sent) = line["sent"].as_u64() else { return };
            if sent >= 300 && killed_at.is_none() {
                killed_at = Some(sent);
                pod1.kill().await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                pod1.restart().await.unwrap();
            }
            if sent >= 600 && redis_restarted_at.is_none() {
                redis_restarted_at = Some(sent);
                redis.restart().await.unwrap();
            }
        })
        .await;
    assert_eq!(result["ok"], true, "{result}");
    assert!(script.exit(deadline).await.success());
    let (killed_at, redis_restarted_at) = (killed_at.expect("pod 1 was killed"), redis_restarted_at.expect("Redis was restarted"));
    assert!(killed_at < 1000 && redis_restarted_at < 1000, "the faults came mid-stream: at {killed_at} and {redis_restarted_at} acks");
    assert!(result["resumes"]["a"].as_u64().unwrap() >= 1, "client A lost pod 1 and resumed elsewhere: {result}");
    eprintln!(
        "pod 1 killed at {killed_at} acks, Redis restarted at {redis_restarted_at}; resumes {}, delivered {}",
        result["resumes"], result["delivered"]
    );

    // What the clients were told is what is stored: every acked seq once, nothing else sent.
    let acked = seqs(&result["acked"]);
    assert_eq!(acked.len(), 1000);
    let general = result["general"].as_str().unwrap();
    let stored = stored_messages(&Rest::new(&pod2.http_url(), &alice), general, acked[0] - 1).await;
    assert_eq!(stored.iter().map(|(s, _)| *s).collect::<Vec<_>>(), acked, "stored messages are exactly the acked ones");
    let mut texts: Vec<&str> = stored.iter().map(|(_, t)| t.as_str()).filter(|t| !t.is_empty()).collect();
    texts.sort_unstable();
    texts.dedup();
    // 1000 distinct texts, less the one message deleted (a tombstone has no text).
    assert_eq!(texts.len(), 999, "each send stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_offline_client_resumes_from_persisted_positions() {
    built_clients();
    let deadline = Instant::now() + Duration::from_secs(90);
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "sdkresume").await.unwrap();
    let pod1 = Pod::start("pod-1", &svc, pod_options(None)).await.unwrap();
    let pod2 = Pod::start("pod-2", &svc, pod_options(None)).await.unwrap();
    let (alice, bob) = (token(&ws, "alice"), token(&ws, "bob"));
    let (u1, u2) = (pod1.http_url(), pod2.http_url());
    let mut script = Script::spawn(
        "resume.mjs",
        &[
            ("PALAVER_URLS_A", format!("{u1},{u2}")),
            ("PALAVER_URLS_B", format!("{u2},{u1}")),
            ("PALAVER_TOKEN_A", alice.clone()),
            ("PALAVER_TOKEN_B", bob),
            ("PALAVER_MESSAGES", "50".into()),
        ],
    );
    let result = script.result(deadline, async |_: &Value| {}).await;
    assert_eq!(result["ok"], true, "{result}");
    assert!(script.exit(deadline).await.success());
    eprintln!(
        "resumed from {}: {} delivered, outbox send {}",
        result["position"],
        result["delivered"].as_array().map_or(0, Vec::len),
        result["closedSend"]
    );
    let offline = seqs(&result["offline"]);
    assert_eq!(offline.len(), 50);
    let delivered = seqs(&result["delivered"]);
    assert!(offline.iter().all(|s| delivered.contains(s)), "{result}");
    assert!(delivered.iter().all(|s| *s > result["position"].as_i64().unwrap()), "nothing from before the close: {result}");
}
