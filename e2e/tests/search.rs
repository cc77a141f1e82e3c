//! Search (issue 11): the consumers' indexer feeds the index from the event log; every query
//! form finds what it should and nothing the caller may not read; edits and deletes show after
//! the indexer catches up; a rebuild changes nothing; bad queries and the rate limit get their
//! documented errors. The pod has a database of its own (its consumer subscribes to every
//! registered workspace) and a consumer group of its own.

use std::time::Duration;

use palaver_crds::WorkspaceName;
use palaver_e2e::{eventually, new_workspace, token, urlencode, Pod, PodOptions, Rest, Services};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use reqwest::Method;
use serde_json::{json, Value};

/// Joining a consumer group on the local broker takes 10-14 s; allow for it.
const GROUP: Duration = Duration::from_secs(90);
const T: Duration = Duration::from_secs(20);

async fn search(rest: &Rest, q: &str) -> (u16, Value) {
    rest.get(&format!("/v1/search?q={}", urlencode(q))).await.unwrap()
}

/// The ids of the results of `q`, in order (newest first).
async fn ids(rest: &Rest, q: &str) -> Vec<String> {
    let (s, body) = search(rest, q).await;
    assert_eq!(s, 200, "{q}: {body}");
    body["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

async fn post(rest: &Rest, channel: &str, cmid: &str, text: &str, thread: Option<&str>) -> String {
    let mut body = json!({"cmid": cmid, "text": text});
    if let Some(t) = thread {
        body["thread"] = json!(t);
    }
    let (s, ack) = rest.post(&format!("/v1/channels/{channel}/messages"), body).await.unwrap();
    assert_eq!(s, 201, "{ack}");
    ack["id"].as_str().unwrap().to_string()
}

/// `palaverd reindex` of the workspace; its stdout.
fn reindex(svc: &Services, ws: &WorkspaceName) -> String {
    let out = std::process::Command::new(palaver_e2e::procs::palaverd_bin())
        .args(["reindex", "--workspace", ws.as_str()])
        .env("PALAVER_DATABASE_URL", &svc.database_url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A workspace in a database of its own and a pod whose consumers index it, in a consumer group
/// of its own (the shared broker's groups stay undisturbed), with no search rate limit.
async fn indexing_pod(name: &str) -> (Services, WorkspaceName, Pod) {
    let svc = Services::from_env().private_database().await.unwrap();
    let ws = new_workspace(&svc, name).await.unwrap();
    let group = format!("test-{}", uuid::Uuid::new_v4().simple());
    let env = vec![("PALAVER_CONSUMER_GROUP".into(), group), ("PALAVER_SEARCH_RATE_PER_MINUTE".into(), "100000".into())];
    let pod = Pod::start(&format!("pod-{name}"), &svc, PodOptions { consumers: true, env, ..Default::default() }).await.unwrap();
    (svc, ws, pod)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_what_each_caller_may_read_and_follows_edits_and_deletes() {
    let (svc, ws, pod) = indexing_pod("search").await;
    let alice = Rest::new(&pod.http_url(), &token(&ws, "alice"));
    let bob = Rest::new(&pod.http_url(), &token(&ws, "bob"));
    let carol = Rest::new(&pod.http_url(), &token(&ws, "carol"));
    let channel = |name: &'static str| {
        let alice = &alice;
        async move {
            let (_, list) = alice.get("/v1/channels").await.unwrap();
            list["channels"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["id"].as_str().unwrap().to_string()
        }
    };
    for user in [&bob, &carol] {
        assert_eq!(user.get("/v1/channels").await.unwrap().0, 200, "the user exists");
    }
    let general = channel("general").await;
    let random = channel("random").await;
    let (_, secret) = alice.post("/v1/channels", json!({"name": "secret", "kind": "private"})).await.unwrap();
    let secret = secret["id"].as_str().unwrap().to_string();
    let (s, added) = alice.post(&format!("/v1/channels/{secret}/members"), json!({"user": "bob"})).await.unwrap();
    assert_eq!(s, 200, "{added}");
    let (_, dm) = alice.post("/v1/dms", json!({"user": "bob"})).await.unwrap();
    let dm = dm["id"].as_str().unwrap().to_string();

    let m1 = post(&alice, &general, "s1", "the quick brown fox jumps", None).await;
    let m2 = post(&bob, &general, "s2", "Running late, agenda at https://example.com/agenda", None).await;
    let m3 = post(&alice, &random, "s3", "quick sync about PALAVER-42 <b>now</b>", None).await;
    let m4 = post(&alice, &secret, "s4", "quick secret plan", None).await;
    let m5 = post(&bob, &general, "s5", "foxes are quick", Some(&m1)).await;
    let m6 = post(&alice, &dm, "s6", "quick word in private", None).await;

    // Indexed once the consumer has caught up (it joins its group first).
    let all_quick = vec![m6.clone(), m5.clone(), m4.clone(), m3.clone(), m1.clone()];
    eventually(GROUP, "the indexer to catch up", || async { (ids(&alice, "quick").await == all_quick).then_some(()) }).await.unwrap();
    assert!(pod.metric("palaver_search_indexed_total{result=\"indexed\"}").await.unwrap() >= 6.0);

    // Only what each caller may read: carol is in neither the private channel nor the DM.
    assert_eq!(ids(&carol, "quick").await, [m5.as_str(), m3.as_str(), m1.as_str()]);
    assert_eq!(ids(&carol, "secret").await, Vec::<String>::new());
    assert_eq!(ids(&bob, "quick").await, all_quick, "bob is in both");

    // The result's fields, and a snippet that is escaped and marked.
    let (_, body) = search(&alice, "quick sync").await;
    let r = &body["results"][0];
    assert_eq!((r["id"].as_str(), r["channel"].as_str(), r["user"].as_str()), (Some(m3.as_str()), Some(random.as_str()), Some("alice")));
    assert!(r["seq"].as_i64().unwrap() > 0 && r["ts"].is_string() && r["thread"].is_null(), "{r}");
    assert_eq!(r["text"], "quick sync about PALAVER-42 <b>now</b>");
    assert_eq!(r["snippet"], "<mark>quick</mark> <mark>sync</mark> about PALAVER-42 &lt;b&gt;now&lt;/b&gt;");
    assert_eq!(body["next_cursor"], Value::Null);
    // The original events as they went to Kafka, for the redelivery below.
    let original = |r: &Value, channel: &str, text: &str| json!({"channel": channel, "seq": r["seq"], "kind": "message", "id": r["id"], "user": r["user"], "text": text, "ts": r["ts"]});
    let m3_event = original(r, &random, "quick sync about PALAVER-42 <b>now</b>");
    let (_, brown) = search(&alice, "brown").await;
    let m1_event = original(&brown["results"][0], &general, "the quick brown fox jumps");
    assert_eq!(m1_event["id"], m1.as_str());

    // Phrases, exclusion, stems, identifiers.
    assert_eq!(ids(&alice, "\"brown fox\"").await, [m1.as_str()]);
    assert!(ids(&alice, "\"fox brown\"").await.is_empty());
    assert_eq!(ids(&alice, "quick -secret -\"private\"").await, [m5.as_str(), m3.as_str(), m1.as_str()]);
    assert_eq!(ids(&alice, "run").await, [m2.as_str()], "English stems: running");
    assert_eq!(ids(&alice, "palaver-42").await, [m3.as_str()]);
    assert_eq!(ids(&alice, "or").await, Vec::<String>::new(), "a word, not an operator");

    // Filters, alone and with words.
    assert_eq!(ids(&alice, "from:@bob").await, [m5.as_str(), m2.as_str()]);
    assert_eq!(ids(&alice, "quick in:#random").await, [m3.as_str()]);
    assert_eq!(ids(&alice, &format!("quick in:{general}")).await, [m5.as_str(), m1.as_str()]);
    assert!(ids(&carol, "quick in:#secret").await.is_empty(), "a private channel is no channel to carol");
    assert_eq!(ids(&alice, "has:link").await, [m2.as_str()]);
    assert_eq!(ids(&alice, "is:thread").await, [m5.as_str()]);
    assert!(ids(&alice, "has:file").await.is_empty());
    // A message with an attachment (uploaded to the `make up` object store) is `has:file`.
    let (s, up) =
        alice.post("/v1/files", json!({"channel": general, "name": "minutes.txt", "size": 7, "content_type": "text/plain"})).await.unwrap();
    assert_eq!(s, 201, "{up}");
    let put = reqwest::Client::new().put(up["upload_url"].as_str().unwrap()).header("content-type", "text/plain").body("minutes");
    assert_eq!(put.send().await.unwrap().status().as_u16(), 200);
    let file = up["id"].as_str().unwrap();
    assert_eq!(alice.post(&format!("/v1/files/{file}/complete"), json!({})).await.unwrap().0, 200);
    let (s, ack) = alice
        .post(&format!("/v1/channels/{general}/messages"), json!({"cmid": "s7", "text": "minutes attached", "files": [file]}))
        .await
        .unwrap();
    assert_eq!(s, 201, "{ack}");
    let m7 = ack["id"].as_str().unwrap().to_string();
    eventually(T, "the message with a file in the index", || async { (ids(&alice, "has:file").await == [m7.as_str()]).then_some(()) })
        .await
        .unwrap();
    assert_eq!(ids(&alice, "minutes has:file").await, [m7.as_str()]);
    assert!(ids(&alice, "quick has:file").await.is_empty());
    let today = chrono::Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap();
    let tomorrow = today.succ_opt().unwrap();
    assert_eq!(ids(&alice, &format!("quick on:{today}")).await, all_quick);
    assert_eq!(ids(&alice, &format!("quick after:{yesterday} before:{tomorrow}")).await, all_quick);
    assert!(ids(&alice, &format!("quick before:{today}")).await.is_empty());
    assert!(ids(&alice, &format!("quick after:{today}")).await.is_empty());

    // Paging: newest first, no repeats, the cursor ends.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/v1/search?q=quick&limit=2&cursor={}", urlencode(c)),
            None => "/v1/search?q=quick&limit=2".to_string(),
        };
        let (s, page) = alice.get(&path).await.unwrap();
        assert_eq!(s, 200, "{page}");
        paged.extend(page["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()));
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(paged, all_quick);

    // An edit replaces the text, a delete removes the message, once the indexer has them.
    let (s, e) =
        alice.send_json(Method::PATCH, &format!("/v1/channels/{random}/messages/{m3}"), json!({"text": "slow sync"})).await.unwrap();
    assert_eq!(s, 200, "{e}");
    let (s, d) = alice.call(Method::DELETE, &format!("/v1/channels/{general}/messages/{m1}")).await.unwrap();
    assert_eq!(s, 200, "{d}");
    let after_changes = vec![m6.clone(), m5.clone(), m4.clone()];
    eventually(T, "the edit and the delete in the index", || async { (ids(&alice, "quick").await == after_changes).then_some(()) })
        .await
        .unwrap();
    assert_eq!(ids(&alice, "slow").await, [m3.as_str()]);
    assert!(ids(&alice, "brown").await.is_empty());

    // Kafka redelivering the original messages (at least once) changes nothing: the edited one
    // keeps its new text, the deleted one stays gone, nothing is found twice.
    let unchanged = || async { pod.metric("palaver_search_indexed_total{result=\"unchanged\"}").await.unwrap_or(0.0) };
    let before = unchanged().await;
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &svc.kafka_brokers).create().unwrap();
    for (channel, original) in [(&random, &m3_event), (&general, &m1_event)] {
        producer
            .send(FutureRecord::to(&ws.events_topic()).key(channel.as_bytes()).payload(&original.to_string()), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    eventually(T, "the redelivered events to be consumed", || async { (unchanged().await >= before + 2.0).then_some(()) }).await.unwrap();
    assert_eq!(ids(&alice, "quick").await, after_changes);
    assert!(ids(&alice, "brown").await.is_empty());

    // A rebuild from the stored messages is the same index (no duplicates, nothing revived).
    let out = reindex(&svc, &ws);
    assert!(out.starts_with("reindexed 7 messages"), "{out}");
    assert_eq!(ids(&alice, "quick").await, after_changes);
    assert_eq!(ids(&alice, "slow").await, [m3.as_str()]);
    assert!(ids(&alice, "brown").await.is_empty());

    // Bad queries: documented errors with the position.
    for (q, position) in [("\"unterminated", 0), ("quick before:2026-13-01", 13), ("", 0), ("has:pictures", 4), ("-alone", 0)] {
        let (s, e) = search(&alice, q).await;
        assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "{q}: {e}");
        assert_eq!(e["position"].as_u64(), Some(position), "{q}: {e}");
    }
    let (s, e) = search(&alice, &"word ".repeat(33)).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "{e}");
    for bad in
        ["/v1/search?q=quick&limit=0", "/v1/search?q=quick&limit=101", "/v1/search?q=quick&cursor=nope", "/v1/search?q=quick&sort=old"]
    {
        let (s, e) = alice.get(bad).await.unwrap();
        assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "{bad}: {e}");
    }
    assert_eq!(pod.metric("palaver_errors_total{code=\"internal\"}").await.unwrap_or(0.0), 0.0);
    svc.drop_database().await.ok();
}

/// Word search cannot look inside a run of CJK characters nor inside identifiers and addresses;
/// the grams (migration 0013) can, with the same permissions, edits, deletes and rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_cjk_text_and_parts_of_identifiers() {
    let (svc, ws, pod) = indexing_pod("sgrams").await;
    let alice = Rest::new(&pod.http_url(), &token(&ws, "alice"));
    let bob = Rest::new(&pod.http_url(), &token(&ws, "bob"));
    let carol = Rest::new(&pod.http_url(), &token(&ws, "carol"));
    for user in [&bob, &carol] {
        assert_eq!(user.get("/v1/channels").await.unwrap().0, 200, "the user exists");
    }
    let (_, list) = alice.get("/v1/channels").await.unwrap();
    let general = list["channels"].as_array().unwrap().iter().find(|c| c["name"] == "general").unwrap()["id"].as_str().unwrap().to_string();
    let (_, secret) = alice.post("/v1/channels", json!({"name": "secret", "kind": "private"})).await.unwrap();
    let secret = secret["id"].as_str().unwrap().to_string();
    let (s, added) = alice.post(&format!("/v1/channels/{secret}/members"), json!({"user": "bob"})).await.unwrap();
    assert_eq!(s, 200, "{added}");

    let ip = post(&alice, &general, "g1", "login failed for host 10.1.2.33 again", None).await;
    let ident = post(&bob, &general, "g2", "panic in fetch_user_id_v2, see err-palaver-42x", None).await;
    let japanese = post(&alice, &general, "g3", "東京タワーに行きました", None).await;
    let chinese = post(&bob, &general, "g4", "我们明天发布新版本", None).await;
    let private = post(&alice, &secret, "g5", "秘密の東京会議は10.1.2.99で", None).await;
    // Near misses: not `10.1.2` from the start of a part, no `東京` in one run.
    let _near = post(&alice, &general, "g6", "route 10.2.1.2 via 110.1.2.3, 東 京", None).await;

    // Today's word search finds none of these: each is inside one lexeme of `tsv`.
    eventually(GROUP, "the indexer to catch up", || async {
        (ids(&alice, "10.1.2").await == [private.as_str(), ip.as_str()]).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(ids(&alice, "user_id").await, [ident.as_str()]);
    assert_eq!(ids(&alice, "palaver-42").await, [ident.as_str()]);
    assert_eq!(ids(&alice, "fetch_user").await, [ident.as_str()], "from the start of a part, the last one a prefix");
    assert!(ids(&alice, "ser_id").await.is_empty(), "not from inside a part");
    assert_eq!(ids(&alice, "東京").await, [private.as_str(), japanese.as_str()]);
    assert_eq!(ids(&alice, "タワー").await, [japanese.as_str()]);
    assert_eq!(ids(&alice, "\"東京タワーに行\"").await, [japanese.as_str()], "a quoted CJK phrase");
    assert!(ids(&alice, "\"東京に行\"").await.is_empty(), "its characters in order, adjacent");
    assert_eq!(ids(&alice, "发布").await, [chinese.as_str()], "a two-character Chinese word");
    assert_eq!(ids(&alice, "明天发布").await, [chinese.as_str()]);
    assert!(ids(&alice, "发明").await.is_empty());
    assert_eq!(ids(&alice, "東京 -タワー").await, [private.as_str()], "exclusions too");
    assert_eq!(ids(&alice, "東京 10.1.2").await, [private.as_str()]);
    assert_eq!(ids(&alice, "login 10.1.2").await, [ip.as_str()], "with word search");

    // Only what each caller may read: carol is not in the private channel, bob is.
    assert_eq!(ids(&carol, "10.1.2").await, [ip.as_str()]);
    assert_eq!(ids(&carol, "東京").await, [japanese.as_str()]);
    assert!(ids(&carol, "秘密").await.is_empty());
    assert_eq!(ids(&bob, "秘密").await, [private.as_str()]);

    // The snippets mark what matched, inside the run or the identifier.
    let snippet = |q: &'static str| {
        let alice = &alice;
        async move {
            let (_, body) = search(alice, q).await;
            body["results"][0]["snippet"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(snippet("タワー").await, "東京<mark>タワー</mark>に行きました");
    assert_eq!(snippet("login 10.1.2").await, "<mark>login</mark> failed for host <mark>10.1.2</mark>.33 again");
    assert_eq!(snippet("user_id").await, "panic in fetch_<mark>user_id</mark>_v2, see err-palaver-42x");
    assert_eq!(snippet("发布").await, "我们明天<mark>发布</mark>新版本");

    // An edit replaces the grams, a delete removes them.
    let (s, e) = alice
        .send_json(Method::PATCH, &format!("/v1/channels/{general}/messages/{japanese}"), json!({"text": "大阪に行きました"}))
        .await
        .unwrap();
    assert_eq!(s, 200, "{e}");
    let (s, d) = alice.call(Method::DELETE, &format!("/v1/channels/{general}/messages/{ip}")).await.unwrap();
    assert_eq!(s, 200, "{d}");
    eventually(T, "the edit and the delete in the index", || async {
        (ids(&alice, "東京").await == [private.as_str()] && ids(&alice, "10.1.2").await == [private.as_str()]).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(ids(&alice, "大阪").await, [japanese.as_str()]);
    assert!(ids(&carol, "10.1.2").await.is_empty(), "deleted, and the private match stays invisible");
    assert!(ids(&carol, "東京").await.is_empty());

    // A rebuild derives the same grams from the stored messages.
    reindex(&svc, &ws);
    assert_eq!(ids(&alice, "東京").await, [private.as_str()]);
    assert_eq!(ids(&alice, "大阪").await, [japanese.as_str()]);
    assert_eq!(ids(&alice, "10.1.2").await, [private.as_str()]);
    assert_eq!(ids(&alice, "palaver-42").await, [ident.as_str()]);
    assert_eq!(pod.metric("palaver_errors_total{code=\"internal\"}").await.unwrap_or(0.0), 0.0);
    svc.drop_database().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_is_rate_limited_per_user() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "srate").await.unwrap();
    let env = vec![("PALAVER_SEARCH_RATE_PER_MINUTE".into(), "2".into())];
    let pod = Pod::start("pod-srate", &svc, PodOptions { env, ..Default::default() }).await.unwrap();
    let alice = Rest::new(&pod.http_url(), &token(&ws, "alice"));
    for _ in 0..2 {
        assert_eq!(search(&alice, "anything").await.0, 200);
    }
    let (s, e) = search(&alice, "anything").await;
    assert_eq!((s, e["code"].as_str()), (429, Some("rate_limited")), "{e}");
    assert!(e["retry_after_ms"].as_u64().unwrap() > 1000, "{e}");
    // Another user has a bucket of their own.
    assert_eq!(search(&Rest::new(&pod.http_url(), &token(&ws, "bob")), "anything").await.0, 200);
    assert_eq!(pod.metric("palaver_searches_total{result=\"rate_limited\"}").await.unwrap(), 1.0);
}
