//! Delivery guarantees across two palaverd processes: ordered, gap-free fan-out, idempotent
//! sends, resume, gap frames, and recovery of a lost pub/sub publish.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use palaver_e2e::client::check_in_order;
use palaver_e2e::{new_workspace, token, Client, Pod, PodOptions, PrivateRedis, Rest, Services};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn fast_sends() -> PodOptions {
    PodOptions {
        env: vec![("PALAVER_SEND_RATE".into(), "5000".into()), ("PALAVER_SEND_BURST".into(), "5000".into())],
        ..Default::default()
    }
}

async fn two_pods(svc: &Services, opts: PodOptions) -> (Pod, Pod) {
    let a = Pod::start("pod-a", svc, opts.clone()).await.expect("pod a");
    let b = Pod::start("pod-b", svc, opts).await.expect("pod b");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fanout_many_clients_two_pods_in_order_exactly_once() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "fan").await.unwrap();
    let (a, b) = two_pods(&svc, fast_sends()).await;
    let pods = [&a, &b];

    const USERS: usize = 24;
    const SENDERS: usize = 6;
    const PER_SENDER: usize = 340; // 2,040 messages
    let mut clients = Vec::new();
    for i in 0..USERS {
        let pod = pods[i % 2];
        clients.push(Client::connect(&pod.ws_url(), &token(&ws, &format!("u{i}"))).await.unwrap());
    }
    // A third channel with half of the users, created over REST after everyone exists.
    let rest = Rest::new(&a.http_url(), &token(&ws, "u0"));
    let (status, dev) = rest.post("/v1/channels", json!({"name": "dev"})).await.unwrap();
    assert_eq!(status, 201, "{dev}");
    let dev = dev["id"].as_str().unwrap().to_string();
    for i in 1..USERS / 2 {
        let (s, body) = rest.post(&format!("/v1/channels/{dev}/members"), json!({"user": format!("u{i}")})).await.unwrap();
        assert_eq!(s, 200, "{body}");
    }
    let general = clients[0].channel_id("general").unwrap();
    let random = clients[0].channel_id("random").unwrap();
    let channels = [general.clone(), random.clone(), dev.clone()];

    // Senders u0..u5 (members of all three channels) send concurrently, alternating pods.
    let mut senders = Vec::new();
    for (i, mut c) in clients.drain(..SENDERS).enumerate() {
        let channels = channels.clone();
        senders.push(tokio::spawn(async move {
            let mut acks: Vec<(String, i64)> = Vec::new();
            for n in 0..PER_SENDER {
                let ch = &channels[(n + i) % 3];
                let ack = c.send_message(ch, &format!("s{i}-{n}"), &format!("hello {n} from u{i}")).await.unwrap();
                assert_eq!(ack["t"], "ack", "send failed: {ack}");
                acks.push((ch.clone(), ack["seq"].as_i64().unwrap()));
            }
            (c, acks)
        }));
    }
    let mut acked: HashMap<String, Vec<i64>> = HashMap::new();
    let mut all_clients = Vec::new();
    for s in senders {
        let (c, acks) = s.await.unwrap();
        for (ch, seq) in acks {
            acked.entry(ch).or_default().push(seq);
        }
        all_clients.push(c);
    }
    all_clients.extend(clients);
    let total: usize = acked.values().map(Vec::len).sum();
    assert_eq!(total, SENDERS * PER_SENDER);

    // Acks per channel are gap-free (no membership changes happen during the sends).
    let mut last = BTreeMap::new();
    for (ch, seqs) in &mut acked {
        seqs.sort();
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0] + 1, "acks of {ch} have a gap or repeat: {} then {}", w[0], w[1]);
        }
        last.insert(ch.clone(), *seqs.last().unwrap());
    }

    // Every member sees every event of its channels, in order, exactly once after dedupe.
    let waits = all_clients.into_iter().enumerate().map(|(i, mut c)| {
        let last = last.clone();
        let first_msg: BTreeMap<String, i64> = acked.iter().map(|(ch, s)| (ch.clone(), s[0])).collect();
        let dev = dev.clone();
        tokio::spawn(async move {
            let member_of_dev = i < USERS / 2;
            for (ch, last_seq) in &last {
                if *ch == dev && !member_of_dev {
                    assert!(c.events(ch).is_empty(), "u{i} is not in dev but got its events");
                    continue;
                }
                c.wait_seq(ch, *last_seq, T).await.unwrap_or_else(|e| panic!("client {i}: {e}"));
                let events: Vec<_> = c.events(ch).into_iter().filter(|e| e["seq"].as_i64() >= Some(first_msg[ch])).collect();
                check_in_order(&events, first_msg[ch], *last_seq).unwrap_or_else(|e| panic!("client {i} channel {ch}: {e}"));
            }
        })
    });
    for w in futures::future::join_all(waits).await {
        w.unwrap();
    }
    let m = b.metrics().await.unwrap();
    assert!(m.contains("palaver_deliveries_total"), "deliveries metric missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_cmid_concurrently_and_on_both_pods_is_one_event() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "idem").await.unwrap();
    let (a, b) = two_pods(&svc, fast_sends()).await;
    let t = token(&ws, "alice");
    let mut c1 = Client::connect(&a.ws_url(), &t).await.unwrap();
    let mut c2 = Client::connect(&b.ws_url(), &t).await.unwrap();
    let general = c1.channel_id("general").unwrap();

    for round in 0..5 {
        let cmid = format!("dup-{round}");
        let frame = |r: &str| json!({"t": "send", "ref": r, "channel": general, "cmid": cmid, "text": "once"});
        // Two frames back to back on one socket, one on the other pod, all before any ack.
        c1.send(frame("x1")).await.unwrap();
        c1.send(frame("x2")).await.unwrap();
        c2.send(frame("y1")).await.unwrap();
        let mut acks = Vec::new();
        for r in ["x1", "x2"] {
            acks.push(c1.expect(T, |f| f["ref"] == r).await.unwrap());
        }
        acks.push(c2.expect(T, |f| f["ref"] == "y1").await.unwrap());
        for ack in &acks {
            assert_eq!(ack["t"], "ack", "{ack}");
            assert_eq!(ack["seq"], acks[0]["seq"], "all acks carry the original seq: {acks:?}");
            assert_eq!(ack["id"], acks[0]["id"]);
        }
    }
    // REST with the same cmid also returns the original (200, not 201).
    let rest = Rest::new(&b.http_url(), &t);
    let (s, body) = rest.post(&format!("/v1/channels/{general}/messages"), json!({"cmid": "dup-0", "text": "once"})).await.unwrap();
    assert_eq!(s, 200, "{body}");
    // A cmid reused for another channel is a conflict, not a silent duplicate.
    let random = c1.channel_id("random").unwrap();
    let ack = c1.send_message(&random, "dup-0", "elsewhere").await.unwrap();
    assert_eq!(ack["code"], "conflict", "{ack}");

    let (_, page) = rest.get(&format!("/v1/channels/{general}/events?after=0&limit=200")).await.unwrap();
    let msgs: Vec<_> = page["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "message").collect();
    assert_eq!(msgs.len(), 5, "exactly one event per cmid: {msgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_from_client_seq_and_from_stored_cursor_on_the_other_pod() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "resume").await.unwrap();
    let (a, b) = two_pods(&svc, fast_sends()).await;
    let mut alice = Client::connect(&a.ws_url(), &token(&ws, "alice")).await.unwrap();
    let mut bob = Client::connect(&b.ws_url(), &token(&ws, "bob")).await.unwrap();
    let general = alice.channel_id("general").unwrap();

    let mut seqs = Vec::new();
    for n in 0..5 {
        seqs.push(alice.send_message(&general, &format!("a{n}"), "first batch").await.unwrap()["seq"].as_i64().unwrap());
    }
    bob.wait_seq(&general, seqs[4], T).await.unwrap();
    // Bob acknowledges delivery of the first three, then leaves.
    bob.send(json!({"t": "recv", "channel": general, "seq": seqs[2]})).await.unwrap();
    bob.request(json!({"t": "ping"})).await.unwrap();
    drop(bob);

    for n in 5..10 {
        seqs.push(alice.send_message(&general, &format!("a{n}"), "while bob was away").await.unwrap()["seq"].as_i64().unwrap());
    }

    // 1. Explicit sync on the other pod: exactly the events after the client's seq.
    let mut bob = Client::connect(&a.ws_url(), &token(&ws, "bob")).await.unwrap();
    let hello_general = bob.hello_channel(&general);
    assert_eq!(hello_general["last_seq"], seqs[9]);
    bob.send(json!({"t": "sync", "since": {general.clone(): seqs[4]}})).await.unwrap();
    bob.wait_seq(&general, seqs[9], T).await.unwrap();
    let got: Vec<i64> = bob.events(&general).iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(got, seqs[5..].to_vec(), "replay must be exactly the missing events");
    drop(bob);

    // 2. No sync: the server resumes from the stored delivered cursor (seqs[2]).
    let mut bob = Client::connect(&b.ws_url(), &token(&ws, "bob")).await.unwrap();
    bob.wait_seq(&general, seqs[9], T).await.unwrap();
    let got: Vec<i64> = bob.events(&general).iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(got, seqs[3..].to_vec(), "resume from the delivered cursor");

    // 3. Live events keep flowing after the replay, once each.
    let next = alice.send_message(&general, "a-live", "live").await.unwrap()["seq"].as_i64().unwrap();
    bob.wait_seq(&general, next, T).await.unwrap();
    let got: Vec<i64> = bob.events(&general).iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(got.last(), Some(&next));
    assert_eq!(got.iter().filter(|s| **s == next).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn too_large_a_gap_gets_a_gap_frame_then_the_newest_events() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "gap").await.unwrap();
    let mut opts = fast_sends();
    opts.env.push(("PALAVER_REPLAY_LIMIT".into(), "5".into()));
    let pod = Pod::start("pod-gap", &svc, opts).await.unwrap();
    let mut alice = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let general = alice.channel_id("general").unwrap();
    let bob_hello = Client::connect(&pod.ws_url(), &token(&ws, "bob")).await.unwrap();
    let since = bob_hello.hello_channel(&general)["last_seq"].as_i64().unwrap();
    drop(bob_hello);
    let mut last = 0;
    for n in 0..12 {
        last = alice.send_message(&general, &format!("g{n}"), "x").await.unwrap()["seq"].as_i64().unwrap();
    }
    let mut bob = Client::connect(&pod.ws_url(), &token(&ws, "bob")).await.unwrap();
    bob.send(json!({"t": "sync", "since": {general.clone(): since}})).await.unwrap();
    let gap = bob.expect(T, |f| f["t"] == "gap").await.unwrap();
    assert_eq!(gap["channel"], general.as_str());
    assert_eq!(gap["from"], since + 1);
    assert_eq!(gap["to"], last - 5);
    bob.wait_seq(&general, last, T).await.unwrap();
    let got: Vec<i64> = bob.events(&general).iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(got, ((last - 4)..=last).collect::<Vec<_>>());
    // The client pages the gap through REST history.
    let rest = Rest::new(&pod.http_url(), &token(&ws, "bob"));
    let (s, page) = rest.get(&format!("/v1/channels/{general}/events?after={since}&before={}&limit=200", last - 4)).await.unwrap();
    assert_eq!(s, 200);
    let paged: Vec<i64> = page["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(paged, ((since + 1)..=(last - 5)).collect::<Vec<_>>());
}

/// Pod A publishes into a Redis nobody else listens to, so every pub/sub publish it makes is
/// lost for pod B; B's position check must still deliver within its documented bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_publish_is_delivered_by_the_position_check() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "lost").await.unwrap();
    let island = PrivateRedis::start().await.unwrap();
    let mut a_opts = fast_sends();
    a_opts.redis_url = Some(island.url());
    let a = Pod::start("pod-island", &svc, a_opts).await.unwrap();
    let b = Pod::start("pod-b", &svc, fast_sends()).await.unwrap();
    let mut alice = Client::connect(&a.ws_url(), &token(&ws, "alice")).await.unwrap();
    let mut bob = Client::connect(&b.ws_url(), &token(&ws, "bob")).await.unwrap();
    let general = alice.channel_id("general").unwrap();
    bob.request(json!({"t": "ping"})).await.unwrap();

    let mut last = 0;
    for n in 0..3 {
        last = alice.send_message(&general, &format!("l{n}"), "into the void").await.unwrap()["seq"].as_i64().unwrap();
    }
    let started = std::time::Instant::now();
    // Bound: position check period (300 ms in tests) plus a query; allow generous slack.
    bob.wait_seq(&general, last, Duration::from_secs(5)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let events = bob.events(&general);
    let msgs: Vec<_> = events.iter().filter(|e| e["kind"] == "message").collect();
    assert_eq!(msgs.len(), 3);
    let m = b.metrics().await.unwrap();
    assert!(m.lines().any(|l| l.starts_with("palaver_fanout_fills_total{reason=\"position\"}")), "fill metric missing:\n{m}");
}

/// Pod A's Redis is unreachable, so none of its publishes go through and its outbox rows stay;
/// pod B's sweeper republishes them (and B's readers get everything).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stranded_outbox_rows_are_swept_by_another_pod() {
    // A database of its own: every pod sweeps every registered workspace, so on the shared
    // registry the pods of concurrent tests would republish (and count) these rows first.
    let svc = Services::from_env().private_database().await.unwrap();
    let ws = new_workspace(&svc, "sweep").await.unwrap();
    let mut a_opts = fast_sends();
    a_opts.redis_url = Some(format!("redis://127.0.0.1:{}", palaver_e2e::free_port()));
    // Pod A's own sweeper would claim the same rows (SKIP LOCKED) and hold them while its
    // publishes fail, so pod B would get them only between A's rounds: a flaky race. Keep A's
    // sweeper out of the way; what is tested is that another pod's sweeper takes them.
    a_opts.env.push(("PALAVER_SWEEP_INTERVAL_MS".into(), "600000".into()));
    let a = Pod::start("pod-noredis", &svc, a_opts).await.unwrap();
    let b = Pod::start("pod-b", &svc, fast_sends()).await.unwrap();
    // A pod whose Redis is down is not ready, and says why.
    let r = reqwest::get(format!("{}/readyz", a.http_url())).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["redis"].is_string() && body["postgres"].is_null(), "{body}");
    let ready = reqwest::get(format!("{}/readyz", b.http_url())).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    // Sends through pod A still commit and ack (Redis is not on the ack path).
    let alice = Rest::new(&a.http_url(), &token(&ws, "alice"));
    let mut bob = Client::connect(&b.ws_url(), &token(&ws, "bob")).await.unwrap();
    let general = bob.channel_id("general").unwrap();
    let mut last = 0;
    for n in 0..5 {
        let (s, ack) =
            alice.post(&format!("/v1/channels/{general}/messages"), json!({"cmid": format!("w{n}"), "text": "stranded"})).await.unwrap();
        assert_eq!(s, 201, "{ack}");
        last = ack["seq"].as_i64().unwrap();
    }
    bob.wait_seq(&general, last, T).await.unwrap();
    palaver_e2e::eventually(T, "pod b to republish the stranded rows", || async {
        (b.metric("palaver_outbox_republished_total").await.ok()? >= 5.0).then_some(())
    })
    .await
    .unwrap();
    palaver_e2e::eventually(T, "the outbox to drain", || async { (b.metric("palaver_outbox_backlog").await.ok()? == 0.0).then_some(()) })
        .await
        .unwrap();
    drop((a, b));
    svc.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_cursor_and_unread_counts_follow_the_user_to_another_pod() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "unread").await.unwrap();
    let (a, b) = two_pods(&svc, fast_sends()).await;
    let mut bob = Client::connect(&b.ws_url(), &token(&ws, "bob")).await.unwrap();
    let mut alice = Client::connect(&a.ws_url(), &token(&ws, "alice")).await.unwrap();
    let general = alice.channel_id("general").unwrap();
    let mut seqs = Vec::new();
    for n in 0..6 {
        seqs.push(alice.send_message(&general, &format!("u{n}"), "unread?").await.unwrap()["seq"].as_i64().unwrap());
    }
    bob.wait_seq(&general, seqs[5], T).await.unwrap();
    // Bob has read up to the second message; his own message after that does not count.
    bob.send(json!({"t": "read", "channel": general, "seq": seqs[1]})).await.unwrap();
    let own = bob.send_message(&general, "bob-1", "mine").await.unwrap()["seq"].as_i64().unwrap();
    drop(bob);

    // Immediately on the other pod (Redis has the cursor before Postgres does).
    let bob = Client::connect(&a.ws_url(), &token(&ws, "bob")).await.unwrap();
    let g = bob.hello_channel(&general);
    assert_eq!(g["read_seq"], seqs[1], "{g}");
    assert_eq!(g["last_seq"], own, "{g}");
    assert_eq!(g["unread"], 4, "four of alice's messages after the read cursor: {g}");
    // The batch reaches Postgres too (the durable copy that outlives Redis).
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&svc.database_url).await.unwrap();
    let sql = format!("SELECT read_seq FROM {}.members WHERE channel_id = $1 AND user_id = 'bob'", ws.schema());
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let stored: i64 = sqlx::query_scalar(&sql).bind(&general).fetch_one(&mut db).await.unwrap();
        if stored == seqs[1] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "read cursor not flushed to postgres (has {stored})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A cursor never moves back.
    let mut bob = bob;
    bob.send(json!({"t": "read", "channel": general, "seq": 1})).await.unwrap();
    bob.request(json!({"t": "ping"})).await.unwrap();
    drop(bob);
    let bob = Client::connect(&b.ws_url(), &token(&ws, "bob")).await.unwrap();
    let g = bob.hello_channel(&general);
    assert_eq!(g["read_seq"], seqs[1], "{g}");
}
