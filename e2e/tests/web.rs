//! Browser tests of the web app (issue 10): two palaverd pods serving the built app (embedded in
//! the binary), and `clients/web/tests/browser.mjs` driving Debian's Chromium through
//! playwright-core against them, as two people signed in through the UI.
//!
//! This test owns the pods. The script asks for pod B to be killed and started again with JSON
//! lines on its stdout (`{"step":"kill-b"}`) and is answered on its stdin (`{"done":"kill-b"}`),
//! so the outage happens exactly between the steps that need it. Screenshots of the main views
//! land in target/web-screenshots/, with both pods' logs.
//!
//! Pod A runs the Kafka consumers (the notifications inbox is fed by them), so the test has a
//! database and a consumer group of its own: the shared broker's groups stay undisturbed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use palaver_e2e::{new_workspace, Pod, PodOptions, Services};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// The whole browser run; the script's own waits are much shorter.
const LIMIT: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the e2e crate is in the repository").to_path_buf()
}

/// Fails with what to do when a piece the browser run needs was not built or installed.
fn require(path: &Path, what: &str, fix: &str) {
    assert!(path.exists(), "{} not found ({what}): {fix}", path.display());
}

/// Carries out one step the script asked for.
async fn orchestrate(step: &str, pod_b: &mut Pod) -> anyhow::Result<()> {
    match step {
        "kill-b" => {
            pod_b.kill().await;
            Ok(())
        }
        "restart-b" => pod_b.restart().await,
        other => anyhow::bail!("unknown step {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_in_chromium_across_pods_and_a_pod_restart() {
    let root = repo_root();
    let web = root.join("clients/web");
    let build = "run `npm ci && npm run build` in clients/ (`make build` does)";
    require(&web.join("dist/index.html"), "the built web app", build);
    require(&root.join("clients/node_modules/playwright-core/package.json"), "the clients' npm packages", build);
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    require(Path::new(&chromium), "Chromium", "`make deps-test` installs Debian's chromium");

    let shots = root.join("target/web-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let svc = Services::from_env().private_database().await.unwrap();
    let ws = new_workspace(&svc, "web").await.unwrap();
    let log = |name: &str| Some(shots.join(format!("{name}.log")));
    let group = format!("test-{}", uuid::Uuid::new_v4().simple());
    let consumers =
        PodOptions { consumers: true, env: vec![("PALAVER_CONSUMER_GROUP".into(), group)], log: log("pod-a"), ..Default::default() };
    let mut pod_a = Pod::start("pod-web-a", &svc, consumers).await.unwrap();
    let mut pod_b = Pod::start("pod-web-b", &svc, PodOptions { log: log("pod-b"), ..Default::default() }).await.unwrap();

    let mut child = Command::new("node")
        .arg("tests/browser.mjs")
        .current_dir(&web)
        .env("WEB_URL_A", format!("{}/", pod_a.http_url()))
        .env("WEB_URL_B", format!("{}/", pod_b.http_url()))
        .env("WORKSPACE", ws.as_str())
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM_BIN", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning node (Node.js 20.19+ must be installed: `make deps` installs it)");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });

    let mut transcript = Vec::new();
    let run = async {
        while let Some(line) = stdout.next_line().await? {
            transcript.push(line.clone());
            let Some(step) = serde_json::from_str::<Value>(&line).ok().and_then(|v| v["step"].as_str().map(String::from)) else {
                continue;
            };
            let reply = match orchestrate(&step, &mut pod_b).await {
                Ok(()) => json!({ "done": step }),
                Err(e) => json!({ "error": e.to_string() }),
            };
            stdin.write_all(format!("{reply}\n").as_bytes()).await?;
            stdin.flush().await?;
        }
        anyhow::Ok(child.wait().await?)
    };
    let outcome = tokio::time::timeout(LIMIT, run).await;
    if outcome.is_err() {
        let _ = child.kill().await;
    }
    let stderr = stderr_task.await.unwrap_or_default();
    // The script's progress (one line per step), shown by the test runner when it keeps output.
    eprintln!("{stderr}");
    let passed = matches!(&outcome, Ok(Ok(status)) if status.success());
    pod_a.kill().await;
    pod_b.kill().await;
    svc.drop_database().await.unwrap();
    assert!(
        passed,
        "the browser test failed ({}); its progress is above; screenshots and pod logs in {}\n--- stdout\n{}",
        match &outcome {
            Err(_) => format!("no result within {LIMIT:?}"),
            Ok(Err(e)) => format!("{e:#}"),
            Ok(Ok(status)) => status.to_string(),
        },
        shots.display(),
        transcript.join("\n"),
    );
}
