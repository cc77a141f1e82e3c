//! What a careless or hostile client can do (issue 7): no input may make the server withhold a
//! committed event, count as a server error, reveal a hidden channel, hold a socket forever or
//! answer with anything but the documented JSON error.

use std::time::Duration;

use palaver_e2e::client::raw_http;
use palaver_e2e::{eventually, new_workspace, token, Client, Pod, PodOptions, Rest, Services};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(15);

fn env(pairs: &[(&str, &str)]) -> PodOptions {
    PodOptions { env: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Default::default() }
}

async fn post_n(rest: &Rest, channel: &str, prefix: &str, n: usize) -> Vec<i64> {
    let mut seqs = Vec::new();
    for i in 0..n {
        let (s, ack) =
            rest.post(&format!("/v1/channels/{channel}/messages"), json!({"cmid": format!("{prefix}{i}"), "text": "x"})).await.unwrap();
        assert_eq!(s, 201, "{ack}");
        seqs.push(ack["seq"].as_i64().unwrap());
    }
    seqs
}

/// Seqs of the channel's events the client has received so far, in arrival order.
fn seqs(c: &Client, channel: &str) -> Vec<i64> {
    c.events(channel).iter().map(|e| e["seq"].as_i64().unwrap()).collect()
}

async fn internal_errors(pod: &Pod) -> f64 {
    pod.metric("palaver_errors_total{code=\"internal\"}").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_past_the_end_never_withholds_events() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "curs").await.unwrap();
    let pod = Pod::start("pod-curs", &svc, PodOptions::default()).await.unwrap();
    let bob = Rest::new(&pod.http_url(), &token(&ws, "bob"));
    bob.get("/v1/channels").await.unwrap();
    let mut alice = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let general = alice.channel_id("general").unwrap();
    let last = alice.hello_channel(&general)["last_seq"].as_i64().unwrap();

    // The frames: cursors far past the end (and at the very end of i64), in this session.
    for seq in [last + 5, i64::MAX] {
        alice.send(json!({"t": "recv", "channel": general, "seq": seq})).await.unwrap();
        alice.send(json!({"t": "read", "channel": general, "seq": seq})).await.unwrap();
    }
    assert_eq!(alice.request(json!({"t": "ping"})).await.unwrap()["t"], "pong");
    assert!(alice.log.iter().all(|f| f["t"] != "error"), "clamped, not refused: {:?}", alice.log);
    let live = post_n(&bob, &general, "live", 1).await;
    alice.wait_seq(&general, live[0], T).await.unwrap();
    alice.close().await.unwrap();

    // The next session, with no sync (the server resumes from the stored delivered cursor):
    // every message posted meanwhile arrives, and they count as unread.
    let missed = post_n(&bob, &general, "missed", 7).await;
    let mut alice = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let hello = alice.hello_channel(&general);
    assert_eq!(hello["last_seq"].as_i64().unwrap(), *missed.last().unwrap());
    assert_eq!(hello["read_seq"].as_i64().unwrap(), last, "read cursor clamped to the end at the time: {hello}");
    assert_eq!(hello["unread"].as_i64().unwrap(), 8, "{hello}");
    let more = post_n(&bob, &general, "more", 2).await;
    alice.wait_seq(&general, *more.last().unwrap(), T).await.unwrap();
    let got = seqs(&alice, &general);
    for s in live.iter().chain(&missed).chain(&more) {
        assert!(got.contains(s), "seq {s} withheld; got {got:?}");
    }

    // A sync that claims a position past the end, within one session.
    let mut carol = Client::connect(&pod.ws_url(), &token(&ws, "carol")).await.unwrap();
    carol.send(json!({"t": "sync", "since": {general.clone(): i64::MAX}})).await.unwrap();
    assert_eq!(carol.request(json!({"t": "ping"})).await.unwrap()["t"], "pong");
    let after = post_n(&bob, &general, "after", 3).await;
    carol.wait_seq(&general, *after.last().unwrap(), T).await.unwrap();
    let got = seqs(&carol, &general);
    assert!(after.iter().all(|s| got.contains(s)), "sync past the end swallowed live events: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_anywhere_are_bad_request_never_internal() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "nul").await.unwrap();
    let pod = Pod::start("pod-nul", &svc, PodOptions::default()).await.unwrap();
    let t = token(&ws, "alice");
    let rest = Rest::new(&pod.http_url(), &t);
    let mut c = Client::connect(&pod.ws_url(), &t).await.unwrap();
    let general = c.channel_id("general").unwrap();
    let ok = c.send_message(&general, "first", "hello").await.unwrap();
    let msg = ok["id"].as_str().unwrap().to_string();
    let internal_before = internal_errors(&pod).await;

    let frames = [
        json!({"t": "send", "ref": "text", "channel": general, "cmid": "n1", "text": "a\u{0}b"}),
        json!({"t": "send", "ref": "cmid", "channel": general, "cmid": "n\u{0}2", "text": "x"}),
        json!({"t": "send", "ref": "thread", "channel": general, "cmid": "n3", "text": "x", "thread": format!("{msg}\u{0}")}),
        json!({"t": "send", "ref": "channel", "channel": "c_\u{0}", "cmid": "n4", "text": "x"}),
        json!({"t": "recv", "ref": "recv", "channel": "\u{0}", "seq": 1}),
        json!({"t": "read", "ref": "read", "channel": format!("{general}\u{0}"), "seq": 1}),
        json!({"t": "sync", "ref": "sync", "since": {"\u{0}": 0}}),
    ];
    for f in &frames {
        let e = c.request(f.clone()).await.unwrap();
        assert_eq!((e["t"].as_str(), e["code"].as_str()), (Some("error"), Some("bad_request")), "{f} → {e}");
    }
    let p = |s: &str| format!("/v1/channels/{s}");
    let cases = [
        (reqwest::Method::GET, format!("{}/events", p("%00"))),
        (reqwest::Method::POST, format!("{}/join", p("c_%00x"))),
        (reqwest::Method::POST, format!("{}/leave", p("%00"))),
    ];
    for (m, path) in cases {
        let (s, e) = rest.call(m, &path).await.unwrap();
        assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "{path} → {e}");
    }
    let bodies = [
        json!({"cmid": "r1", "text": "a\u{0}"}),
        json!({"cmid": "r\u{0}", "text": "a"}),
        json!({"cmid": "r3", "text": "a", "thread": "\u{0}"}),
    ];
    for b in bodies {
        let (s, e) = rest.post(&format!("/v1/channels/{general}/messages"), b.clone()).await.unwrap();
        assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "{b} → {e}");
    }
    let (s, e) = rest.post("/v1/channels", json!({"name": "a\u{0}"})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "{e}");
    let (s, e) = rest.post("/v1/dms", json!({"user": "\u{0}"})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "{e}");

    assert_eq!(internal_errors(&pod).await, internal_before, "client input counted as a server error");
    let (_, page) = rest.get(&format!("/v1/channels/{general}/events?after={}", ok["seq"])).await.unwrap();
    assert_eq!(page["events"], json!([]), "nothing stored for refused input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_requests_time_out() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "slow").await.unwrap();
    let pod =
        Pod::start("pod-slow", &svc, env(&[("PALAVER_HTTP_HEADER_TIMEOUT_MS", "500"), ("PALAVER_HEARTBEAT_MS", "500")])).await.unwrap();
    let addr = format!("127.0.0.1:{}", pod.port);
    // Nothing at all, half a request head, and an idle keep-alive connection after a request:
    // each is closed soon after the header timeout, not held.
    let requests: [&[u8]; 3] = [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"];
    for req in requests {
        let started = std::time::Instant::now();
        let (_, closed) = raw_http(&addr, req, Duration::from_secs(5)).await.unwrap();
        assert!(closed, "{:?} still open after 5 s", String::from_utf8_lossy(req));
        assert!(started.elapsed() >= Duration::from_millis(400), "closed before the timeout: {:?}", started.elapsed());
    }
    assert!(pod.metric("palaver_http_header_timeouts_total").await.unwrap() >= 2.0);
    // An upgraded connection that never sends a frame is closed after two heartbeats.
    let mut c = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    let closed = c.expect_close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(closed.map(|c| c.0), Some(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_answers_503_json_and_frees_slots() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "cap").await.unwrap();
    let pod = Pod::start("pod-cap", &svc, env(&[("PALAVER_MAX_CONNECTIONS", "3")])).await.unwrap();
    let t = token(&ws, "alice");
    // WebSocket connections hold their slots for as long as they are open.
    let mut held = Vec::new();
    for _ in 0..3 {
        // Retried: the harness's readiness probe may still hold a slot for a moment.
        let c = eventually(T, "a WebSocket slot", || async { Client::connect(&pod.ws_url(), &t).await.ok() }).await.unwrap();
        held.push(c);
    }
    let addr = format!("127.0.0.1:{}", pod.port);
    let (resp, closed) = raw_http(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", T).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(resp.to_ascii_lowercase().contains("connection: close"), "{resp}");
    let body: Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(body["code"], "unavailable", "{resp}");
    assert!(closed);
    let refused = Client::connect_refused(&pod.ws_url(), Some(&t)).await.unwrap();
    assert_eq!((refused.status, refused.body["code"].as_str()), (503, Some("unavailable")));
    held.pop().unwrap().close().await.unwrap();
    let rest = Rest::new(&pod.http_url(), &t);
    eventually(T, "a slot to free up", || async { rest.get("/v1/channels").await.ok().filter(|(s, _)| *s == 200) }).await.unwrap();
    drop(rest);
    for c in held {
        c.close().await.unwrap();
    }
    let refused =
        eventually(T, "a metrics scrape", || async { pod.metric("palaver_http_connections_refused_total").await.ok() }).await.unwrap();
    assert!(refused >= 2.0, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_channels_answer_exactly_like_missing_ones() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "hide").await.unwrap();
    let pod = Pod::start("pod-hide", &svc, PodOptions::default()).await.unwrap();
    let rest = |u: &str| Rest::new(&pod.http_url(), &token(&ws, u));
    let (alice, bob, carol) = (rest("alice"), rest("bob"), rest("carol"));
    for r in [&alice, &bob, &carol] {
        r.get("/v1/channels").await.unwrap();
    }
    let (_, secret) = bob.post("/v1/channels", json!({"name": "secret", "kind": "private"})).await.unwrap();
    let (_, dm) = bob.post("/v1/dms", json!({"user": "carol"})).await.unwrap();
    let missing = "c_0000000000000000";
    for hidden in [secret["id"].as_str().unwrap(), dm["id"].as_str().unwrap()] {
        for action in ["join", "leave", "members", "messages", "events"] {
            let path = |id: &str| format!("/v1/channels/{id}/{action}");
            let body = match action {
                "members" => json!({"user": "alice"}),
                "messages" => json!({"cmid": format!("h-{hidden}"), "text": "x"}),
                _ => json!({}),
            };
            let call = |id: String| {
                let (alice, body) = (&alice, body.clone());
                async move {
                    if action == "events" {
                        alice.get(&path(&id)).await.unwrap()
                    } else {
                        alice.post(&path(&id), body).await.unwrap()
                    }
                }
            };
            let (s_hidden, b_hidden) = call(hidden.to_string()).await;
            let (s_missing, b_missing) = call(missing.to_string()).await;
            assert_eq!(s_hidden, 404, "{action} {hidden} → {b_hidden}");
            let b_hidden = b_hidden.to_string().replace(hidden, "ID");
            assert_eq!(b_hidden, b_missing.to_string().replace(missing, "ID"), "{action}: the body tells them apart");
            assert_eq!(s_hidden, s_missing);
        }
    }
    // Members still get the documented answers.
    let (s, e) = carol.post(&format!("/v1/channels/{}/leave", dm["id"].as_str().unwrap()), json!({})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (403, Some("forbidden")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_token_works_on_routes_with_query_parameters() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "qtok").await.unwrap();
    let pod = Pod::start("pod-qtok", &svc, PodOptions::default()).await.unwrap();
    let alice = Rest::new(&pod.http_url(), &token(&ws, "alice"));
    let (_, chans) = alice.get_with_query_token("/v1/channels").await.unwrap();
    let general = chans["channels"][0]["id"].as_str().unwrap().to_string();
    for path in
        [format!("/v1/channels/{general}/events?after=0&limit=5"), "/v1/notifications?unread=true".into(), "/v1/notifications".into()]
    {
        let (s, body) = alice.get_with_query_token(&path).await.unwrap();
        assert_eq!(s, 200, "{path} → {body}");
    }
    // Unknown parameters are still refused.
    let (s, e) = alice.get_with_query_token(&format!("/v1/channels/{general}/events?aftr=0")).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_must_name_a_message_of_the_same_channel() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "thr").await.unwrap();
    let pod = Pod::start("pod-thr", &svc, PodOptions::default()).await.unwrap();
    let t = token(&ws, "alice");
    let rest = Rest::new(&pod.http_url(), &t);
    let mut c = Client::connect(&pod.ws_url(), &t).await.unwrap();
    let general = c.channel_id("general").unwrap();
    let random = c.channel_id("random").unwrap();
    let root = c.send_message(&general, "root", "root").await.unwrap();
    let other = c.send_message(&random, "other", "elsewhere").await.unwrap();
    let (_, page) = rest.get(&format!("/v1/channels/{general}/events?after=0")).await.unwrap();
    let join = page["events"].as_array().unwrap().iter().find(|e| e["kind"] == "member_join").unwrap()["id"].as_str().unwrap().to_string();
    let cases = [
        ("x".repeat(20_000), "bad_request"),
        ("m_doesnotexist".into(), "not_found"),
        (other["id"].as_str().unwrap().into(), "not_found"),
        (join, "not_found"),
    ];
    for (i, (thread, code)) in cases.iter().enumerate() {
        let f = json!({"t": "send", "channel": general, "cmid": format!("t{i}"), "text": "reply", "thread": thread});
        let e = c.request(f).await.unwrap();
        assert_eq!(e["code"], *code, "thread {thread:.40} → {e}");
        let body = json!({"cmid": format!("rt{i}"), "text": "reply", "thread": thread});
        let (s, e) = rest.post(&format!("/v1/channels/{general}/messages"), body).await.unwrap();
        assert_eq!(e["code"], *code, "REST thread {thread:.40} → {s} {e}");
    }
    let ack = c.request(json!({"t": "send", "channel": general, "cmid": "ok", "text": "reply", "thread": root["id"]})).await.unwrap();
    assert_eq!(ack["t"], "ack", "{ack}");
    assert_eq!(ack["seq"].as_i64().unwrap(), root["seq"].as_i64().unwrap() + 1, "refused replies consumed no seq");
    let (_, page) = rest.get(&format!("/v1/channels/{general}/events?after={}", root["seq"])).await.unwrap();
    assert_eq!(page["events"][0]["thread"], root["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_the_json_body() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "json").await.unwrap();
    let pod = Pod::start("pod-json", &svc, PodOptions::default()).await.unwrap();
    let t = token(&ws, "alice");
    let rest = Rest::new(&pod.http_url(), &t);
    let cases = [
        (reqwest::Method::PUT, "/v1/channels".to_string(), 405),
        (reqwest::Method::DELETE, "/v1/channels/c_general/events".into(), 405),
        (reqwest::Method::GET, "/v1/channels/%FF%FE/events".into(), 400),
        // A plain GET of the WebSocket endpoint, without the upgrade headers.
        (reqwest::Method::GET, "/v1/ws".into(), 400),
    ];
    for (m, path, status) in cases {
        let (s, body) = rest.call(m.clone(), &path).await.unwrap();
        assert_eq!(s, status, "{m} {path} → {body}");
        assert!(body["code"].is_string() && body["message"].is_string(), "{m} {path}: not the JSON error body: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "utf").await.unwrap();
    let pod = Pod::start("pod-utf", &svc, PodOptions::default()).await.unwrap();
    let mut c = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();
    c.send_ws(Message::Frame(Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true))).await.unwrap();
    let closed = c.expect_close(T).await.unwrap();
    assert_eq!(closed.map(|c| c.0), Some(1007));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_413_with_connection_close() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "big").await.unwrap();
    let pod = Pod::start("pod-big", &svc, PodOptions::default()).await.unwrap();
    let t = token(&ws, "alice");
    let body = json!({"cmid": "big", "text": "a".repeat(70_000)}).to_string();
    let req = format!(
        "POST /v1/channels/c_general/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (resp, closed) = raw_http(&format!("127.0.0.1:{}", pod.port), req.as_bytes(), T).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp:.200}");
    assert!(resp.to_ascii_lowercase().contains("connection: close"), "{resp:.400}");
    assert!(closed);
    // A keep-alive client goes on with its next request (not idempotent, so never retried).
    let rest = Rest::new(&pod.http_url(), &t);
    for i in 0..5 {
        let (s, _) = rest.post_raw("/v1/channels/c_general/messages", body.clone()).await.unwrap();
        assert_eq!(s, 413);
        let (s, ack) = rest.post("/v1/channels/c_general/messages", json!({"cmid": format!("after{i}"), "text": "ok"})).await.unwrap();
        assert_eq!(s, 201, "request after a 413 failed: {ack}");
    }
}
