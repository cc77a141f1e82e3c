//! Typing indicators (issue 9): Redis pub/sub only, to the other members' connections on every
//! pod, throttled per user and channel, off in large channels, never written to Postgres.

use std::time::Duration;

use palaver_e2e::{new_workspace, token, Client, Pod, PodOptions, Rest, Services};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(15);

/// Row counts and seqs of the workspace's tables: anything a write would change.
async fn db_footprint(db: &sqlx::PgPool, schema: &str) -> Vec<i64> {
    let sql = format!(
        "SELECT ARRAY[(SELECT count(*) FROM {schema}.events), (SELECT COALESCE(sum(last_seq), 0)::bigint FROM {schema}.channels), \
                (SELECT count(*) FROM {schema}.members), (SELECT count(*) FROM {schema}.notifications), \
                (SELECT COALESCE(sum(delivered_seq + read_seq), 0)::bigint FROM {schema}.members)]"
    );
    sqlx::query_scalar(&sql).fetch_one(db).await.unwrap()
}

/// Typing frames the client received before the event with `seq` (pub/sub keeps one publisher's
/// order, and the pod publishes typing and events through one Redis connection).
fn typing_before(c: &Client, channel: &str, seq: i64) -> Vec<Value> {
    let end = c.log.iter().position(|f| f["t"] == "event" && f["channel"] == channel && f["seq"] == seq).expect("event logged");
    c.log[..end].iter().filter(|f| f["t"] == "typing").cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_other_members_once_per_interval_and_never_postgres() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "typ").await.unwrap();
    let pod_a = Pod::start("pod-a", &svc, PodOptions::default()).await.unwrap();
    let pod_b = Pod::start("pod-b", &svc, PodOptions::default()).await.unwrap();
    let mut alice = Client::connect(&pod_a.ws_url(), &token(&ws, "alice")).await.unwrap();
    let mut alice2 = Client::connect(&pod_b.ws_url(), &token(&ws, "alice")).await.unwrap();
    let mut bob = Client::connect(&pod_b.ws_url(), &token(&ws, "bob")).await.unwrap();
    let mut carol = Client::connect(&pod_a.ws_url(), &token(&ws, "carol")).await.unwrap();
    let general = alice.channel_id("general").unwrap();
    let (_, ops) = Rest::new(&pod_a.http_url(), &token(&ws, "dave")).post("/v1/channels", json!({"name": "ops"})).await.unwrap();
    for c in [&mut alice, &mut alice2, &mut bob, &mut carol] {
        c.request(json!({"t": "ping"})).await.unwrap();
    }
    let db = sqlx::PgPool::connect(&svc.database_url).await.unwrap();
    let before = db_footprint(&db, &ws.schema()).await;

    // Three typing frames within the interval: one is forwarded.
    for _ in 0..3 {
        alice.send(json!({"t": "typing", "channel": general})).await.unwrap();
    }
    // Not a member: refused, and nothing is forwarded.
    let e = alice.request(json!({"t": "typing", "channel": ops["id"]})).await.unwrap();
    assert_eq!(e["code"], "not_found", "{e}");
    assert_eq!(db_footprint(&db, &ws.schema()).await, before, "typing wrote to Postgres");
    let mark = alice.send_message(&general, "mark", "done typing").await.unwrap()["seq"].as_i64().unwrap();
    for c in [&mut bob, &mut carol, &mut alice2] {
        c.wait_seq(&general, mark, T).await.unwrap();
    }
    for (who, c) in [("bob", &bob), ("carol", &carol)] {
        let typing = typing_before(c, &general, mark);
        assert_eq!(typing.len(), 1, "{who}: {typing:?}");
        assert_eq!((typing[0]["user"].as_str(), typing[0]["channel"].as_str()), (Some("alice"), Some(general.as_str())));
        assert!(typing[0]["ttl_ms"].as_u64().is_some_and(|t| t > 0));
    }
    assert!(typing_before(&alice2, &general, mark).is_empty(), "not to the typist's own connections");

    // In a thread, after the interval: forwarded again, with the thread.
    let root = alice.send_message(&general, "root", "root").await.unwrap()["id"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + T;
    let mark = loop {
        bob.send(json!({"t": "typing", "channel": general, "thread": root})).await.unwrap();
        let seq = bob.send_message(&general, &format!("m{}", deadline.elapsed().as_millis()), "x").await.unwrap()["seq"].as_i64().unwrap();
        alice.wait_seq(&general, seq, T).await.unwrap();
        if !typing_before(&alice, &general, seq).is_empty() {
            break seq;
        }
        assert!(tokio::time::Instant::now() < deadline, "bob's typing never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let t = typing_before(&alice, &general, mark);
    assert_eq!((t[0]["user"].as_str(), t[0]["thread"].as_str()), (Some("bob"), Some(root.as_str())), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_typing_in_channels_above_the_size_limit() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "typbig").await.unwrap();
    let opts = PodOptions { env: vec![("PALAVER_TYPING_MAX_MEMBERS".into(), "2".into())], ..Default::default() };
    let pod = Pod::start("pod-typbig", &svc, opts).await.unwrap();
    let mut alice = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let mut bob = Client::connect(&pod.ws_url(), &token(&ws, "bob")).await.unwrap();
    let general = alice.channel_id("general").unwrap();
    // A connection receives a channel's typing once it is live (after its first frame or sync).
    bob.request(json!({"t": "ping"})).await.unwrap();
    // Two members: at the limit, typing works.
    alice.send(json!({"t": "typing", "channel": general})).await.unwrap();
    let mark = alice.send_message(&general, "m1", "x").await.unwrap()["seq"].as_i64().unwrap();
    bob.wait_seq(&general, mark, T).await.unwrap();
    assert_eq!(typing_before(&bob, &general, mark).len(), 1);
    // A third member: above it, nothing is forwarded (bob types for the first time).
    let _carol = Client::connect(&pod.ws_url(), &token(&ws, "carol")).await.unwrap();
    bob.send(json!({"t": "typing", "channel": general})).await.unwrap();
    let mark2 = bob.send_message(&general, "m2", "x").await.unwrap()["seq"].as_i64().unwrap();
    alice.wait_seq(&general, mark2, T).await.unwrap();
    assert!(typing_before(&alice, &general, mark2).is_empty(), "{:?}", alice.log);
    assert!(pod.metric("palaver_typing_total{result=\"too_many_members\"}").await.unwrap() >= 1.0);
}

/// Waits for the next `presence` frame about `user` and returns its status.
async fn next_presence(c: &mut Client, user: &str) -> String {
    let f = c.expect(T, |f| f["t"] == "presence" && f["user"] == user).await.unwrap();
    f["status"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_transitions_reach_subscribers_and_a_reconnect_does_not_flap() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "pres").await.unwrap();
    let opts = PodOptions { env: vec![("PALAVER_OFFLINE_GRACE_MS".into(), "1500".into())], ..Default::default() };
    let pod_a = Pod::start("pod-a", &svc, opts.clone()).await.unwrap();
    let pod_b = Pod::start("pod-b", &svc, opts).await.unwrap();
    let mut carol = Client::connect(&pod_a.ws_url(), &token(&ws, "carol")).await.unwrap();
    carol.send(json!({"t": "presence_sub", "users": ["alice", "bob"]})).await.unwrap();
    assert_eq!(next_presence(&mut carol, "alice").await, "offline");
    assert_eq!(next_presence(&mut carol, "bob").await, "offline");
    // alice exists before the footprint is taken (her first connection creates and joins her).
    Rest::new(&pod_a.http_url(), &token(&ws, "alice")).get("/v1/channels").await.unwrap();
    let db = sqlx::PgPool::connect(&svc.database_url).await.unwrap();
    let before = db_footprint(&db, &ws.schema()).await;

    // Across pods: alice connects on the other one, says she is away, and back.
    let alice = Client::connect(&pod_b.ws_url(), &token(&ws, "alice")).await.unwrap();
    assert_eq!(next_presence(&mut carol, "alice").await, "online");
    let mut alice = alice;
    alice.send(json!({"t": "presence", "status": "away"})).await.unwrap();
    assert_eq!(next_presence(&mut carol, "alice").await, "away");
    alice.send(json!({"t": "presence", "status": "online"})).await.unwrap();
    assert_eq!(next_presence(&mut carol, "alice").await, "online");

    // A reconnect within the grace period is not a transition; leaving for good is, after it.
    alice.close().await.unwrap();
    let alice = Client::connect(&pod_a.ws_url(), &token(&ws, "alice")).await.unwrap();
    let left = std::time::Instant::now();
    alice.close().await.unwrap();
    assert_eq!(next_presence(&mut carol, "alice").await, "offline", "the reconnect flapped: {:?}", carol.log);
    assert!(left.elapsed() >= Duration::from_millis(1400), "offline before the grace: {:?}", left.elapsed());
    assert_eq!(db_footprint(&db, &ws.schema()).await, before, "presence wrote to Postgres");
    let rest = Rest::new(&pod_a.http_url(), &token(&ws, "carol"));
    let (s, body) = rest.get("/v1/presence?users=alice,bob").await.unwrap();
    assert_eq!(s, 200, "{body}");
    assert_eq!((body["presence"][0]["status"].as_str(), body["presence"][0]["last_seen"].is_string()), (Some("offline"), true), "{body}");
    assert_eq!((body["presence"][1]["user"].as_str(), body["presence"][1]["last_seen"].is_null()), (Some("bob"), true), "{body}");

    // Limits and bad input.
    let many: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
    let e = carol.request(json!({"t": "presence_sub", "users": many})).await.unwrap();
    assert_eq!(e["code"], "too_large", "{e}");
    let e = carol.request(json!({"t": "presence_sub", "users": ["bad user"]})).await.unwrap();
    assert_eq!(e["code"], "bad_request", "{e}");
    let e = carol.request(json!({"t": "presence", "status": "busy"})).await.unwrap();
    assert_eq!(e["code"], "bad_request", "{e}");
    let (s, e) = rest.get(&format!("/v1/presence?users={}", many.join(","))).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (413, Some("too_large")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactivity_makes_a_user_away_until_they_act() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "idle").await.unwrap();
    let opts = PodOptions { env: vec![("PALAVER_AWAY_AFTER_MS".into(), "600".into())], ..Default::default() };
    let pod = Pod::start("pod-idle", &svc, opts).await.unwrap();
    let mut carol = Client::connect(&pod.ws_url(), &token(&ws, "carol")).await.unwrap();
    carol.send(json!({"t": "presence_sub", "users": ["alice"]})).await.unwrap();
    assert_eq!(next_presence(&mut carol, "alice").await, "offline");
    let mut alice = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    assert_eq!(next_presence(&mut carol, "alice").await, "online");
    // Pings are not activity.
    alice.request(json!({"t": "ping"})).await.unwrap();
    assert_eq!(next_presence(&mut carol, "alice").await, "away");
    let general = alice.channel_id("general").unwrap();
    alice.send(json!({"t": "typing", "channel": general})).await.unwrap();
    assert_eq!(next_presence(&mut carol, "alice").await, "online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_in_small_channels_coalesce_and_list() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "rcpt").await.unwrap();
    let opts = PodOptions { env: vec![("PALAVER_RECEIPTS_MAX_MEMBERS".into(), "3".into())], ..Default::default() };
    let pod_a = Pod::start("pod-a", &svc, opts.clone()).await.unwrap();
    let pod_b = Pod::start("pod-b", &svc, opts).await.unwrap();
    let mut alice = Client::connect(&pod_a.ws_url(), &token(&ws, "alice")).await.unwrap();
    let mut bob = Client::connect(&pod_b.ws_url(), &token(&ws, "bob")).await.unwrap();
    let general = alice.channel_id("general").unwrap();
    bob.request(json!({"t": "ping"})).await.unwrap();
    let mut seqs = Vec::new();
    for i in 0..3 {
        seqs.push(alice.send_message(&general, &format!("m{i}"), "x").await.unwrap()["seq"].as_i64().unwrap());
    }
    bob.wait_seq(&general, seqs[2], T).await.unwrap();
    // Three reads within the interval: the first goes at once, the last one when it ends.
    for s in &seqs {
        bob.send(json!({"t": "read", "channel": general, "seq": s})).await.unwrap();
    }
    let first = alice.expect(T, |f| f["t"] == "receipt").await.unwrap();
    assert_eq!(
        (first["user"].as_str(), first["channel"].as_str(), first["seq"].as_i64()),
        (Some("bob"), Some(general.as_str()), Some(seqs[0]))
    );
    let last = alice.expect(T, |f| f["t"] == "receipt").await.unwrap();
    assert_eq!(last["seq"].as_i64(), Some(seqs[2]), "the held-back receipt carries the latest seq: {last}");
    let rest = Rest::new(&pod_a.http_url(), &token(&ws, "alice"));
    let (s, reads) = rest.get(&format!("/v1/channels/{general}/reads")).await.unwrap();
    assert_eq!(s, 200, "{reads}");
    let bob_read = reads["reads"].as_array().unwrap().iter().find(|r| r["user"] == "bob").unwrap()["seq"].as_i64();
    assert_eq!(bob_read, Some(seqs[2]), "{reads}");
    // Above the size: no receipts, and the list is refused.
    for u in ["carol", "dave"] {
        Rest::new(&pod_a.http_url(), &token(&ws, u)).get("/v1/channels").await.unwrap();
    }
    let (s, e) = rest.get(&format!("/v1/channels/{general}/reads")).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (403, Some("forbidden")), "{e}");
    // A private channel's receipts are invisible to non-members.
    let (_, secret) = rest.post("/v1/channels", json!({"name": "s", "kind": "private"})).await.unwrap();
    let (s, _) = Rest::new(&pod_a.http_url(), &token(&ws, "carol"))
        .get(&format!("/v1/channels/{}/reads", secret["id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(s, 404);
}
