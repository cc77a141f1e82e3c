//! Partition-by-channel consumers: inbox entries and pushes for offline members, exactly once
//! per (user, channel, seq) even when Kafka redelivers, and the DLQ for pushes that keep
//! failing. Each test has a database of its own (consumers subscribe to every registered
//! workspace) and a consumer group of its own.

use std::time::Duration;

use palaver_e2e::{eventually, new_workspace, token, topic_reader, Client, Pod, PodOptions, Rest, Services, Webhook};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use serde_json::{json, Value};

/// Joining a consumer group on the local broker takes 10-14 s; allow for it.
const GROUP: Duration = Duration::from_secs(90);
const T: Duration = Duration::from_secs(20);

fn consumer_pod(hook: &Webhook, extra: &[(&str, &str)]) -> PodOptions {
    let group = format!("test-{}", uuid::Uuid::new_v4().simple());
    let mut env: Vec<(String, String)> = vec![
        ("PALAVER_CONSUMER_GROUP".into(), group),
        ("PALAVER_PUSH_WEBHOOK_URL".into(), hook.url()),
        ("PALAVER_PUSH_INTERVAL_MS".into(), "50".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    PodOptions { consumers: true, env, ..Default::default() }
}

async fn consumed_ok(pod: &Pod) -> f64 {
    pod.metric("palaver_consumed_total{result=\"ok\"}").await.unwrap_or(0.0)
}

async fn inbox(rest: &Rest, unread: bool) -> Vec<Value> {
    let (s, body) = rest.get(&format!("/v1/notifications?unread={unread}")).await.unwrap();
    assert_eq!(s, 200, "{body}");
    body["notifications"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_mentions_and_dms_notify_once_even_when_redelivered() {
    let svc = Services::from_env().private_database().await.unwrap();
    let ws = new_workspace(&svc, "note").await.unwrap();
    let hook = Webhook::start(200).await.unwrap();
    let mut pod = Pod::start("pod-c", &svc, consumer_pod(&hook, &[])).await.unwrap();
    let bob = Rest::new(&pod.http_url(), &token(&ws, "bob"));
    inbox(&bob, false).await; // bob exists, and has no connection: offline
    let mut carol = Client::connect(&pod.ws_url(), &token(&ws, "carol")).await.unwrap();
    let mut alice = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let general = alice.channel_id("general").unwrap();
    carol.request(json!({"t": "ping"})).await.unwrap();

    // bob is offline: notified. carol is online: not. alice herself and non-members: never.
    let ack = alice.send_message(&general, "n1", "hey @bob and @carol, @alice and @nobody").await.unwrap();
    let seq = ack["seq"].as_i64().unwrap();
    let items = eventually(GROUP, "bob's mention in his inbox", || async { Some(inbox(&bob, true).await).filter(|i| !i.is_empty()) })
        .await
        .unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        (items[0]["kind"].as_str(), items[0]["channel"].as_str(), items[0]["seq"].as_i64()),
        (Some("mention"), Some(general.as_str()), Some(seq))
    );
    eventually(T, "one push", || async { (hook.received().len() == 1).then_some(()) }).await.unwrap();
    assert_eq!(hook.received()[0]["user"], "bob");
    let carol_inbox = Rest::new(&pod.http_url(), &token(&ws, "carol"));
    assert!(inbox(&carol_inbox, false).await.is_empty(), "online users are not notified");

    // Redelivery: the same event appears on the log again and is consumed again.
    let before = consumed_ok(&pod).await;
    let (_, page) = bob.get(&format!("/v1/channels/{general}/events?after={}&limit=1", seq - 1)).await.unwrap();
    let event = page["events"][0].to_string();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &svc.kafka_brokers).create().unwrap();
    producer
        .send(FutureRecord::to(&ws.events_topic()).key(general.as_bytes()).payload(&event), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    eventually(T, "the duplicate to be consumed", || async { (consumed_ok(&pod).await > before).then_some(()) }).await.unwrap();

    // A DM to offline bob: kind dm. Pushes go out in order, so when the DM's push has arrived
    // a push caused by the duplicate would have arrived before it.
    let rest_alice = Rest::new(&pod.http_url(), &token(&ws, "alice"));
    let (_, dm) = rest_alice.post("/v1/dms", json!({"user": "bob"})).await.unwrap();
    let dm_id = dm["id"].as_str().unwrap().to_string();
    alice.send_message(&dm_id, "n2", "psst").await.unwrap();
    eventually(T, "the DM's push", || async { hook.received().iter().any(|b| b["kind"] == "dm").then_some(()) }).await.unwrap();
    let pushes = hook.received();
    assert_eq!(pushes.len(), 2, "exactly one push per notification: {pushes:?}");
    let items = inbox(&bob, true).await;
    assert_eq!(items.len(), 2, "one inbox entry per (user, channel, seq): {items:?}");

    // When bob connects he gets his unread inbox as notification frames, and mention counts.
    let mut bob_ws = Client::connect(&pod.ws_url(), &token(&ws, "bob")).await.unwrap();
    let g = bob_ws.hello_channel(&general);
    assert_eq!(g["mentions"], 1, "{g}");
    bob_ws.send(json!({"t": "sync"})).await.unwrap();
    let first = bob_ws.expect(T, |f| f["t"] == "notification").await.unwrap();
    let second = bob_ws.expect(T, |f| f["t"] == "notification").await.unwrap();
    let mut kinds = [first["kind"].as_str().unwrap(), second["kind"].as_str().unwrap()];
    kinds.sort();
    assert_eq!(kinds, ["dm", "mention"]);

    // Mark read: the unread inbox empties; bad bodies are refused.
    let (s, body) = bob.post("/v1/notifications/read", json!({"ids": [first["id"]]})).await.unwrap();
    assert_eq!((s, body["marked"].as_i64()), (200, Some(1)));
    let (s, body) = bob.post("/v1/notifications/read", json!({"all": true})).await.unwrap();
    assert_eq!((s, body["marked"].as_i64()), (200, Some(1)));
    assert!(inbox(&bob, true).await.is_empty());
    assert_eq!(inbox(&bob, false).await.len(), 2);
    let (s, _) = bob.post("/v1/notifications/read", json!({})).await.unwrap();
    assert_eq!(s, 400);

    pod.kill().await;
    svc.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_push_endpoint_ends_in_the_dlq_after_the_configured_attempts() {
    let svc = Services::from_env().private_database().await.unwrap();
    let ws = new_workspace(&svc, "dlq").await.unwrap();
    let hook = Webhook::start(500).await.unwrap();
    let mut pod = Pod::start("pod-d", &svc, consumer_pod(&hook, &[("PALAVER_PUSH_MAX_ATTEMPTS", "3"), ("PALAVER_PUSH_BACKOFF_MS", "50")]))
        .await
        .unwrap();
    let bob = Rest::new(&pod.http_url(), &token(&ws, "bob"));
    inbox(&bob, false).await;
    let mut alice = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let general = alice.channel_id("general").unwrap();
    let seq = alice.send_message(&general, "d1", "@bob are you there?").await.unwrap()["seq"].as_i64().unwrap();

    // The DLQ record appears after the third failed attempt.
    let consumer = topic_reader(&svc.kafka_brokers, &ws.dlq_topic(), 1).unwrap();
    let deadline = std::time::Instant::now() + GROUP;
    let record = loop {
        assert!(std::time::Instant::now() < deadline, "no DLQ record; webhook saw {} attempts", hook.received().len());
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            break serde_json::from_slice::<Value>(m.payload().unwrap()).unwrap();
        }
    };
    assert_eq!(
        (record["user"].as_str(), record["seq"].as_i64(), record["attempts"].as_i64()),
        (Some("bob"), Some(seq), Some(3)),
        "{record}"
    );
    assert!(record["error"].as_str().unwrap().contains("500"), "{record}");
    assert_eq!(hook.received().len(), 3, "exactly the configured attempts");
    assert_eq!(pod.metric("palaver_push_dead_total").await.unwrap(), 1.0);
    // The inbox entry itself is kept.
    assert_eq!(inbox(&bob, true).await.len(), 1);

    pod.kill().await;
    svc.drop_database().await.unwrap();
}

/// A group of two consumer pods; one is killed with SIGKILL while mentions stream in. The
/// group coordinator hands its partitions to the survivor after the session timeout, which
/// resumes from the last committed offsets: events the dead pod had processed but not
/// committed are processed again, and the inbox keeps one entry per (user, channel, seq).
/// (chaos_: kills a pod; runs alone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_a_killed_consumer_pods_partitions_move_to_the_survivor_and_nothing_is_lost() {
    let svc = Services::from_env().private_database().await.unwrap();
    let ws = new_workspace(&svc, "rebal").await.unwrap();
    let hook = Webhook::start(200).await.unwrap();
    // One group for both pods; rounds of 16 sends do not wait for the per-user send limit.
    let opts = consumer_pod(&hook, &[("PALAVER_SEND_RATE", "1000"), ("PALAVER_SEND_BURST", "1000")]);
    let mut a = Pod::start("pod-ca", &svc, opts.clone()).await.unwrap();
    let mut b = Pod::start("pod-cb", &svc, opts).await.unwrap();
    let bob = Rest::new(&b.http_url(), &token(&ws, "bob"));
    inbox(&bob, false).await; // bob exists and stays offline: every mention is an inbox entry
    let alice = Rest::new(&b.http_url(), &token(&ws, "alice"));
    // 16 channels: both of the workspace's 2 partitions carry some (all on one: p = 2^-15).
    let mut channels = Vec::new();
    for i in 0..16 {
        let (_, c) = alice.post("/v1/channels", json!({"name": format!("rb-{i}")})).await.unwrap();
        let id = c["id"].as_str().unwrap().to_string();
        alice.post(&format!("/v1/channels/{id}/members"), json!({"user": "bob"})).await.unwrap();
        channels.push(id);
    }
    let mut sent: Vec<(String, i64)> = Vec::new();
    let round = |alice: Rest, channels: Vec<String>, n: usize, text: &'static str| async move {
        let mut acks = Vec::new();
        for (i, ch) in channels.iter().enumerate() {
            let (s, ack) =
                alice.post(&format!("/v1/channels/{ch}/messages"), json!({"cmid": format!("r{n}-{i}"), "text": text})).await.unwrap();
            assert_eq!(s, 201, "{ack}");
            acks.push((ch.clone(), ack["seq"].as_i64().unwrap()));
        }
        acks
    };

    // Both pods own a partition once each has consumed something (the group forms while
    // rounds of plain messages, which notify nobody, go out).
    let deadline = std::time::Instant::now() + GROUP;
    let mut n = 0;
    loop {
        round(alice.clone(), channels.clone(), n, "warming up").await;
        n += 1;
        let both = || async { (consumed_ok(&a).await > 0.0 && consumed_ok(&b).await > 0.0).then_some(()) };
        if eventually(Duration::from_secs(3), "both pods consuming", both).await.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the group never gave both pods a partition");
    }

    // A burst, the kill right behind it, then more rounds through the survivor.
    sent.extend(round(alice.clone(), channels.clone(), n, "@bob ping").await);
    a.kill().await;
    for _ in 0..3 {
        n += 1;
        sent.extend(round(alice.clone(), channels.clone(), n, "@bob ping").await);
    }

    let want: std::collections::BTreeSet<(String, i64)> = sent.into_iter().collect();
    let got = eventually(GROUP, "every mention in bob's inbox", || async {
        let (s, body) = bob.get("/v1/notifications?limit=200").await.unwrap();
        assert_eq!(s, 200, "{body}");
        let items = body["notifications"].as_array().unwrap().clone();
        (items.len() >= want.len()).then_some(items)
    })
    .await
    .unwrap();
    assert_eq!(got.len(), want.len(), "one entry per (user, channel, seq), nothing twice");
    let got: std::collections::BTreeSet<(String, i64)> =
        got.iter().map(|i| (i["channel"].as_str().unwrap().to_string(), i["seq"].as_i64().unwrap())).collect();
    assert_eq!(got, want);
    b.kill().await;
    svc.drop_database().await.unwrap();
}
