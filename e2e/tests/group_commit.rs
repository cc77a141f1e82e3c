//! Group commit and pipelined sends (issue 12): sends that commit together keep every
//! guarantee of sends that commit alone — gap-free seqs in send order per channel, one event
//! per cmid, and a refused send fails only itself — and batches of two pods over the same
//! channels all commit, gap-free, without falling back to single sends.

use std::collections::HashMap;
use std::time::Duration;

use palaver_e2e::client::check_in_order;
use palaver_e2e::procs::metric_in;
use palaver_e2e::{new_workspace, token, Client, Pod, PodOptions, Rest, Services};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

/// Pods that batch as much as they can (one batch in flight per workspace) and do not limit
/// the send rate.
fn batching_pod() -> PodOptions {
    PodOptions {
        env: vec![
            ("PALAVER_SEND_RATE".into(), "5000".into()),
            ("PALAVER_SEND_BURST".into(), "5000".into()),
            ("PALAVER_SEND_BATCHES_IN_FLIGHT".into(), "1".into()),
        ],
        ..Default::default()
    }
}

/// Sends every frame without waiting, then collects the answer to each `ref` (bounded).
async fn pipeline(c: &mut Client, frames: &[Value]) -> HashMap<String, Value> {
    for f in frames {
        c.send(f.clone()).await.unwrap();
    }
    let mut answers = HashMap::new();
    let deadline = tokio::time::Instant::now() + T;
    while answers.len() < frames.len() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let f = c.expect(left, |f| f.get("ref").is_some_and(|r| r.is_string())).await.expect("every send is answered in time");
        answers.insert(f["ref"].as_str().unwrap().to_string(), f);
    }
    answers
}

fn metric(page: &str, name: &str) -> f64 {
    metric_in(page, name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelined_sends_share_commits_in_order_and_a_refused_one_fails_alone() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "gc").await.unwrap();
    let pod = Pod::start("pod-gc", &svc, batching_pod()).await.unwrap();
    const SENDERS: usize = 6;
    const PER_SENDER: usize = 120;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        senders.push(Client::connect(&pod.ws_url(), &token(&ws, &format!("u{i}"))).await.unwrap());
    }
    let mut reader = Client::connect(&pod.ws_url(), &token(&ws, "reader")).await.unwrap();
    let general = reader.channel_id("general").unwrap();
    let random = reader.channel_id("random").unwrap();
    // A channel only its creator is in: the others' sends to it are refused.
    let (s, ops) = Rest::new(&pod.http_url(), &token(&ws, "owner")).post("/v1/channels", json!({"name": "ops"})).await.unwrap();
    assert_eq!(s, 201, "{ops}");
    let ops = ops["id"].as_str().unwrap().to_string();
    let before = pod.metrics().await.unwrap();

    // Each sender pipelines its sends over two channels; every 10th goes to `ops` and every
    // 15th repeats the previous frame's cmid (a retry before the ack).
    let runs = senders.into_iter().enumerate().map(|(i, mut c)| {
        let (general, random, ops) = (general.clone(), random.clone(), ops.clone());
        tokio::spawn(async move {
            let mut frames = Vec::new();
            let mut plan: Vec<(String, String, String, &str)> = Vec::new(); // (ref, channel, cmid, kind)
            for n in 0..PER_SENDER {
                let (channel, cmid, kind) = if n % 10 == 9 {
                    (ops.clone(), format!("u{i}-{n}"), "refused")
                } else if n % 15 == 14 {
                    let (_, ch, cmid, _) = plan.last().expect("a frame before");
                    (ch.clone(), cmid.clone(), "repeat")
                } else {
                    (if n % 2 == 0 { general.clone() } else { random.clone() }, format!("u{i}-{n}"), "new")
                };
                let r = format!("r{n}");
                frames.push(json!({"t": "send", "ref": r, "channel": channel, "cmid": cmid, "text": format!("{cmid} text")}));
                plan.push((r, channel, cmid, kind));
            }
            let answers = pipeline(&mut c, &frames).await;
            (i, plan, answers, c)
        })
    });
    let mut acked: HashMap<String, Vec<i64>> = HashMap::new();
    let mut clients = Vec::new();
    for run in futures::future::join_all(runs).await {
        let (i, plan, answers, c) = run.unwrap();
        clients.push(c);
        let mut last_seq: HashMap<&str, i64> = HashMap::new();
        let mut by_cmid: HashMap<&str, &Value> = HashMap::new();
        for (r, channel, cmid, kind) in &plan {
            let a = &answers[r];
            match *kind {
                "refused" => {
                    assert_eq!(a["t"], "error", "u{i} {r}: {a}");
                    assert_eq!(a["code"], "forbidden", "u{i} {r}: {a}");
                    continue;
                }
                "repeat" => {
                    let orig = by_cmid[cmid.as_str()];
                    assert_eq!(a["t"], "ack", "u{i} {r}: {a}");
                    assert_eq!((&a["id"], &a["seq"]), (&orig["id"], &orig["seq"]), "u{i} {r}: a repeated cmid answers the original");
                    continue;
                }
                _ => {}
            }
            assert_eq!(a["t"], "ack", "u{i} {r}: {a}");
            let seq = a["seq"].as_i64().unwrap();
            // Per channel, a connection's pipelined sends get seqs in the order it sent them.
            let prev = last_seq.insert(channel, seq).unwrap_or(0);
            assert!(seq > prev, "u{i} {r}: seq {seq} after {prev} in {channel}: out of send order");
            by_cmid.insert(cmid, a);
            acked.entry(channel.clone()).or_default().push(seq);
        }
    }
    // Gap-free and one seq per event across all senders; the reader gets each once, in order.
    for (ch, seqs) in &mut acked {
        seqs.sort();
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0] + 1, "acks of {ch} have a gap or repeat: {} then {}", w[0], w[1]);
        }
        reader.wait_seq(ch, *seqs.last().unwrap(), T).await.unwrap();
        let events: Vec<Value> = reader.events(ch).into_iter().filter(|e| e["seq"].as_i64() >= Some(seqs[0])).collect();
        check_in_order(&events, seqs[0], *seqs.last().unwrap()).unwrap_or_else(|e| panic!("reader, {ch}: {e}"));
        let texts: std::collections::HashSet<&str> = events.iter().filter_map(|e| e["text"].as_str()).collect();
        assert_eq!(texts.len(), seqs.len(), "{ch}: one event per cmid");
    }
    let expected_new = SENDERS * (PER_SENDER - PER_SENDER / 10 - PER_SENDER / 15 + PER_SENDER / 30);
    assert_eq!(acked.values().map(Vec::len).sum::<usize>(), expected_new);
    // The sends did share commits: fewer batches than sends.
    let after = pod.metrics().await.unwrap();
    let sends = metric(&after, "palaver_send_batch_size_sum") - metric(&before, "palaver_send_batch_size_sum");
    let batches = metric(&after, "palaver_send_batch_size_count") - metric(&before, "palaver_send_batch_size_count");
    assert!(sends >= (SENDERS * PER_SENDER) as f64, "every send went through the group commit: {sends}");
    assert!(batches > 0.0 && sends / batches > 1.5, "{sends} sends in {batches} batches: no group commit happened");
    assert_eq!(metric(&after, "palaver_send_batch_fallbacks_total"), metric(&before, "palaver_send_batch_fallbacks_total"));
}

