//! Fault tests: each starts and kills its own pods, Redis and broker instances (never the
//! shared ones). Named `chaos_*` so nextest runs them with the whole machine to themselves.

use std::collections::BTreeSet;
use std::time::Duration;

use palaver_e2e::client::check_in_order;
use palaver_e2e::{eventually, new_workspace, token, topic_reader, Client, Pod, PodOptions, PrivateBroker, PrivateRedis, Rest, Services};
use rdkafka::Message;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(40);

fn fast(mut o: PodOptions) -> PodOptions {
    o.env.push(("PALAVER_SEND_RATE".into(), "5000".into()));
    o.env.push(("PALAVER_SEND_BURST".into(), "5000".into()));
    o
}

/// Sends `n` messages as `user`, reconnecting to `fallback` (and resending the same cmid) when
/// the connection dies. Returns the acked seqs.
async fn send_resilient(
    mut c: Client,
    fallback: String,
    tok: String,
    channel: String,
    prefix: String,
    n: usize,
    kill_at: Option<(usize, tokio::sync::oneshot::Sender<()>)>,
) -> Vec<i64> {
    let mut seqs = Vec::new();
    let mut kill_at = kill_at;
    let mut i = 0;
    while i < n {
        if let Some((at, _)) = &kill_at {
            if i == *at {
                let (_, tx) = kill_at.take().unwrap();
                let _ = tx.send(());
            }
        }
        match c.send_message(&channel, &format!("{prefix}-{i}"), &format!("{prefix} message {i}")).await {
            Ok(ack) if ack["t"] == "ack" => {
                seqs.push(ack["seq"].as_i64().unwrap());
                i += 1;
            }
            Ok(other) if other["code"] == "rate_limited" || other["code"] == "unavailable" => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(other) => panic!("unexpected reply {other}"),
            Err(_) => {
                // Connection lost mid-send: reconnect elsewhere and resend the same cmid.
                c = eventually(T, "reconnect", || {
                    let (u, t) = (fallback.clone(), tok.clone());
                    async move { Client::connect(&u, &t).await.ok() }
                })
                .await
                .unwrap();
            }
        }
    }
    seqs
}

