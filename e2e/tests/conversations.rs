//! The message lifecycle (issue 9): edits, deletes and reactions are events of the channel's
//! sequence, over WebSocket and REST on two pods; history renders each message's current state,
//! and a client folding what it received (live or replayed) converges to exactly that.

use std::time::Duration;

use palaver_e2e::fold::{shown_from_rendered, Fold};
use palaver_e2e::{new_workspace, token, Client, Pod, PodOptions, Rest, Services};
use reqwest::Method;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(15);

fn msg_path(channel: &str, msg: &str) -> String {
    format!("/v1/channels/{channel}/messages/{msg}")
}

fn reaction_path(channel: &str, msg: &str, emoji: &str) -> String {
    let enc: String = form_urlencoded::byte_serialize(emoji.as_bytes()).collect();
    format!("{}/reactions/{}", msg_path(channel, msg), enc.replace('+', "%20"))
}

/// The whole channel as history renders it for `rest`'s user, oldest first.
async fn history(rest: &Rest, channel: &str) -> Vec<Value> {
    let (s, page) = rest.get(&format!("/v1/channels/{channel}/events?after=0&limit=200")).await.unwrap();
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["has_more"], false);
    page["events"].as_array().unwrap().clone()
}

fn find<'a>(events: &'a [Value], id: &str) -> &'a Value {
    events.iter().find(|e| e["id"] == id).unwrap_or_else(|| panic!("{id} not in history"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_react_delete_across_pods_over_ws_and_rest() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "life").await.unwrap();
    let pod_a = Pod::start("pod-a", &svc, PodOptions::default()).await.unwrap();
    let pod_b = Pod::start("pod-b", &svc, PodOptions::default()).await.unwrap();
    let mut alice = Client::connect(&pod_a.ws_url(), &token(&ws, "alice")).await.unwrap();
    let mut bob = Client::connect(&pod_b.ws_url(), &token(&ws, "bob")).await.unwrap();
    let bob_rest = Rest::new(&pod_b.http_url(), &token(&ws, "bob"));
    let alice_rest = Rest::new(&pod_a.http_url(), &token(&ws, "alice"));
    let general = alice.channel_id("general").unwrap();
    // Both are members before the first message (bob's hello joined him).
    let ack = alice.send_message(&general, "m1", "helo").await.unwrap();
    let (m1, m1_seq) = (ack["id"].as_str().unwrap().to_string(), ack["seq"].as_i64().unwrap());
    bob.wait_seq(&general, m1_seq, T).await.unwrap();

    // Edit over WS: only the author; the same text is a no-op; bob sees the edit event.
    let e = bob.request(json!({"t": "edit", "channel": general, "id": m1, "text": "mine now"})).await.unwrap();
    assert_eq!(e["code"], "forbidden", "{e}");
    let ack = alice.request(json!({"t": "edit", "channel": general, "id": m1, "text": "hello"})).await.unwrap();
    assert_eq!((ack["t"].as_str(), ack["id"].as_str()), (Some("ack"), Some(m1.as_str())), "{ack}");
    let edit_seq = ack["seq"].as_i64().unwrap();
    let noop = alice.request(json!({"t": "edit", "channel": general, "id": m1, "text": "hello"})).await.unwrap();
    assert_eq!((noop["noop"].as_bool(), noop.get("seq")), (Some(true), None), "{noop}");
    bob.wait_seq(&general, edit_seq, T).await.unwrap();
    let ev = bob.events(&general).into_iter().find(|e| e["seq"] == edit_seq).unwrap();
    assert_eq!((ev["kind"].as_str(), ev["target"].as_str(), ev["text"].as_str()), (Some("edit"), Some(m1.as_str()), Some("hello")));
    assert!(ev["edited_at"].is_string(), "{ev}");

    // Reactions over REST on pod B and WS on pod A; repeating one is a no-op.
    let (s, r) = bob_rest.send_json(Method::PUT, &reaction_path(&general, &m1, "👍"), json!({})).await.unwrap();
    assert_eq!(s, 200, "{r}");
    let thumbs_seq = r["seq"].as_i64().unwrap();
    let (_, again) = bob_rest.send_json(Method::PUT, &reaction_path(&general, &m1, "👍"), json!({})).await.unwrap();
    assert_eq!(again["noop"], true, "{again}");
    let ack = alice.request(json!({"t": "react", "channel": general, "id": m1, "emoji": "👍🏽"})).await.unwrap();
    let tone_seq = ack["seq"].as_i64().unwrap();
    let ack = alice.request(json!({"t": "react", "channel": general, "id": m1, "emoji": ":tada:"})).await.unwrap();
    let tada_seq = ack["seq"].as_i64().unwrap();
    let ack = alice.request(json!({"t": "unreact", "channel": general, "id": m1, "emoji": ":tada:"})).await.unwrap();
    let untada_seq = ack["seq"].as_i64().unwrap();
    assert!(thumbs_seq < tone_seq && tone_seq < tada_seq && tada_seq < untada_seq);
    alice.wait_seq(&general, untada_seq, T).await.unwrap();
    let kinds: Vec<String> =
        alice.events(&general).iter().filter(|e| e["seq"].as_i64() > Some(edit_seq)).map(|e| e["kind"].as_str().unwrap().into()).collect();
    assert_eq!(kinds, ["reaction_add", "reaction_add", "reaction_add", "reaction_remove"]);

    // History renders the current state, as each viewer sees it.
    let h = history(&alice_rest, &general).await;
    let m = find(&h, &m1);
    assert_eq!(
        (m["text"].as_str(), m["deleted"].as_bool(), m["state_seq"].as_i64()),
        (Some("hello"), Some(false), Some(untada_seq)),
        "{m}"
    );
    assert!(m["edited_at"].is_string());
    assert_eq!(
        m["reactions"],
        json!([{"emoji": "👍", "count": 1, "me": false, "users": ["bob"]}, {"emoji": "👍🏽", "count": 1, "me": true, "users": ["alice"]}])
    );
    let h_bob = history(&bob_rest, &general).await;
    assert_eq!(find(&h_bob, &m1)["reactions"][0]["me"], true, "me is the viewer's");
    let (_, edits) = bob_rest.get(&format!("{}/edits", msg_path(&general, &m1))).await.unwrap();
    assert_eq!(edits["edits"].as_array().unwrap().len(), 1, "{edits}");
    assert_eq!(edits["edits"][0]["old_text"], "helo");

    // Delete: not bob's to delete; alice's tombstone purges text, edit text and reactions.
    let (s, e) = bob_rest.call(Method::DELETE, &msg_path(&general, &m1)).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (403, Some("forbidden")), "{e}");
    let ack = alice.request(json!({"t": "delete", "channel": general, "id": m1})).await.unwrap();
    let del_seq = ack["seq"].as_i64().unwrap();
    let (s, again) = alice_rest.call(Method::DELETE, &msg_path(&general, &m1)).await.unwrap();
    assert_eq!((s, again["noop"].as_bool()), (200, Some(true)), "deleting again is a no-op success: {again}");
    bob.wait_seq(&general, del_seq, T).await.unwrap();
    let h = history(&bob_rest, &general).await;
    let m = find(&h, &m1);
    assert_eq!((m["text"].is_null(), m["deleted"].as_bool(), m["reactions"].clone()), (true, Some(true), json!([])), "{m}");
    let edit_ev = h.iter().find(|e| e["seq"] == edit_seq).unwrap();
    assert!(edit_ev["text"].is_null(), "the edit event's text is purged too: {edit_ev}");
    let (_, edits) = bob_rest.get(&format!("{}/edits", msg_path(&general, &m1))).await.unwrap();
    assert_eq!(edits["edits"], json!([]));
    for f in [
        json!({"t": "edit", "channel": general, "id": m1, "text": "zombie"}),
        json!({"t": "react", "channel": general, "id": m1, "emoji": "👍"}),
    ] {
        assert_eq!(alice.request(f.clone()).await.unwrap()["code"], "not_found", "{f}");
    }

    // What both clients folded from the live events equals history.
    for (c, rest) in [(&alice, &alice_rest), (&bob, &bob_rest)] {
        let mut fold = Fold::default();
        for e in c.events(&general) {
            fold.apply(&e);
        }
        for e in history(rest, &general).await.iter().filter(|e| e["kind"] == "message") {
            assert_eq!(fold.messages.get(e["id"].as_str().unwrap()), Some(&shown_from_rendered(e)), "{e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_changes_get_documented_errors_and_store_nothing() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "badc").await.unwrap();
    let pod = Pod::start("pod-badc", &svc, PodOptions::default()).await.unwrap();
    let mut alice = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let alice_rest = Rest::new(&pod.http_url(), &token(&ws, "alice"));
    let carol = Rest::new(&pod.http_url(), &token(&ws, "carol"));
    carol.get("/v1/channels").await.unwrap(); // her first request joins #general
    let general = alice.channel_id("general").unwrap();
    let m1 = alice.send_message(&general, "m1", "hi").await.unwrap()["id"].as_str().unwrap().to_string();
    let (_, ops) = alice_rest.post("/v1/channels", json!({"name": "ops"})).await.unwrap();
    let ops = ops["id"].as_str().unwrap().to_string();
    let (_, secret) = alice_rest.post("/v1/channels", json!({"name": "secret", "kind": "private"})).await.unwrap();
    let secret = secret["id"].as_str().unwrap().to_string();
    let ops_msg = alice_rest.post(&format!("/v1/channels/{ops}/messages"), json!({"cmid": "o1", "text": "ops"})).await.unwrap().1;
    let secret_msg = alice_rest.post(&format!("/v1/channels/{secret}/messages"), json!({"cmid": "s1", "text": "psst"})).await.unwrap().1;
    let h = history(&alice_rest, &general).await;
    let join_id = h.iter().find(|e| e["kind"] == "member_join").unwrap()["id"].as_str().unwrap().to_string();
    let before = h.last().unwrap()["seq"].as_i64().unwrap();

    let frames = [
        (json!({"t": "react", "channel": general, "id": m1, "emoji": "x"}), "bad_request"),
        (json!({"t": "react", "channel": general, "id": m1, "emoji": ":Bad Code:"}), "bad_request"),
        (json!({"t": "edit", "channel": general, "id": m1, "text": "  "}), "bad_request"),
        (json!({"t": "edit", "channel": general, "id": m1, "text": "a\u{0}"}), "bad_request"),
        (json!({"t": "edit", "channel": general, "id": m1, "text": "a".repeat(40_001)}), "too_large"),
        (json!({"t": "edit", "channel": general, "id": "m_0000000000000000", "text": "x"}), "not_found"),
        (json!({"t": "react", "channel": general, "id": join_id, "emoji": "👍"}), "not_found"),
        (json!({"t": "delete", "channel": general, "id": ops_msg["id"]}), "not_found"),
        (json!({"t": "delete", "channel": general, "id": "../x"}), "bad_request"),
        (json!({"t": "edit", "channel": general, "id": m1}), "bad_request"),
    ];
    for (f, code) in &frames {
        let e = alice.request(f.clone()).await.unwrap();
        assert_eq!(e["code"], *code, "{f:.100} → {e}");
    }
    // Carol is in neither ops (public) nor secret (private): forbidden, and not_found.
    let (s, e) = carol.send_json(Method::PUT, &reaction_path(&ops, ops_msg["id"].as_str().unwrap(), "👍"), json!({})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (403, Some("forbidden")), "{e}");
    let (s, e) = carol.send_json(Method::PUT, &reaction_path(&secret, secret_msg["id"].as_str().unwrap(), "👍"), json!({})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (404, Some("not_found")), "{e}");
    let (s, e) = carol.get(&format!("{}/edits", msg_path(&secret, secret_msg["id"].as_str().unwrap()))).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (404, Some("not_found")), "{e}");
    let (s, e) = alice_rest.send_json(Method::PATCH, &msg_path(&general, &m1), json!({"text": "x", "extra": 1})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "{e}");
    assert_eq!(history(&alice_rest, &general).await.last().unwrap()["seq"].as_i64().unwrap(), before, "nothing stored");

    // At most 50 distinct emoji per message; more users on a known emoji are fine.
    let codes: Vec<String> = (0..50).map(|i| format!(":e{i}:")).collect();
    for c in &codes {
        let ack = alice.request(json!({"t": "react", "channel": general, "id": m1, "emoji": c})).await.unwrap();
        assert_eq!(ack["t"], "ack", "{ack}");
    }
    let e = alice.request(json!({"t": "react", "channel": general, "id": m1, "emoji": ":one-too-many:"})).await.unwrap();
    assert_eq!(e["code"], "conflict", "{e}");
    let (s, r) = carol.send_json(Method::PUT, &reaction_path(&general, &m1, ":e0:"), json!({})).await.unwrap();
    assert_eq!(s, 200, "{r}");
    assert_eq!(alice.request(json!({"t": "ping"})).await.unwrap()["t"], "pong", "the connection stayed up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_and_admins_delete_any_message() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "mod").await.unwrap();
    let pod = Pod::start("pod-mod", &svc, PodOptions::default()).await.unwrap();
    let alice = Rest::new(&pod.http_url(), &token(&ws, "alice"));
    let admin = Rest::new(&pod.http_url(), &token(&ws, "mia"));
    admin.get("/v1/channels").await.unwrap();
    let (_, ops) = alice.post("/v1/channels", json!({"name": "ops"})).await.unwrap();
    let ops = ops["id"].as_str().unwrap();
    let (_, m) = alice.post(&format!("/v1/channels/{ops}/messages"), json!({"cmid": "a1", "text": "oops"})).await.unwrap();
    let m = m["id"].as_str().unwrap();
    let (s, e) = admin.call(Method::DELETE, &msg_path(ops, m)).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (403, Some("forbidden")), "a member may not: {e}");
    let db = sqlx::PgPool::connect(&svc.database_url).await.unwrap();
    sqlx::query(&format!("UPDATE {}.users SET role = 'admin' WHERE id = 'mia'", ws.schema())).execute(&db).await.unwrap();
    // An admin moderates public channels they have not joined.
    let (s, r) = admin.call(Method::DELETE, &msg_path(ops, m)).await.unwrap();
    assert_eq!((s, r["seq"].is_i64()), (200, true), "{r}");
    let h = history(&alice, ops).await;
    assert_eq!(find(&h, m)["deleted"], true);
    assert_eq!(h.last().unwrap()["user"], "mia", "the delete event names who deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_was_away_converges_by_replay() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "conv").await.unwrap();
    let pod_a = Pod::start("pod-a", &svc, PodOptions::default()).await.unwrap();
    let pod_b = Pod::start("pod-b", &svc, PodOptions::default()).await.unwrap();
    let users = ["ann", "ben", "cat"];
    let pods = [&pod_a, &pod_b, &pod_b];
    let mut clients = Vec::new();
    for (u, pod) in users.iter().zip(pods) {
        clients.push(Some(Client::connect(&pod.ws_url(), &token(&ws, u)).await.unwrap()));
    }
    let general = clients[0].as_ref().unwrap().channel_id("general").unwrap();
    let mut folds: Vec<Fold> = vec![Fold::default(); users.len()];
    let mut messages: Vec<String> = Vec::new();
    // A fixed pseudo-random mix (an LCG), so a failure replays the same way.
    let mut x: u64 = 0x5eed;
    let mut next = |n: usize| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((x >> 33) % n as u64) as usize
    };
    let emoji = ["👍", "🎉", ":ship-it:"];
    for step in 0..150 {
        if step == 50 {
            // Cat goes away (her folded state is what she received), and comes back at 100
            // on the other pod with `sync` from the last seq she holds.
            let cat = clients[2].take().unwrap();
            cat.events(&general).iter().for_each(|e| folds[2].apply(e));
            cat.close().await.unwrap();
        }
        if step == 100 {
            let held = folds[2].last_seq();
            let mut cat = Client::connect(&pod_a.ws_url(), &token(&ws, "cat")).await.unwrap();
            cat.send(json!({"t": "sync", "since": {general.clone(): held}})).await.unwrap();
            clients[2] = Some(cat);
        }
        let who = next(3);
        let Some(c) = clients[who].as_mut() else { continue };
        let op = if messages.is_empty() { 0 } else { next(10) };
        let target = if messages.is_empty() { String::new() } else { messages[next(messages.len())].clone() };
        let frame = match op {
            0..=3 => json!({"t": "send", "channel": general, "cmid": format!("s{step}"), "text": format!("msg {step}")}),
            4 | 5 => json!({"t": "edit", "channel": general, "id": target, "text": format!("edit {step}")}),
            6 => json!({"t": "delete", "channel": general, "id": target}),
            n => json!({"t": if n % 2 == 0 { "react" } else { "unreact" }, "channel": general, "id": target, "emoji": emoji[next(3)]}),
        };
        let reply = c.request(frame.clone()).await.unwrap();
        match (reply["t"].as_str(), reply["code"].as_str()) {
            (Some("ack"), _) if op <= 3 => messages.push(reply["id"].as_str().unwrap().to_string()),
            (Some("ack"), _) => {}
            // Not the author, or the message was deleted meanwhile.
            (Some("error"), Some("forbidden" | "not_found")) if op > 3 => {}
            _ => panic!("{frame} → {reply}"),
        }
    }
    let rest = Rest::new(&pod_b.http_url(), &token(&ws, "ann"));
    let end = history(&rest, &general).await.last().unwrap()["seq"].as_i64().unwrap();
    for (i, c) in clients.iter_mut().enumerate() {
        let c = c.as_mut().unwrap();
        c.wait_seq(&general, end, T).await.unwrap();
        c.events(&general).iter().for_each(|e| folds[i].apply(e));
    }
    for (i, u) in users.iter().enumerate() {
        let rest = Rest::new(&pod_a.http_url(), &token(&ws, u));
        let want: std::collections::BTreeMap<String, _> = history(&rest, &general)
            .await
            .iter()
            .filter(|e| e["kind"] == "message")
            .map(|e| (e["id"].as_str().unwrap().to_string(), shown_from_rendered(e)))
            .collect();
        assert_eq!(folds[i].messages, want, "{u}'s folded state differs from history");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_that_add_mentions_and_thread_replies_notify_once() {
    // Consumers subscribe to every registered workspace: a database and a group of its own.
    let svc = Services::from_env().private_database().await.unwrap();
    let ws = new_workspace(&svc, "edmen").await.unwrap();
    let group = format!("test-{}", uuid::Uuid::new_v4().simple());
    let opts = PodOptions { consumers: true, env: vec![("PALAVER_CONSUMER_GROUP".into(), group)], ..Default::default() };
    let pod = Pod::start("pod-edmen", &svc, opts).await.unwrap();
    let bob = Rest::new(&pod.http_url(), &token(&ws, "bob"));
    bob.get("/v1/channels").await.unwrap(); // bob exists and has no connection: offline
    let mut alice = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let general = alice.channel_id("general").unwrap();
    let first = alice.send_message(&general, "e1", "hi").await.unwrap();
    for text in ["hi @bob", "hi @bob, again"] {
        let ack = alice.request(json!({"t": "edit", "channel": general, "id": first["id"], "text": text})).await.unwrap();
        assert_eq!(ack["t"], "ack", "{ack}");
    }
    // A reply notifies the thread's followers who are offline: bob follows his own root.
    let (_, root) = bob.post(&format!("/v1/channels/{general}/messages"), json!({"cmid": "b1", "text": "a thread"})).await.unwrap();
    let reply =
        alice.request(json!({"t": "send", "channel": general, "cmid": "e3", "text": "a reply", "thread": root["id"]})).await.unwrap();
    // Events of a channel are processed in order: once the sentinel notified, the rest were.
    let sentinel = alice.send_message(&general, "e2", "@bob sentinel").await.unwrap();
    let inbox = palaver_e2e::eventually(Duration::from_secs(90), "the sentinel in bob's inbox", || async {
        let (_, body) = bob.get("/v1/notifications").await.unwrap();
        let items: Vec<(i64, String)> = body["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["seq"].as_i64().unwrap(), n["kind"].as_str().unwrap().to_string()))
            .collect();
        items.iter().any(|(s, _)| Some(*s) == sentinel["seq"].as_i64()).then_some(items)
    })
    .await
    .unwrap();
    let want = [
        (sentinel["seq"].as_i64().unwrap(), "mention"),
        (reply["seq"].as_i64().unwrap(), "thread"),
        (first["seq"].as_i64().unwrap(), "mention"),
    ];
    let want: Vec<(i64, String)> = want.iter().map(|(s, k)| (*s, k.to_string())).collect();
    assert_eq!(inbox, want, "one entry per message (edits as of the message's own seq), newest first");
    svc.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_summaries_pages_following_and_read_cursors() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "thrd").await.unwrap();
    let pod_a = Pod::start("pod-a", &svc, PodOptions::default()).await.unwrap();
    let pod_b = Pod::start("pod-b", &svc, PodOptions::default()).await.unwrap();
    let rest = |pod: &Pod, u: &str| Rest::new(&pod.http_url(), &token(&ws, u));
    let (alice, carol, dave) = (rest(&pod_a, "alice"), rest(&pod_b, "carol"), rest(&pod_b, "dave"));
    for r in [&alice, &carol, &dave] {
        r.get("/v1/channels").await.unwrap();
    }
    let mut bob = Client::connect(&pod_b.ws_url(), &token(&ws, "bob")).await.unwrap();
    let general = bob.channel_id("general").unwrap();
    let random = bob.channel_id("random").unwrap();
    let post = |r: &Rest, body: Value| {
        let path = format!("/v1/channels/{general}/messages");
        let r = r.clone();
        async move { r.post(&path, body).await.unwrap() }
    };
    let (_, root) = post(&alice, json!({"cmid": "root", "text": "a question"})).await;
    let root_id = root["id"].as_str().unwrap().to_string();
    let r1 = bob.request(json!({"t": "send", "channel": general, "cmid": "r1", "text": "answer", "thread": root_id})).await.unwrap();
    assert_eq!(r1["t"], "ack", "{r1}");
    let (s, r2) = post(&carol, json!({"cmid": "r2", "text": "also", "thread": root_id, "also_channel": true})).await;
    assert_eq!(s, 201, "{r2}");
    // A reply to a reply attaches to the root.
    let r3 = bob.request(json!({"t": "send", "channel": general, "cmid": "r3", "text": "re", "thread": r2["id"]})).await.unwrap();
    bob.wait_seq(&general, r3["seq"].as_i64().unwrap(), T).await.unwrap();
    let ev = bob.events(&general).into_iter().find(|e| e["seq"] == r3["seq"]).unwrap();
    assert_eq!(ev["thread"], root_id.as_str(), "{ev}");
    let ev = bob.events(&general).into_iter().find(|e| e["seq"] == r2["seq"]).unwrap();
    assert_eq!(ev["also_channel"], true, "{ev}");

    // Bad replies: not a message of this channel, also_channel alone.
    let (_, page) = alice.get(&format!("/v1/channels/{random}/events?after=0")).await.unwrap();
    let elsewhere = page["events"][0]["id"].as_str().unwrap().to_string();
    let (_, other) = alice.post(&format!("/v1/channels/{random}/messages"), json!({"cmid": "o", "text": "x"})).await.unwrap();
    for (body, code) in [
        (json!({"cmid": "b1", "text": "x", "thread": other["id"]}), "not_found"),
        (json!({"cmid": "b2", "text": "x", "thread": elsewhere}), "not_found"),
        (json!({"cmid": "b3", "text": "x", "also_channel": true}), "bad_request"),
    ] {
        let (_, e) = post(&alice, body.clone()).await;
        assert_eq!(e["code"], code, "{body} → {e}");
    }

    // The thread page: the root rendered with its summary, replies in order, cursor paging.
    let path = format!("/v1/channels/{general}/threads/{root_id}");
    let (s, p1) = dave.get(&format!("{path}?limit=2")).await.unwrap();
    assert_eq!(s, 200, "{p1}");
    let r = &p1["root"];
    assert_eq!((r["reply_count"].as_i64(), r["reply_users_count"].as_i64()), (Some(3), Some(2)), "{r}");
    assert_eq!(r["reply_users"], json!(["bob", "carol"]));
    assert_eq!(r["state_seq"], r3["seq"], "a reply changes its root");
    let seqs = |p: &Value| p["replies"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(seqs(&p1), [r1["seq"].as_i64().unwrap(), r2["seq"].as_i64().unwrap()]);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = dave.get(&format!("{path}?limit=2&cursor={cursor}")).await.unwrap();
    assert_eq!((seqs(&p2), p2["next_cursor"].is_null(), p2["root"].is_null()), (vec![r3["seq"].as_i64().unwrap()], true, true));
    let (s, e) = dave.get(&format!("{path}?cursor=nope")).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")));

    // Following: the root's author and the repliers; unread replies by others.
    let threads = |r: &Rest| {
        let r = r.clone();
        async move {
            let (s, b) = r.get("/v1/threads").await.unwrap();
            assert_eq!(s, 200, "{b}");
            b["threads"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t["root"].as_str().unwrap().to_string(), t["unread"].as_i64().unwrap()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(threads(&alice).await, [(root_id.clone(), 3)]);
    assert_eq!(threads(&carol).await, [(root_id.clone(), 1)], "bob's reply after hers");
    assert!(threads(&dave).await.is_empty(), "dave only read it");
    bob.send(json!({"t": "read", "channel": general, "thread": root_id, "seq": r3["seq"]})).await.unwrap();
    let (s, _) = alice.post(&format!("{path}/read"), json!({"seq": r3["seq"]})).await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(threads(&alice).await, [(root_id.clone(), 0)]);
    let (s, _) = carol.call(Method::DELETE, &format!("{path}/follow")).await.unwrap();
    assert_eq!(s, 200);
    assert!(threads(&carol).await.is_empty());
    let (s, _) = dave.send_json(Method::PUT, &format!("{path}/follow"), json!({})).await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(threads(&dave).await, [(root_id.clone(), 3)]);

    // A deleted root keeps its replies and takes no more.
    let (s, _) = alice.call(Method::DELETE, &msg_path(&general, &root_id)).await.unwrap();
    assert_eq!(s, 200);
    let (_, e) = post(&carol, json!({"cmid": "late", "text": "x", "thread": root_id})).await;
    assert_eq!(e["code"], "not_found", "{e}");
    let (_, p) = dave.get(&path).await.unwrap();
    assert_eq!((p["root"]["deleted"].as_bool(), seqs(&p).len()), (Some(true), 3));
    // Someone outside a private channel sees no thread in it.
    let (_, secret) = alice.post("/v1/channels", json!({"name": "secret", "kind": "private"})).await.unwrap();
    let (_, m) =
        alice.post(&format!("/v1/channels/{}/messages", secret["id"].as_str().unwrap()), json!({"cmid": "s", "text": "s"})).await.unwrap();
    let (s, _) = dave.get(&format!("/v1/channels/{}/threads/{}", secret["id"].as_str().unwrap(), m["id"].as_str().unwrap())).await.unwrap();
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_settings_archive_browse_members_and_removal() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "chan").await.unwrap();
    // alice and carol on pod A, bob (socket and REST) on pod B: every change crosses pods.
    let pod_a = Pod::start("pod-a", &svc, PodOptions::default()).await.unwrap();
    let pod_b = Pod::start("pod-b", &svc, PodOptions::default()).await.unwrap();
    let rest = |u: &str| Rest::new(&pod_a.http_url(), &token(&ws, u));
    let (alice, carol) = (rest("alice"), rest("carol"));
    carol.get("/v1/channels").await.unwrap();
    let (_, design) = alice.post("/v1/channels", json!({"name": "design"})).await.unwrap();
    let id = design["id"].as_str().unwrap().to_string();
    let mut bob = Client::connect(&pod_b.ws_url(), &token(&ws, "bob")).await.unwrap();
    let bob_rest = Rest::new(&pod_b.http_url(), &token(&ws, "bob"));
    bob_rest.post(&format!("/v1/channels/{id}/join"), json!({})).await.unwrap();
    bob.request(json!({"t": "ping"})).await.unwrap();
    let path = format!("/v1/channels/{id}");

    // Topic by any member; rename and archive only by the creator (or an admin).
    let (s, r) = bob_rest.send_json(Method::PATCH, &path, json!({"topic": "pixels"})).await.unwrap();
    assert_eq!((s, r["changes"].clone()), (200, json!({"topic": "pixels"})), "{r}");
    let topic_seq = r["seq"].as_i64().unwrap();
    bob.wait_seq(&id, topic_seq, T).await.unwrap();
    let ev = bob.events(&id).into_iter().find(|e| e["seq"] == topic_seq).unwrap();
    assert_eq!((ev["kind"].as_str(), ev["changes"]["topic"].as_str()), (Some("channel_update"), Some("pixels")), "{ev}");
    let (_, noop) = bob_rest.send_json(Method::PATCH, &path, json!({"topic": "pixels"})).await.unwrap();
    assert_eq!(noop["noop"], true, "{noop}");
    for (body, status, code) in [
        (json!({"name": "mine"}), 403, "forbidden"),
        (json!({"archived": true}), 403, "forbidden"),
        (json!({"topic": "a\u{0}"}), 400, "bad_request"),
        (json!({"topic": "x".repeat(251)}), 413, "too_large"),
        (json!({"name": "Bad Name"}), 400, "bad_request"),
        (json!({"color": "red"}), 400, "bad_request"),
    ] {
        let (s, e) = bob_rest.send_json(Method::PATCH, &path, body.clone()).await.unwrap();
        assert_eq!((s, e["code"].as_str()), (status, Some(code)), "{body} → {e}");
    }
    let (s, e) = alice.send_json(Method::PATCH, &path, json!({"name": "general"})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (409, Some("conflict")), "{e}");
    let (s, _) = alice.send_json(Method::PATCH, &path, json!({"name": "design-2", "purpose": "UI work"})).await.unwrap();
    assert_eq!(s, 200);
    let (_, details) = carol.get(&path).await.unwrap();
    assert_eq!(
        (details["name"].as_str(), details["topic"].as_str(), details["purpose"].as_str(), details["member_count"].as_i64()),
        (Some("design-2"), Some("pixels"), Some("UI work"), Some(2)),
        "{details}"
    );
    // The rename made on pod A reaches bob's socket on pod B as its own event.
    let rename = bob.expect(T, |f| f["t"] == "event" && f["kind"] == "channel_update" && f["changes"]["name"] == "design-2").await.unwrap();
    assert_eq!(rename["changes"], json!({"name": "design-2", "purpose": "UI work"}), "{rename}");

    // Archived: no sends, edits or reactions; history stays readable; unarchive restores.
    let m = bob.send_message(&id, "pre", "before").await.unwrap();
    let (s, _) = alice.send_json(Method::PATCH, &path, json!({"archived": true})).await.unwrap();
    assert_eq!(s, 200);
    for f in [
        json!({"t": "send", "channel": id, "cmid": "arch", "text": "x"}),
        json!({"t": "edit", "channel": id, "id": m["id"], "text": "y"}),
        json!({"t": "react", "channel": id, "id": m["id"], "emoji": "👍"}),
        json!({"t": "send", "channel": id, "cmid": "arch2", "text": "x", "thread": m["id"]}),
    ] {
        let e = bob.request(f.clone()).await.unwrap();
        assert_eq!(e["code"], "forbidden", "{f} → {e}");
    }
    let (s, e) = bob_rest.post(&format!("{path}/messages"), json!({"cmid": "arch3", "text": "x"})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (403, Some("forbidden")), "{e}");
    assert_eq!(history(&carol, &id).await.iter().filter(|e| e["kind"] == "message").count(), 1);
    alice.send_json(Method::PATCH, &path, json!({"archived": false})).await.unwrap();
    assert_eq!(bob.send_message(&id, "post", "after").await.unwrap()["t"], "ack");

    // The browser: public channels by name, paged, with member counts; private ones hidden.
    alice.post("/v1/channels", json!({"name": "hush", "kind": "private"})).await.unwrap();
    let (s, p1) = carol.get("/v1/channels?scope=public&limit=2").await.unwrap();
    assert_eq!(s, 200, "{p1}");
    let names = |p: &Value| p["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(names(&p1), ["design-2", "general"]);
    let (_, p2) = carol.get(&format!("/v1/channels?scope=public&limit=2&cursor={}", p1["next_cursor"].as_str().unwrap())).await.unwrap();
    assert_eq!((names(&p2), p2["next_cursor"].is_null()), (vec!["random".to_string()], true));
    let (s, _) = carol.get("/v1/channels?scope=everything").await.unwrap();
    assert_eq!(s, 400);

    // Members, paged; removal by the creator only; the removed member's connection is told.
    let (_, m1) = carol.get(&format!("{path}/members?limit=1")).await.unwrap();
    assert_eq!(m1["members"], json!(["alice"]));
    let (_, m2) = carol.get(&format!("{path}/members?limit=1&cursor=alice")).await.unwrap();
    assert_eq!((m2["members"].clone(), m2["next_cursor"].is_null()), (json!(["bob"]), true));
    let (s, e) = bob_rest.call(Method::DELETE, &format!("{path}/members/alice")).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (403, Some("forbidden")), "{e}");
    let (s, r) = alice.call(Method::DELETE, &format!("{path}/members/bob")).await.unwrap();
    assert_eq!((s, r["removed"].as_bool()), (200, Some(true)), "{r}");
    let leave = bob.expect(T, |f| f["t"] == "event" && f["channel"] == id && f["kind"] == "member_leave").await.unwrap();
    assert_eq!((leave["user"].as_str(), leave["text"].as_str()), (Some("bob"), Some("removed by alice")), "{leave}");
    let (_, details) = alice.get(&path).await.unwrap();
    assert_eq!(details["member_count"], 1);
    let e = bob.send_message(&id, "gone", "x").await.unwrap();
    assert_eq!(e["code"], "forbidden", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_come_from_token_claims_and_are_searchable() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "ppl").await.unwrap();
    // Profiles are written through pod A (ada over REST, grace over WebSocket); bob reads on pod B.
    let pod = Pod::start("pod-a", &svc, PodOptions::default()).await.unwrap();
    let pod_b = Pod::start("pod-b", &svc, PodOptions::default()).await.unwrap();
    let ada = Rest::new(&pod.http_url(), &palaver_e2e::token_with_profile(&ws, "ada", "Ada Lovelace", "https://img.example/ada.png"));
    ada.get("/v1/channels").await.unwrap();
    Client::connect(&pod.ws_url(), &palaver_e2e::token_with_profile(&ws, "grace", "Grace Hopper", "javascript:alert(1)"))
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let bob = Rest::new(&pod_b.http_url(), &token(&ws, "bob"));
    let (s, u) = bob.get("/v1/users/ada").await.unwrap();
    assert_eq!(
        (s, u["display_name"].as_str(), u["avatar_url"].as_str()),
        (200, Some("Ada Lovelace"), Some("https://img.example/ada.png")),
        "{u}"
    );
    let (_, g) = bob.get("/v1/users/grace").await.unwrap();
    assert!(g["avatar_url"].is_null(), "a bad picture claim is not stored: {g}");
    // A new name in a later token is stored; a token without the claims keeps it.
    let ada2 = Rest::new(&pod.http_url(), &palaver_e2e::token_with_profile(&ws, "ada", "Ada King", "https://img.example/ada.png"));
    ada2.get("/v1/channels").await.unwrap();
    Rest::new(&pod.http_url(), &token(&ws, "ada")).get("/v1/channels").await.unwrap();
    assert_eq!(bob.get("/v1/users/ada").await.unwrap().1["display_name"], "Ada King");

    // Search by a prefix of the id or the name, any case; paged by id.
    let ids = |b: &Value| b["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&bob.get("/v1/users?q=GRA").await.unwrap().1), ["grace"]);
    assert_eq!(ids(&bob.get("/v1/users?q=ada%20k").await.unwrap().1), ["ada"]);
    assert!(ids(&bob.get("/v1/users?q=%25").await.unwrap().1).is_empty(), "% matches literally");
    let (_, p1) = bob.get("/v1/users?limit=2").await.unwrap();
    assert_eq!(ids(&p1), ["ada", "bob"]);
    let (_, p2) = bob.get(&format!("/v1/users?limit=2&cursor={}", p1["next_cursor"].as_str().unwrap())).await.unwrap();
    assert_eq!((ids(&p2), p2["next_cursor"].is_null()), (vec!["grace".to_string()], true));
    let (s, _) = bob.get("/v1/users/nobody").await.unwrap();
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn here_and_channel_mentions_notify_and_are_limited_in_large_channels() {
    let svc = Services::from_env().private_database().await.unwrap();
    let ws = new_workspace(&svc, "bcast").await.unwrap();
    let group = format!("test-{}", uuid::Uuid::new_v4().simple());
    let env = vec![("PALAVER_CONSUMER_GROUP".into(), group), ("PALAVER_BROADCAST_MENTION_MAX_MEMBERS".into(), "3".into())];
    let pod = Pod::start("pod-bcast", &svc, PodOptions { consumers: true, env, ..Default::default() }).await.unwrap();
    let offline = Rest::new(&pod.http_url(), &token(&ws, "olga"));
    offline.get("/v1/channels").await.unwrap();
    let mut online = Client::connect(&pod.ws_url(), &token(&ws, "otto")).await.unwrap();
    online.request(json!({"t": "ping"})).await.unwrap();
    let mut alice = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let general = alice.channel_id("general").unwrap();
    // Three members: within the limit.
    let here = alice.send_message(&general, "h1", "@here standup").await.unwrap();
    assert_eq!(here["t"], "ack", "{here}");
    // @here: otto, online, gets a notification; olga, offline, does not.
    let n = online.expect(Duration::from_secs(90), |f| f["t"] == "notification").await.unwrap();
    assert_eq!((n["kind"].as_str(), n["seq"].as_i64()), (Some("mention"), here["seq"].as_i64()), "{n}");
    // @channel: every member, so olga (offline) gets an inbox entry.
    let everyone = alice.send_message(&general, "c1", "@channel release").await.unwrap();
    let inbox = palaver_e2e::eventually(Duration::from_secs(90), "olga's @channel entry", || async {
        let (_, b) = offline.get("/v1/notifications").await.unwrap();
        let seqs: Vec<i64> = b["notifications"].as_array().unwrap().iter().map(|n| n["seq"].as_i64().unwrap()).collect();
        (!seqs.is_empty()).then_some(seqs)
    })
    .await
    .unwrap();
    assert_eq!(inbox, [everyone["seq"].as_i64().unwrap()], "olga: @channel, not @here");
    // A fourth member: above the limit, refused for members (sends and edits), allowed for admins.
    Rest::new(&pod.http_url(), &token(&ws, "zed")).get("/v1/channels").await.unwrap();
    let e = alice.send_message(&general, "c2", "@channel again").await.unwrap();
    assert_eq!(e["code"], "forbidden", "{e}");
    let m = alice.send_message(&general, "c3", "plain").await.unwrap();
    let e = alice.request(json!({"t": "edit", "channel": general, "id": m["id"], "text": "now @here"})).await.unwrap();
    assert_eq!(e["code"], "forbidden", "{e}");
    let db = sqlx::PgPool::connect(&svc.database_url).await.unwrap();
    sqlx::query(&format!("UPDATE {}.users SET role = 'owner' WHERE id = 'alice'", ws.schema())).execute(&db).await.unwrap();
    assert_eq!(alice.send_message(&general, "c4", "@channel from the owner").await.unwrap()["t"], "ack");
    db.close().await;
    drop(pod);
    svc.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_dms_are_one_stable_channel_per_set_of_people() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "gdm").await.unwrap();
    // alice and dave on pod A; bob and carol on pod B.
    let pod_a = Pod::start("pod-a", &svc, PodOptions::default()).await.unwrap();
    let pod_b = Pod::start("pod-b", &svc, PodOptions::default()).await.unwrap();
    let on = |pod: &Pod, u: &str| Rest::new(&pod.http_url(), &token(&ws, u));
    let (alice, bob, carol, dave) = (on(&pod_a, "alice"), on(&pod_b, "bob"), on(&pod_b, "carol"), on(&pod_a, "dave"));
    for r in [&alice, &bob, &carol, &dave] {
        r.get("/v1/channels").await.unwrap();
    }
    let mut alice_ws = Client::connect(&pod_a.ws_url(), &token(&ws, "alice")).await.unwrap();
    alice_ws.request(json!({"t": "ping"})).await.unwrap();
    let (s, g) = alice.post("/v1/dms", json!({"users": ["bob", "carol"]})).await.unwrap();
    assert_eq!((s, g["kind"].as_str()), (200, Some("group_dm")), "{g}");
    let id = g["id"].as_str().unwrap().to_string();
    let (_, again) = carol.post("/v1/dms", json!({"users": ["bob", "alice", "bob"]})).await.unwrap();
    assert_eq!(again["id"], id.as_str(), "the same people: the same channel");
    let (_, other) = alice.post("/v1/dms", json!({"users": ["bob", "dave"]})).await.unwrap();
    assert_ne!(other["id"], id.as_str());
    let (_, members) = bob.get(&format!("/v1/channels/{id}/members")).await.unwrap();
    assert_eq!(members["members"], json!(["alice", "bob", "carol"]));
    let (s, sent) = bob.post(&format!("/v1/channels/{id}/messages"), json!({"cmid": "g1", "text": "hi all"})).await.unwrap();
    assert_eq!(s, 201);
    // alice's open connection on the other pod learns of the new channel, then gets the message.
    alice_ws.wait_seq(&id, sent["seq"].as_i64().unwrap(), T).await.unwrap();
    let joined = alice_ws.log.iter().find(|f| f["t"] == "joined" && f["channel"]["id"] == id.as_str()).expect("a joined frame");
    assert_eq!(joined["channel"]["kind"], "group_dm", "{joined}");
    // Fixed membership; invisible to everyone else.
    let (s, e) = carol.post(&format!("/v1/channels/{id}/leave"), json!({})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (403, Some("forbidden")), "{e}");
    let (s, _) = alice.post(&format!("/v1/channels/{id}/members"), json!({"user": "dave"})).await.unwrap();
    assert_eq!(s, 403);
    let (s, _) = dave.get(&format!("/v1/channels/{id}/events")).await.unwrap();
    assert_eq!(s, 404);
    for (body, status) in [
        (json!({"users": ["alice"]}), 400),
        (json!({"users": (0..9).map(|i| format!("u{i}")).collect::<Vec<_>>()}), 400),
        (json!({"users": ["bob", "nobody"]}), 404),
        (json!({"user": "bob", "users": ["carol", "dave"]}), 400),
        (json!({"users": ["bob", "bad user"]}), 400),
    ] {
        let (s, e) = alice.post("/v1/dms", body.clone()).await.unwrap();
        assert_eq!(s, status, "{body} → {e}");
    }
}
