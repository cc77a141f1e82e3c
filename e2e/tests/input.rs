//! Bad input, limits and tenant isolation: every rejected request gets its documented error,
//! the connection survives where the protocol says so, and nothing is stored.

use std::time::Duration;

use palaver_e2e::{new_workspace, token, token_with, Client, Pod, PodOptions, Rest, Services, TEST_SECRET};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(15);

async fn last_seq(rest: &Rest, channel: &str) -> i64 {
    let (s, body) = rest.get("/v1/channels").await.unwrap();
    assert_eq!(s, 200, "{body}");
    body["channels"].as_array().unwrap().iter().find(|c| c["id"] == channel).unwrap()["last_seq"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_typed_errors_and_store_nothing() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "bad").await.unwrap();
    let pod = Pod::start("pod-bad", &svc, PodOptions::default()).await.unwrap();
    let t = token(&ws, "alice");
    let rest = Rest::new(&pod.http_url(), &t);
    let mut c = Client::connect(&pod.ws_url(), &t).await.unwrap();
    let general = c.channel_id("general").unwrap();
    // Bob exists before the baseline is taken (his first request joins him to #general).
    let bob = Rest::new(&pod.http_url(), &token(&ws, "bob"));
    bob.get("/v1/channels").await.unwrap();
    let before = last_seq(&rest, &general).await;

    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "bad_request"),
        (json!({"t": "teleport", "ref": "u1"}).to_string(), "bad_request"),
        (json!({"ref": "nt"}).to_string(), "bad_request"),
        (json!({"t": "send", "ref": "m1", "channel": general}).to_string(), "bad_request"),
        (json!({"t": "send", "ref": "e1", "channel": general, "cmid": "e1", "text": "   "}).to_string(), "bad_request"),
        (json!({"t": "send", "ref": "k1", "channel": general, "cmid": "k".repeat(65), "text": "x"}).to_string(), "bad_request"),
        (json!({"t": "send", "ref": "big", "channel": general, "cmid": "big", "text": "a".repeat(40_001)}).to_string(), "too_large"),
        (json!({"t": "send", "ref": "nf", "channel": "c_nope", "cmid": "nf", "text": "x"}).to_string(), "not_found"),
        (json!({"t": "read", "ref": "neg", "channel": general, "seq": -1}).to_string(), "bad_request"),
    ];
    for (frame, code) in &cases {
        c.send_text(frame.clone()).await.unwrap();
        let err = c.expect(T, |f| f["t"] == "error").await.unwrap();
        assert_eq!(err["code"], *code, "frame {frame:.80} → {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
        // The connection stays up: a ping still answers.
        assert_eq!(c.request(json!({"t": "ping"})).await.unwrap()["t"], "pong");
    }
    // The ref is echoed on errors where one was readable.
    c.send(json!({"t": "teleport", "ref": "echo-me"})).await.unwrap();
    assert_eq!(c.expect(T, |f| f["t"] == "error").await.unwrap()["ref"], "echo-me");

    // The text limit counts characters, not bytes: exactly at the limit is accepted, and so is
    // multi-byte text under it.
    let ok = c.send_message(&general, "max", &"a".repeat(40_000)).await.unwrap();
    assert_eq!(ok["t"], "ack", "{ok}");
    assert_eq!(ok["seq"].as_i64().unwrap(), before + 1, "rejected frames must not consume seqs or store events");
    let ok = c.send_message(&general, "utf8", &"é".repeat(30_000)).await.unwrap();
    assert_eq!(ok["t"], "ack", "{ok}");
    let after_ok = ok["seq"].as_i64().unwrap();

    // Not a member of a public channel → forbidden; of a private one → not_found (hidden).
    let (_, ops) = bob.post("/v1/channels", json!({"name": "ops"})).await.unwrap();
    let (_, secret) = bob.post("/v1/channels", json!({"name": "secret", "kind": "private"})).await.unwrap();
    let r = c.send_message(ops["id"].as_str().unwrap(), "f1", "let me in").await.unwrap();
    assert_eq!(r["code"], "forbidden", "{r}");
    let r = c.send_message(secret["id"].as_str().unwrap(), "f2", "let me in").await.unwrap();
    assert_eq!(r["code"], "not_found", "{r}");
    let (s, body) = rest.get(&format!("/v1/channels/{}/events", secret["id"].as_str().unwrap())).await.unwrap();
    assert_eq!((s, body["code"].as_str()), (404, Some("not_found")));

    // A frame over the frame limit closes the connection with 1009.
    c.send_text(json!({"t": "send", "channel": general, "cmid": "huge", "text": "a".repeat(70_000)}).to_string()).await.unwrap();
    let closed = c.expect_close(T).await.unwrap();
    assert_eq!(closed.map(|c| c.0), Some(1009));
    assert_eq!(last_seq(&rest, &general).await, after_ok, "nothing stored for rejected frames");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_before_upgrade_with_json() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "tok").await.unwrap();
    let pod = Pod::start("pod-tok", &svc, PodOptions::default()).await.unwrap();
    let url = pod.ws_url();
    let cases = [
        ("missing", None),
        ("garbage", Some("not.a.jwt".to_string())),
        ("wrong secret", Some(token_with(ws.as_str(), "alice", "another-secret", 3600))),
        ("expired", Some(token_with(ws.as_str(), "alice", TEST_SECRET, -3600))),
        ("unknown workspace", Some(token_with("no-such-ws", "alice", TEST_SECRET, 3600))),
        ("invalid user", Some(token_with(ws.as_str(), "bad user!", TEST_SECRET, 3600))),
    ];
    for (what, tok) in cases {
        let r = Client::connect_refused(&url, tok.as_deref()).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.status, 401, "{what}");
        assert_eq!(r.body["code"], "unauthorized", "{what}: {}", r.body);
        let rest = Rest::new(&pod.http_url(), tok.as_deref().unwrap_or(""));
        let (s, body) = rest.get("/v1/channels").await.unwrap();
        assert_eq!((s, body["code"].as_str()), (401, Some("unauthorized")), "{what} over REST");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_rate_limit_answers_rate_limited_with_retry_hint() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "rate").await.unwrap();
    let opts =
        PodOptions { env: vec![("PALAVER_SEND_RATE".into(), "1".into()), ("PALAVER_SEND_BURST".into(), "3".into())], ..Default::default() };
    let pod = Pod::start("pod-rate", &svc, opts).await.unwrap();
    let mut c = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let general = c.channel_id("general").unwrap();
    for n in 0..3 {
        assert_eq!(c.send_message(&general, &format!("r{n}"), "ok").await.unwrap()["t"], "ack");
    }
    let err = c.send_message(&general, "r3", "too fast").await.unwrap();
    assert_eq!(err["code"], "rate_limited", "{err}");
    let wait = err["retry_after_ms"].as_u64().unwrap();
    assert!((1..=1000).contains(&wait), "retry hint {wait}");
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    assert_eq!(c.send_message(&general, "r3", "now ok").await.unwrap()["t"], "ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_one_workspace_never_reaches_another() {
    let svc = Services::from_env();
    let ws_a = new_workspace(&svc, "tena").await.unwrap();
    let ws_b = new_workspace(&svc, "tenb").await.unwrap();
    let pod = Pod::start("pod-ten", &svc, PodOptions::default()).await.unwrap();
    let mut alice = Client::connect(&pod.ws_url(), &token(&ws_a, "alice")).await.unwrap();
    let mut bob = Client::connect(&pod.ws_url(), &token(&ws_b, "bob")).await.unwrap();
    let rest_a = Rest::new(&pod.http_url(), &token(&ws_a, "alice"));
    let rest_b = Rest::new(&pod.http_url(), &token(&ws_b, "bob"));
    // Default channels have the same id in every workspace: the token decides which one.
    let general = alice.channel_id("general").unwrap();
    assert_eq!(bob.channel_id("general").unwrap(), general);
    let a_seq = alice.send_message(&general, "iso-1", "only for A").await.unwrap()["seq"].as_i64().unwrap();
    bob.request(json!({"t": "ping"})).await.unwrap();
    let (_, page_b) = rest_b.get(&format!("/v1/channels/{general}/events?after=0")).await.unwrap();
    assert!(!page_b.to_string().contains("only for A"), "B sees A's message: {page_b}");
    alice.wait_seq(&general, a_seq, T).await.unwrap();
    assert!(bob.events(&general).iter().all(|e| e["text"] != "only for A"));

    // B's own channel ids do not resolve with A's token (REST and WS).
    let (_, b_chan) = rest_b.post("/v1/channels", json!({"name": "b-only"})).await.unwrap();
    let b_chan = b_chan["id"].as_str().unwrap();
    let (s, _) = rest_a.get(&format!("/v1/channels/{b_chan}/events")).await.unwrap();
    assert_eq!(s, 404);
    let (s, _) = rest_a.post(&format!("/v1/channels/{b_chan}/messages"), json!({"cmid": "x", "text": "intrude"})).await.unwrap();
    assert_eq!(s, 404);
    let (s, _) = rest_a.post(&format!("/v1/channels/{b_chan}/join"), json!({})).await.unwrap();
    assert_eq!(s, 404);
    let r = alice.send_message(b_chan, "x2", "intrude").await.unwrap();
    assert_eq!(r["code"], "not_found");
    // A sync naming B's channel replays nothing from it.
    alice.send(json!({"t": "sync", "since": {b_chan: 0}})).await.unwrap();
    let e = alice.expect(T, |f| f["t"] == "error").await.unwrap();
    assert_eq!(e["code"], "not_found");
    assert!(alice.events(b_chan).is_empty());
    // Users of B are unknown in A.
    let (s, _) = rest_a.post("/v1/dms", json!({"user": "bob"})).await.unwrap();
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_channels_membership_dm_history_and_body_errors() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "rest").await.unwrap();
    let pod = Pod::start("pod-rest", &svc, PodOptions::default()).await.unwrap();
    let alice = Rest::new(&pod.http_url(), &token(&ws, "alice"));
    let bob = Rest::new(&pod.http_url(), &token(&ws, "bob"));
    let (_, chans) = bob.get("/v1/channels").await.unwrap();
    let names: Vec<&str> = chans["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["general", "random"], "auto-joined default channels");

    let (s, ch) = alice.post("/v1/channels", json!({"name": "design"})).await.unwrap();
    assert_eq!(s, 201, "{ch}");
    let id = ch["id"].as_str().unwrap();
    let (s, e) = alice.post("/v1/channels", json!({"name": "design"})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (409, Some("conflict")));
    let (s, e) = alice.post("/v1/channels", json!({"name": "Bad Name"})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")));
    let (s, e) = alice.post_raw("/v1/channels", "{nope".into()).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")));
    // A body over the size limit (64 KiB) is refused as too large.
    let big = json!({"cmid": "big", "text": "a".repeat(70_000)}).to_string();
    let (s, e) = alice.post_raw(&format!("/v1/channels/{id}/messages"), big).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (413, Some("too_large")), "{e}");
    let (s, e) = alice.post("/v1/channels", json!({"name": "x", "extra": 1})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "unknown fields are refused");

    // Bob joins, posts, leaves; joining twice is a no-op.
    assert_eq!(bob.post(&format!("/v1/channels/{id}/join"), json!({})).await.unwrap().1["joined"], true);
    assert_eq!(bob.post(&format!("/v1/channels/{id}/join"), json!({})).await.unwrap().1["joined"], false);
    for n in 0..7 {
        let (s, ack) =
            bob.post(&format!("/v1/channels/{id}/messages"), json!({"cmid": format!("b{n}"), "text": format!("m{n}")})).await.unwrap();
        assert_eq!(s, 201, "{ack}");
    }
    assert_eq!(bob.post(&format!("/v1/channels/{id}/leave"), json!({})).await.unwrap().1["left"], true);
    let (s, e) = bob.post(&format!("/v1/channels/{id}/messages"), json!({"cmid": "late", "text": "x"})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (403, Some("forbidden")));

    // History: newest page, then paging backwards and forwards.
    let (_, page) = alice.get(&format!("/v1/channels/{id}/events?limit=3")).await.unwrap();
    let seqs = |p: &Value| p["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect::<Vec<_>>();
    let newest = seqs(&page);
    assert_eq!(newest.len(), 3);
    assert!(newest.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(page["has_more"], true);
    let (_, older) = alice.get(&format!("/v1/channels/{id}/events?before={}&limit=100", newest[0])).await.unwrap();
    let older = seqs(&older);
    assert_eq!(older.first(), Some(&1));
    assert_eq!(*older.last().unwrap() + 1, newest[0]);
    let (_, fwd) = alice.get(&format!("/v1/channels/{id}/events?after=0&limit=100")).await.unwrap();
    assert_eq!(fwd["has_more"], false);
    let kinds: Vec<&str> = fwd["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"member_join"));
    assert_eq!(kinds.last(), Some(&"member_leave"));
    for bad in ["limit=0", "limit=100000", "after=-1", "limit=abc"] {
        let (s, e) = alice.get(&format!("/v1/channels/{id}/events?{bad}")).await.unwrap();
        assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "{bad}");
    }

    // DMs: opening twice finds the same channel; both are members.
    let (s, dm) = alice.post("/v1/dms", json!({"user": "bob"})).await.unwrap();
    assert_eq!(s, 200, "{dm}");
    let (_, dm2) = bob.post("/v1/dms", json!({"user": "alice"})).await.unwrap();
    assert_eq!(dm["id"], dm2["id"]);
    let (s, _) =
        bob.post(&format!("/v1/channels/{}/messages", dm["id"].as_str().unwrap()), json!({"cmid": "dm1", "text": "hi"})).await.unwrap();
    assert_eq!(s, 201);
    let (s, e) = alice.post("/v1/dms", json!({"user": "alice"})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")));
    let (s, e) = alice.get("/v1/nope").await.unwrap();
    assert_eq!((s, e["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_over_rest_starts_live_delivery_on_an_open_connection() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "join").await.unwrap();
    let pod_a = Pod::start("pod-a", &svc, PodOptions::default()).await.unwrap();
    let pod_b = Pod::start("pod-b", &svc, PodOptions::default()).await.unwrap();
    let mut bob = Client::connect(&pod_b.ws_url(), &token(&ws, "bob")).await.unwrap();
    bob.request(json!({"t": "ping"})).await.unwrap();
    let alice = Rest::new(&pod_a.http_url(), &token(&ws, "alice"));
    let (_, ch) = alice.post("/v1/channels", json!({"name": "later"})).await.unwrap();
    let id = ch["id"].as_str().unwrap().to_string();
    alice.post(&format!("/v1/channels/{id}/members"), json!({"user": "bob"})).await.unwrap();
    let (_, ack) = alice.post(&format!("/v1/channels/{id}/messages"), json!({"cmid": "j1", "text": "welcome"})).await.unwrap();
    let seq = ack["seq"].as_i64().unwrap();
    bob.wait_seq(&id, seq, T).await.unwrap();
    // The channel's metadata came first, as hello would have had it.
    let joined = bob.log.iter().position(|f| f["t"] == "joined").expect("a joined frame");
    assert_eq!(
        (bob.log[joined]["channel"]["id"].as_str(), bob.log[joined]["channel"]["name"].as_str()),
        (Some(id.as_str()), Some("later"))
    );
    let first_event = bob.log.iter().position(|f| f["t"] == "event" && f["channel"] == id.as_str()).unwrap();
    assert!(joined < first_event, "metadata before events: {:?}", bob.log);
    // Anything else for the channel would be written before the reply to a later ping.
    bob.request(json!({"t": "ping"})).await.unwrap();
    let kinds: Vec<String> = bob.events(&id).iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["member_join", "message"]);
}