/// Reads until `last`, reconnecting to `fallback` with `sync` from the highest seq seen when
/// the connection dies. Returns every event frame seen for the channel, across connections.
async fn receive_resilient(mut c: Client, fallback: &str, tok: &str, channel: &str, last: i64) -> Vec<Value> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let r = c.wait_seq(channel, last, deadline.saturating_duration_since(tokio::time::Instant::now())).await;
        seen.extend(std::mem::take(&mut c.log).into_iter().filter(|v| v["t"] == "event" && v["channel"] == channel));
        if r.is_ok() {
            return seen;
        }
        assert!(tokio::time::Instant::now() < deadline, "receiver timed out: {r:?}");
        let high = seen.iter().filter_map(|e| e["seq"].as_i64()).max().unwrap_or(0);
        c = eventually(T, "receiver reconnect", || async move { Client::connect(fallback, tok).await.ok() }).await.unwrap();
        c.send(json!({"t": "sync", "since": {channel: high}})).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_sigkill_a_pod_mid_stream_loses_nothing() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "kill").await.unwrap();
    let mut a = Pod::start("pod-a", &svc, fast(PodOptions::default())).await.unwrap();
    let b = Pod::start("pod-b", &svc, fast(PodOptions::default())).await.unwrap();
    let mut receivers = Vec::new();
    for i in 0..4 {
        let pod = if i % 2 == 0 { &a } else { &b };
        let tok = token(&ws, &format!("r{i}"));
        receivers.push((Client::connect(&pod.ws_url(), &tok).await.unwrap(), tok));
    }
    let general = receivers[0].0.channel_id("general").unwrap();
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel();
    // s0 writes to pod A (the one that dies after its 150th message), s1 to pod B.
    let (tok0, tok1) = (token(&ws, "s0"), token(&ws, "s1"));
    let c0 = Client::connect(&a.ws_url(), &tok0).await.unwrap();
    let c1 = Client::connect(&b.ws_url(), &tok1).await.unwrap();
    // Everyone has joined #general by now: the messages start after this seq.
    let first = c1.hello_channel(&general)["last_seq"].as_i64().unwrap();
    let senders = vec![
        tokio::spawn(send_resilient(c0, b.ws_url(), tok0, general.clone(), "s0".into(), 300, Some((150, kill_tx)))),
        tokio::spawn(send_resilient(c1, b.ws_url(), tok1, general.clone(), "s1".into(), 300, None)),
    ];
    kill_rx.await.unwrap();
    a.kill().await;

    let mut acked = BTreeSet::new();
    for s in senders {
        acked.extend(s.await.unwrap());
    }
    assert_eq!(acked.len(), 600, "every message acked once");
    let last = *acked.iter().max().unwrap();
    let fallback = b.ws_url();
    let checks = receivers.into_iter().map(|(c, tok)| {
        let (fallback, general) = (fallback.clone(), general.clone());
        tokio::spawn(async move {
            let seen = receive_resilient(c, &fallback, &tok, &general, last).await;
            let mut seen: Vec<Value> = seen.into_iter().filter(|e| e["seq"].as_i64().unwrap() > first).collect();
            seen.sort_by_key(|e| e["seq"].as_i64());
            check_in_order(&seen, first + 1, last).unwrap_or_else(|e| panic!("{e}"));
        })
    });
    for c in futures::future::join_all(checks).await {
        c.unwrap();
    }
    // History has every acked message, and nothing twice.
    let rest = Rest::new(&b.http_url(), &token(&ws, "r1"));
    let mut stored = BTreeSet::new();
    let mut after = first;
    loop {
        let (_, page) = rest.get(&format!("/v1/channels/{general}/events?after={after}&limit=200")).await.unwrap();
        let events = page["events"].as_array().unwrap();
        for e in events {
            if e["kind"] == "message" {
                assert!(stored.insert(e["seq"].as_i64().unwrap()));
            }
        }
        match events.last() {
            Some(e) => after = e["seq"].as_i64().unwrap(),
            None => break,
        }
    }
    assert!(acked.is_subset(&stored), "acked but not stored: {:?}", acked.difference(&stored).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_redis_restart_mid_stream_every_acked_message_arrives() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "redis").await.unwrap();
    let mut redis = PrivateRedis::start().await.unwrap();
    let opts = fast(PodOptions { redis_url: Some(redis.url()), ..Default::default() });
    let a = Pod::start("pod-a", &svc, opts.clone()).await.unwrap();
    let b = Pod::start("pod-b", &svc, opts).await.unwrap();
    let tok = token(&ws, "bob");
    let bob = Client::connect(&b.ws_url(), &tok).await.unwrap();
    let general = bob.channel_id("general").unwrap();
    let first = bob.hello_channel(&general)["last_seq"].as_i64().unwrap();
    let mut alice = Client::connect(&a.ws_url(), &token(&ws, "alice")).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..200 {
        if i == 100 {
            redis.restart().await.unwrap();
        }
        let ack = alice.send_message(&general, &format!("m{i}"), "through a redis restart").await.unwrap();
        assert_eq!(ack["t"], "ack", "{ack}");
        acked.push(ack["seq"].as_i64().unwrap());
    }
    let last = *acked.last().unwrap();
    let mut seen = receive_resilient(bob, &b.ws_url(), &tok, &general, last).await;
    seen.retain(|e| e["seq"].as_i64().unwrap() > first);
    seen.sort_by_key(|e| e["seq"].as_i64());
    check_in_order(&seen, first + 1, last).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_broker_restart_mid_stream_kafka_gets_every_event() {
    let mut broker = PrivateBroker::start().await.unwrap();
    // A database of its own too: pods sweep every registered workspace, and the shared
    // registry holds other tests' workspaces whose topics live on the shared broker.
    let svc = Services { kafka_brokers: broker.brokers(), ..Services::from_env().private_database().await.unwrap() };
    let ws = new_workspace(&svc, "broker").await.unwrap();
    let a = Pod::start("pod-a", &svc, fast(PodOptions::default())).await.unwrap();
    let b = Pod::start("pod-b", &svc, fast(PodOptions::default())).await.unwrap();
    let tok = token(&ws, "bob");
    let bob = Client::connect(&b.ws_url(), &tok).await.unwrap();
    let general = bob.channel_id("general").unwrap();
    let mut alice = Client::connect(&a.ws_url(), &token(&ws, "alice")).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..150 {
        if i == 50 {
            broker.stop().await;
        }
        if i == 100 {
            // While the broker is down, rows stay in the outbox (Kafka did not confirm them).
            eventually(T, "outbox backlog while the broker is down", || async {
                (a.metric("palaver_outbox_backlog").await.ok()? > 0.0).then_some(())
            })
            .await
            .unwrap();
            broker.restart().await.unwrap();
        }
        // Kafka is not on the ack path: sends keep working while the broker is down.
        let ack = alice.send_message(&general, &format!("k{i}"), "through a broker restart").await.unwrap();
        assert_eq!(ack["t"], "ack", "{ack}");
        acked.push(ack["seq"].as_i64().unwrap());
    }
    let last = *acked.last().unwrap();
    receive_resilient(bob, &b.ws_url(), &tok, &general, last).await;

    // The outbox drains and the topic holds every message event (at least once).
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&svc.database_url).await.unwrap();
    let pending = format!("SELECT count(*) FROM {}.outbox", ws.schema());
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let n: i64 = sqlx::query_scalar(&pending).fetch_one(&mut db).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{n} outbox rows left after the broker came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(T, "backlog metric to clear", || async {
        (a.metric("palaver_outbox_backlog").await.ok()? == 0.0 && b.metric("palaver_outbox_backlog").await.ok()? == 0.0).then_some(())
    })
    .await
    .unwrap();
    let consumer = topic_reader(&broker.brokers(), &ws.events_topic(), 2).unwrap();
    let want: BTreeSet<i64> = acked.iter().copied().collect();
    let mut got = BTreeSet::new();
    let deadline = std::time::Instant::now() + T;
    while !want.is_subset(&got) && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            assert_eq!(m.key(), Some(v["channel"].as_str().unwrap().as_bytes()), "key = channel id");
            got.insert(v["seq"].as_i64().unwrap());
        }
    }
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(missing.is_empty(), "events missing from Kafka: {missing:?}");
    drop((a, b));
    svc.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_slow_consumer_is_closed_and_others_keep_receiving() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "slow").await.unwrap();
    let mut opts = fast(PodOptions::default());
    opts.env.push(("PALAVER_OUTBOUND_QUEUE".into(), "32".into()));
    let pod = Pod::start("pod-slow", &svc, opts).await.unwrap();
    let mut alice = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let mut bob = Client::connect(&pod.ws_url(), &token(&ws, "bob")).await.unwrap();
    let general = alice.channel_id("general").unwrap();

    // The slow client: a tiny receive buffer, and it never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(format!("127.0.0.1:{}", pod.port).parse().unwrap()).await.unwrap();
    let url = format!("{}?token={}", pod.ws_url(), token(&ws, "slowpoke"));
    let (mut slow, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    bob.request(json!({"t": "ping"})).await.unwrap();

    let rss_before = pod.rss_kib().unwrap();
    let text = "x".repeat(20_000);
    let mut last = 0;
    for i in 0..300 {
        last = alice.send_message(&general, &format!("big{i}"), &text).await.unwrap()["seq"].as_i64().unwrap();
    }
    // The fast reader got everything.
    bob.wait_seq(&general, last, T).await.unwrap();
    eventually(T, "slow consumer close", || async { (pod.metric("palaver_slow_consumer_closes_total").await.ok()? >= 1.0).then_some(()) })
        .await
        .unwrap();
    // Reading now drains what was buffered and ends with the documented close code.
    use futures::StreamExt;
    let code = tokio::time::timeout(T, async {
        while let Some(m) = slow.next().await {
            if let Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f))) = m {
                return Some(u16::from(f.code));
            }
            if m.is_err() {
                return None;
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(code, Some(4008));
    // Memory stayed bounded: 300 × 20 kB went by without the slow socket's backlog piling up.
    let rss_after = pod.rss_kib().unwrap();
    assert!(rss_after < rss_before + 64 * 1024, "pod RSS grew from {rss_before} to {rss_after} KiB");
    // And the slow client can resume.
    let mut again = Client::connect(&pod.ws_url(), &token(&ws, "slowpoke")).await.unwrap();
    again.send(json!({"t": "sync", "since": {general.clone(): last - 3}})).await.unwrap();
    again.wait_seq(&general, last, T).await.unwrap();
    assert_eq!(again.events(&general).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sigterm_closes_with_going_away_and_exits() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "term").await.unwrap();
    let mut pod = Pod::start("pod-term", &svc, PodOptions::default()).await.unwrap();
    let mut c = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    c.request(json!({"t": "ping"})).await.unwrap();
    let started = std::time::Instant::now();
    let status = pod.terminate().await.unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(12), "shutdown took {:?}", started.elapsed());
    let close = c.expect_close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(close.map(|c| c.0), Some(1001));
}

