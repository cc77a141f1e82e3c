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