/// Batches of both pods hold the same five channels at once. Postgres' plan for the statement
/// happens to update the rows in one order anyway, so this would not catch a missing lock
/// order today; it catches a batch that fails (a deadlock, a lock timeout) or a lost seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_of_two_pods_over_the_same_channels_all_commit_gap_free() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "gcdl").await.unwrap();
    let a = Pod::start("pod-a", &svc, batching_pod()).await.unwrap();
    let b = Pod::start("pod-b", &svc, batching_pod()).await.unwrap();
    const SENDERS: usize = 8;
    let mut clients = Vec::new();
    for i in 0..SENDERS {
        let pod = if i % 2 == 0 { &a } else { &b };
        clients.push(Client::connect(&pod.ws_url(), &token(&ws, &format!("u{i}"))).await.unwrap());
    }
    // Five channels everyone is in.
    let owner = Rest::new(&a.http_url(), &token(&ws, "owner"));
    let mut channels = Vec::new();
    for n in 0..5 {
        let (s, ch) = owner.post("/v1/channels", json!({"name": format!("c{n}")})).await.unwrap();
        assert_eq!(s, 201, "{ch}");
        let id = ch["id"].as_str().unwrap().to_string();
        for i in 0..SENDERS {
            let (s, body) = owner.post(&format!("/v1/channels/{id}/members"), json!({"user": format!("u{i}")})).await.unwrap();
            assert_eq!(s, 200, "{body}");
        }
        channels.push(id);
    }
    let before = (a.metrics().await.unwrap(), b.metrics().await.unwrap());
    // Senders walk the channels in opposite directions, so concurrent batches on the two pods
    // hold the same channels in different arrival orders.
    const ROUNDS: usize = 40;
    let runs = clients.into_iter().enumerate().map(|(i, mut c)| {
        let mut order = channels.clone();
        if i % 4 >= 2 {
            order.reverse();
        }
        tokio::spawn(async move {
            let frames: Vec<Value> = (0..ROUNDS * order.len())
                .map(|n| json!({"t": "send", "ref": format!("r{n}"), "channel": order[n % order.len()], "cmid": format!("u{i}-{n}"), "text": "x"}))
                .collect();
            let started = std::time::Instant::now();
            let answers = pipeline(&mut c, &frames).await;
            (answers, started.elapsed())
        })
    });
    let mut per_channel: HashMap<String, Vec<i64>> = HashMap::new();
    for run in futures::future::join_all(runs).await {
        let (answers, took) = run.unwrap();
        // A deadlock would cost Postgres' deadlock_timeout (1 s) before one side fails.
        assert!(took < Duration::from_secs(15), "sends took {took:?}");
        for a in answers.values() {
            assert_eq!(a["t"], "ack", "{a}");
            per_channel.entry(a["channel"].as_str().unwrap().to_string()).or_default().push(a["seq"].as_i64().unwrap());
        }
    }
    for (ch, seqs) in &mut per_channel {
        seqs.sort();
        assert_eq!(seqs.len(), SENDERS * ROUNDS, "{ch}");
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0] + 1, "acks of {ch} have a gap or repeat");
        }
    }
    // No batch failed and fell back to single sends (a deadlock would have).
    let after = (a.metrics().await.unwrap(), b.metrics().await.unwrap());
    for (b4, now) in [(&before.0, &after.0), (&before.1, &after.1)] {
        assert_eq!(metric(now, "palaver_send_batch_fallbacks_total"), metric(b4, "palaver_send_batch_fallbacks_total"));
        assert!(metric(now, "palaver_send_batch_size_count") > metric(b4, "palaver_send_batch_size_count"));
    }
}