/// A client that pipelines many sends (and reads everything) is not a slow consumer: its own
/// events must go out between its requests instead of piling up behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_pipelined_sends_do_not_starve_the_senders_own_deliveries() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "pipe").await.unwrap();
    let mut opts = fast(PodOptions::default());
    opts.env.push(("PALAVER_OUTBOUND_QUEUE".into(), "16".into()));
    let pod = Pod::start("pod-pipe", &svc, opts).await.unwrap();
    let mut c = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let general = c.channel_id("general").unwrap();
    c.request(json!({"t": "ping"})).await.unwrap();
    const N: usize = 300;
    for i in 0..N {
        c.send(json!({"t": "send", "ref": format!("p{i}"), "channel": general, "cmid": format!("p{i}"), "text": "pipelined"}))
            .await
            .unwrap();
    }
    let last = c.expect(T, |f| f["ref"] == format!("p{}", N - 1).as_str()).await.unwrap();
    assert_eq!(last["t"], "ack", "{last}");
    c.wait_seq(&general, last["seq"].as_i64().unwrap(), T).await.unwrap();
    let acks = c.log.iter().filter(|f| f["t"] == "ack").count() + 1;
    assert_eq!(acks, N);
    assert_eq!(pod.metric("palaver_slow_consumer_closes_total").await.unwrap(), 0.0);
}
