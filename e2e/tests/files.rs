//! Attachments (issue 11) against the real S3-compatible server of `make up` (versitygw): the
//! upload flow (declare, PUT to the presigned URL, complete), attaching to sends over both
//! transports, events and history carrying the files, downloads and thumbnails only for those
//! who may read the channel, every documented refusal, a workspace's own limits, the delete and
//! abandoned-upload sweeps removing the objects, and object storage going away and coming back.

use std::io::Cursor;
use std::time::Duration;

use palaver_crds::WorkspaceName;
use palaver_e2e::{eventually, new_workspace, token, Client, Pod, PodOptions, PrivateS3, Rest, Services};
use reqwest::Method;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb([30, 120, 200]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// What a client does outside Palaver: PUT and GET against the object store's presigned URLs.
fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(10)).build().unwrap()
}

async fn declare(rest: &Rest, channel: &str, name: &str, size: usize, content_type: &str) -> (u16, Value) {
    rest.post("/v1/files", json!({"channel": channel, "name": name, "size": size, "content_type": content_type})).await.unwrap()
}

async fn put(upload: &Value, bytes: &[u8], content_type: &str) -> u16 {
    let url = upload["upload_url"].as_str().unwrap();
    http().put(url).header("content-type", content_type).body(bytes.to_vec()).send().await.unwrap().status().as_u16()
}

/// Declares, uploads and completes a file; returns its id and the completed file.
async fn upload(rest: &Rest, channel: &str, name: &str, bytes: &[u8], content_type: &str) -> (String, Value) {
    let (s, up) = declare(rest, channel, name, bytes.len(), content_type).await;
    assert_eq!(s, 201, "{up}");
    assert_eq!(up["state"], "pending");
    assert_eq!(up["upload_headers"]["content-type"], content_type);
    assert_eq!(up["upload_method"], "PUT");
    assert!(up["expires_at"].is_string());
    assert_eq!(put(&up, bytes, content_type).await, 200);
    let id = up["id"].as_str().unwrap().to_string();
    let (s, done) = rest.post(&format!("/v1/files/{id}/complete"), json!({})).await.unwrap();
    assert_eq!(s, 200, "{done}");
    (id, done)
}

/// The bytes behind a download link (`?redirect=false`), or the HTTP status of the object store.
async fn fetch(rest: &Rest, path: &str) -> Result<Vec<u8>, u16> {
    let (s, link) = rest.get(&format!("{path}?redirect=false")).await.unwrap();
    if s != 200 {
        return Err(s);
    }
    fetch_url(link["url"].as_str().unwrap()).await
}

async fn fetch_url(url: &str) -> Result<Vec<u8>, u16> {
    let r = http().get(url).send().await.unwrap();
    match r.status().as_u16() {
        200 => Ok(r.bytes().await.unwrap().to_vec()),
        s => Err(s),
    }
}

/// A pod with these settings, alice's REST client on it, and the workspace's `general`.
async fn pod_for(svc: &Services, ws: &WorkspaceName, name: &str, env: Vec<(String, String)>) -> (Pod, Rest, String) {
    let pod = Pod::start(name, svc, PodOptions { env, ..Default::default() }).await.unwrap();
    let alice = Rest::new(&pod.http_url(), &token(ws, "alice"));
    let general = channel_id(&alice, "general").await;
    (pod, alice, general)
}

async fn channel_id(rest: &Rest, name: &str) -> String {
    let (_, list) = rest.get("/v1/channels").await.unwrap();
    list["channels"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["id"].as_str().unwrap().to_string()
}

async fn send(rest: &Rest, channel: &str, cmid: &str, text: &str, files: &[&str]) -> (u16, Value) {
    rest.post(&format!("/v1/channels/{channel}/messages"), json!({"cmid": cmid, "text": text, "files": files})).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_uploaded_attached_read_by_members_only_and_removed_with_their_message() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "files").await.unwrap();
    let env = vec![("PALAVER_FILE_SWEEP_INTERVAL_MS".into(), "200".into())];
    let (pod, alice, general) = pod_for(&svc, &ws, "pod-files", env).await;
    let bob = Rest::new(&pod.http_url(), &token(&ws, "bob"));
    let carol = Rest::new(&pod.http_url(), &token(&ws, "carol"));
    assert_eq!(carol.get("/v1/channels").await.unwrap().0, 200, "carol exists");
    let mut bob_ws = Client::connect(&pod.ws_url(), &token(&ws, "bob")).await.unwrap();
    let mut alice_ws = Client::connect(&pod.ws_url(), &token(&ws, "alice")).await.unwrap();

    // An image: verified, measured and previewed at complete.
    let picture = png(800, 400);
    let (pic, done) = upload(&alice, &general, "Q3 chart.png", &picture, "image/png").await;
    assert_eq!(done["state"], "ready");
    assert_eq!(done["url"], format!("/v1/files/{pic}"), "the file object names its download path");
    assert_eq!((done["width"].as_i64(), done["height"].as_i64(), done["thumbnail"].as_bool()), (Some(800), Some(400), Some(true)));
    let (s, again) = alice.post(&format!("/v1/files/{pic}/complete"), json!({})).await.unwrap();
    assert_eq!((s, &again["id"]), (200, &json!(pic)), "completing again answers the same");
    // Any other type is stored as it is, without a preview.
    let notes = b"minutes of the meeting".to_vec();
    let (doc, done) = upload(&alice, &general, "notes.txt", &notes, "text/plain").await;
    assert!(done.get("thumbnail").is_none() && done.get("width").is_none(), "{done}");

    // Not attached yet: only the uploader may download it.
    assert_eq!(fetch(&alice, &format!("/v1/files/{doc}")).await.unwrap(), notes);
    assert_eq!(fetch(&bob, &format!("/v1/files/{doc}")).await, Err(404));

    // A file-only message over WebSocket, a text with a file over REST.
    let ack = alice_ws.request(json!({"t": "send", "channel": general, "cmid": "f1", "text": "", "files": [pic]})).await.unwrap();
    assert_eq!(ack["t"], "ack", "{ack}");
    let with_pic = ack["id"].as_str().unwrap().to_string();
    let (s, ack2) = send(&alice, &general, "f2", "the notes", &[&doc]).await;
    assert_eq!(s, 201, "{ack2}");
    let with_doc = ack2["id"].as_str().unwrap().to_string();
    let live = bob_ws.expect(T, |f| f["t"] == "event" && f["id"] == with_pic.as_str()).await.unwrap();
    assert_eq!(live["files"][0]["id"], pic.as_str());
    assert_eq!(live["files"][0]["name"], "Q3 chart.png");
    assert_eq!(live["files"][0]["size"], picture.len());
    assert_eq!(live["files"][0]["thumbnail"], true);
    assert_eq!(live["files"][0]["url"], format!("/v1/files/{pic}"));
    let (_, history) = bob.get(&format!("/v1/channels/{general}/events?limit=50")).await.unwrap();
    let in_history = |id: &str| history["events"].as_array().unwrap().iter().find(|e| e["id"] == id).cloned().unwrap();
    assert_eq!(in_history(&with_pic)["files"], live["files"], "history carries what the event carried");
    assert_eq!(in_history(&with_doc)["files"][0]["content_type"], "text/plain");

    // Attached: every reader of the channel may download it; the redirect goes to the store.
    assert_eq!(fetch(&bob, &format!("/v1/files/{pic}")).await.unwrap(), picture);
    let r = http().get(format!("{}/v1/files/{pic}", pod.http_url())).bearer_auth(token(&ws, "carol")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302, "public channel: carol may read it");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&svc.s3_endpoint) && location.contains("X-Amz-Signature"), "{location}");
    assert_eq!(fetch_url(&location).await.unwrap(), picture);
    let thumb = fetch(&bob, &format!("/v1/files/{pic}/thumbnail")).await.unwrap();
    let thumb = image::load_from_memory(&thumb).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (360, 180), "fits 360×360 with the aspect ratio kept");
    let (s, e) = bob.get(&format!("/v1/files/{doc}/thumbnail?redirect=false")).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (404, Some("not_found")), "{e}");

    // A thread reply carries files the same way.
    let (in_reply, _) = upload(&bob, &general, "answer.txt", b"the answer", "text/plain").await;
    let body = json!({"cmid": "r1", "text": "see attached", "thread": with_doc, "files": [in_reply]});
    let (s, reply) = bob.post(&format!("/v1/channels/{general}/messages"), body).await.unwrap();
    assert_eq!(s, 201, "{reply}");
    let (_, thread) = alice.get(&format!("/v1/channels/{general}/threads/{with_doc}")).await.unwrap();
    let replied = thread["replies"].as_array().unwrap().iter().find(|e| e["id"] == reply["id"]).cloned().unwrap();
    assert_eq!(replied["files"][0]["id"], in_reply.as_str(), "{thread}");
    assert_eq!(fetch(&alice, &format!("/v1/files/{in_reply}")).await.unwrap(), b"the answer");

    // A file is attached once.
    let (s, e) = send(&alice, &general, "f3", "again", &[&pic]).await;
    assert_eq!((s, e["code"].as_str()), (409, Some("conflict")), "{e}");

    // A private channel's files stay private.
    let (_, secret) = alice.post("/v1/channels", json!({"name": "secret", "kind": "private"})).await.unwrap();
    let secret = secret["id"].as_str().unwrap().to_string();
    alice.post(&format!("/v1/channels/{secret}/members"), json!({"user": "bob"})).await.unwrap();
    let (hidden, _) = upload(&alice, &secret, "plan.txt", b"the plan", "text/plain").await;
    assert_eq!(send(&alice, &secret, "f4", "plan", &[&hidden]).await.0, 201);
    assert_eq!(fetch(&bob, &format!("/v1/files/{hidden}")).await.unwrap(), b"the plan");
    assert_eq!(fetch(&carol, &format!("/v1/files/{hidden}")).await, Err(404), "not a member: as if it did not exist");
    let (s, e) = declare(&carol, &secret, "x.txt", 1, "text/plain").await;
    assert_eq!((s, e["code"].as_str()), (404, Some("not_found")), "{e}");

    // Deleting the message removes its files: gone from history at once, from the store soon.
    let stale = {
        let (_, link) = alice.get(&format!("/v1/files/{pic}?redirect=false")).await.unwrap();
        link["url"].as_str().unwrap().to_string()
    };
    let (s, _) = alice.call(Method::DELETE, &format!("/v1/channels/{general}/messages/{with_pic}")).await.unwrap();
    assert_eq!(s, 200);
    let (_, history) = bob.get(&format!("/v1/channels/{general}/events?limit=50")).await.unwrap();
    let tomb = history["events"].as_array().unwrap().iter().find(|e| e["id"] == with_pic.as_str()).unwrap().clone();
    assert!(tomb["deleted"] == true && tomb.get("files").is_none_or(Value::is_null), "{tomb}");
    assert_eq!(fetch(&bob, &format!("/v1/files/{pic}")).await, Err(404));
    eventually(T, "the sweeper to remove the deleted message's objects", || {
        let stale = stale.clone();
        async move { (fetch_url(&stale).await == Err(404)).then_some(()) }
    })
    .await
    .unwrap();
    assert!(pod.metric("palaver_files_swept_total{reason=\"deleted\"}").await.unwrap() >= 1.0);
    assert_eq!(fetch(&bob, &format!("/v1/files/{doc}")).await.unwrap(), notes, "other messages' files stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_get_their_documented_errors_and_the_workspace_limits() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "filelimits").await.unwrap();
    let env = vec![
        ("PALAVER_FILE_MAX_BYTES".into(), "1000".into()),
        ("PALAVER_FILE_ALLOWED_TYPES".into(), "image/*,text/plain".into()),
        ("PALAVER_FILE_MAX_PER_MESSAGE".into(), "2".into()),
        ("PALAVER_THUMBNAIL_MAX_BYTES".into(), "100".into()),
    ];
    let (pod, alice, general) = pod_for(&svc, &ws, "pod-file-limits", env).await;
    let bob = Rest::new(&pod.http_url(), &token(&ws, "bob"));
    let random = channel_id(&alice, "random").await;
    let code = |r: &(u16, Value)| (r.0, r.1["code"].as_str().map(String::from));
    let err = |s: u16, c: &str| (s, Some(c.to_string()));

    // Declared files outside the limits.
    assert_eq!(code(&declare(&alice, &general, "big.txt", 1001, "text/plain").await), err(413, "too_large"));
    assert_eq!(code(&declare(&alice, &general, "a.pdf", 10, "application/pdf").await), err(415, "bad_request"));
    assert_eq!(code(&declare(&alice, &general, "a/b.txt", 10, "text/plain").await), err(400, "bad_request"));
    assert_eq!(code(&declare(&alice, &general, "a.txt", 10, "plain").await), err(400, "bad_request"));
    assert_eq!(code(&declare(&alice, &general, "a.txt", 0, "text/plain").await).0, 201, "an empty file is a file");
    let (s, e) = alice.post("/v1/files", json!({"channel": general, "name": "a.txt", "size": 1})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "a field missing: {e}");

    // Complete checks what arrived; after a mismatch the same URL takes the right bytes.
    let (_, up) = declare(&alice, &general, "n.txt", 5, "text/plain").await;
    let id = up["id"].as_str().unwrap().to_string();
    let complete = |who: &Rest| {
        let (who, id) = (who.clone(), id.clone());
        async move { who.post(&format!("/v1/files/{id}/complete"), json!({})).await.unwrap() }
    };
    assert_eq!(code(&complete(&alice).await), err(409, "conflict"), "nothing uploaded yet");
    assert_eq!(put(&up, b"four", "text/plain").await, 200);
    let r = complete(&alice).await;
    assert_eq!(code(&r), err(400, "bad_request"));
    assert!(r.1["message"].as_str().unwrap().contains("4 bytes"), "{}", r.1);
    assert_eq!(put(&up, b"fives", "application/octet-stream").await, 200);
    assert!(complete(&alice).await.1["message"].as_str().unwrap().contains("application/octet-stream"));
    assert_eq!(code(&complete(&bob).await), err(404, "not_found"), "only the uploader completes");
    assert_eq!(code(&send(&alice, &general, "p1", "early", &[&id]).await), err(409, "conflict"), "not complete yet");
    assert_eq!(put(&up, b"fives", "text/plain").await, 200);
    assert_eq!(complete(&alice).await.0, 200);

    // An image must be one.
    let (_, fake) = declare(&alice, &general, "x.png", 12, "image/png").await;
    assert_eq!(put(&fake, b"not an image", "image/png").await, 200);
    let r = alice.post(&format!("/v1/files/{}/complete", fake["id"].as_str().unwrap()), json!({})).await.unwrap();
    assert_eq!(code(&r), err(400, "bad_request"));
    // Larger than PALAVER_THUMBNAIL_MAX_BYTES: its dimensions from its header, no preview.
    let big = png(120, 80);
    assert!((101..=1000).contains(&big.len()), "{} bytes", big.len());
    let (_, done) = upload(&alice, &general, "big.png", &big, "image/png").await;
    assert_eq!((done["width"].as_i64(), done["height"].as_i64()), (Some(120), Some(80)), "{done}");
    assert!(done.get("thumbnail").is_none(), "{done}");

    // Attachments a send may not make.
    let (a, _) = upload(&alice, &general, "a.txt", b"a", "text/plain").await;
    let (b, _) = upload(&alice, &general, "b.txt", b"b", "text/plain").await;
    let (c, _) = upload(&alice, &general, "c.txt", b"c", "text/plain").await;
    let (elsewhere, _) = upload(&alice, &random, "r.txt", b"r", "text/plain").await;
    let (bobs, _) = upload(&bob, &general, "bob.txt", b"bob", "text/plain").await;
    assert_eq!(code(&send(&alice, &general, "p2", "three", &[&a, &b, &c]).await), err(413, "too_large"));
    assert_eq!(code(&send(&alice, &general, "p3", "twice", &[&a, &a]).await), err(400, "bad_request"));
    assert_eq!(code(&send(&alice, &general, "p4", "unknown", &["f_0000000000000000"]).await), err(404, "not_found"));
    assert_eq!(code(&send(&alice, &general, "p5", "bob's", &[&bobs]).await), err(404, "not_found"));
    assert_eq!(code(&send(&alice, &general, "p6", "other channel", &[&elsewhere]).await), err(400, "bad_request"));
    assert_eq!(code(&send(&alice, &general, "p7", " ", &[]).await), err(400, "bad_request"), "no text and no files");
    // The refusals attached nothing: both files go with the next send, and a repeat is the same send.
    let (s, ack) = send(&alice, &general, "p8", "", &[&a, &b]).await;
    assert_eq!(s, 201, "{ack}");
    let (s, again) = send(&alice, &general, "p8", "", &[&a, &b]).await;
    assert_eq!((s, &again["id"]), (200, &ack["id"]), "the same cmid: the original ack");

    // A workspace's own limits (its Workspace's spec.files, in the registry) override the pod's.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&svc.database_url).await.unwrap();
    sqlx::query("UPDATE palaver_control.workspaces SET file_max_bytes = 10, file_allowed_types = '{application/pdf}' WHERE name = $1")
        .bind(ws.as_str())
        .execute(&mut db)
        .await
        .unwrap();
    assert_eq!(code(&declare(&alice, &general, "big.pdf", 11, "application/pdf").await), err(413, "too_large"));
    assert_eq!(code(&declare(&alice, &general, "small.pdf", 10, "application/pdf").await).0, 201);
    assert_eq!(code(&declare(&alice, &general, "small.txt", 10, "text/plain").await), err(415, "bad_request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_rate_limited_per_user() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "filerate").await.unwrap();
    let env = vec![("PALAVER_FILE_UPLOADS_PER_MINUTE".into(), "2".into())];
    let (pod, alice, general) = pod_for(&svc, &ws, "pod-file-rate", env).await;
    let bob = Rest::new(&pod.http_url(), &token(&ws, "bob"));
    for _ in 0..2 {
        assert_eq!(declare(&alice, &general, "a.txt", 1, "text/plain").await.0, 201);
    }
    let (s, e) = declare(&alice, &general, "a.txt", 1, "text/plain").await;
    assert_eq!((s, e["code"].as_str()), (429, Some("rate_limited")), "{e}");
    assert!(e["retry_after_ms"].as_u64().unwrap() > 0);
    assert_eq!(declare(&bob, &general, "b.txt", 1, "text/plain").await.0, 201, "per user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_uploads_are_removed_and_attached_ones_stay() {
    // A database of its own: this pod's sweeper, with a one-second abandon time, sweeps every
    // workspace it knows.
    let svc = Services::from_env().private_database().await.unwrap();
    let ws = new_workspace(&svc, "fileswp").await.unwrap();
    let env = vec![("PALAVER_FILE_ABANDON_SECS".into(), "1".into()), ("PALAVER_FILE_SWEEP_INTERVAL_MS".into(), "200".into())];
    let (mut pod, alice, general) = pod_for(&svc, &ws, "pod-file-sweep", env).await;

    let (_, never_completed) = declare(&alice, &general, "a.txt", 3, "text/plain").await;
    assert_eq!(put(&never_completed, b"abc", "text/plain").await, 200);
    let pending = never_completed["id"].as_str().unwrap().to_string();
    let (kept, _) = upload(&alice, &general, "kept.txt", b"kept", "text/plain").await;
    assert_eq!(send(&alice, &general, "k1", "kept", &[&kept]).await.0, 201);
    let (unattached, _) = upload(&alice, &general, "b.png", &png(10, 10), "image/png").await;
    let (_, link) = alice.get(&format!("/v1/files/{unattached}?redirect=false")).await.unwrap();
    let unattached_url = link["url"].as_str().unwrap().to_string();

    eventually(T, "the sweeper to remove both abandoned uploads", || {
        let (alice, pending, unattached) = (alice.clone(), pending.clone(), unattached.clone());
        async move {
            let a = alice.post(&format!("/v1/files/{pending}/complete"), json!({})).await.unwrap().0;
            let b = alice.get(&format!("/v1/files/{unattached}?redirect=false")).await.unwrap().0;
            (a == 404 && b == 404).then_some(())
        }
    })
    .await
    .unwrap();
    assert_eq!(fetch_url(&unattached_url).await, Err(404), "its object is gone too");
    assert!(pod.metric("palaver_files_swept_total{reason=\"abandoned\"}").await.unwrap() >= 2.0);
    assert_eq!(fetch(&alice, &format!("/v1/files/{kept}")).await.unwrap(), b"kept", "an attached file stays");
    pod.kill().await;
    svc.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_storage_down_is_unavailable_and_loses_nothing() {
    let svc = Services::from_env();
    let mut s3 = PrivateS3::start().await.unwrap();
    let ws = new_workspace(&svc, "files3down").await.unwrap();
    let env = s3.env();
    let (pod, alice, general) = pod_for(&svc, &ws, "pod-file-s3", env).await;

    let (_, up) = declare(&alice, &general, "a.txt", 3, "text/plain").await;
    assert_eq!(put(&up, b"abc", "text/plain").await, 200);
    let id = up["id"].as_str().unwrap().to_string();
    s3.stop().await;
    let (s, e) = alice.post(&format!("/v1/files/{id}/complete"), json!({})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (503, Some("unavailable")), "{e}");
    assert!(pod.metric("palaver_object_storage_requests_total{op=\"head\",result=\"error\"}").await.unwrap() >= 1.0);

    s3.restart().await.unwrap();
    let (s, done) = alice.post(&format!("/v1/files/{id}/complete"), json!({})).await.unwrap();
    assert_eq!((s, &done["state"]), (200, &json!("ready")), "the upload survived the outage: {done}");
    assert_eq!(send(&alice, &general, "s1", "after the outage", &[&id]).await.0, 201);

    // A pod without object storage says so, for uploads and for sends with files alike.
    let env = vec![("PALAVER_S3_ENDPOINT".into(), String::new())];
    let bare = Pod::start("pod-file-none", &svc, PodOptions { env, ..Default::default() }).await.unwrap();
    let alice = Rest::new(&bare.http_url(), &token(&ws, "alice"));
    let (s, e) = declare(&alice, &general, "a.txt", 1, "text/plain").await;
    assert_eq!((s, e["code"].as_str()), (503, Some("unavailable")));
    assert!(e["message"].as_str().unwrap().contains("not configured"), "{e}");
    let (s, e) = send(&alice, &general, "s2", "x", &[&id]).await;
    assert_eq!((s, e["code"].as_str()), (503, Some("unavailable")), "{e}");
}

/// PUT over HTTPS trusting `ca` (curl: the harness's HTTP client has no TLS of its own).
async fn curl_put(url: &str, ca: &std::path::Path, content_type: &str, bytes: &[u8]) -> u16 {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary", "@-"])
        .arg("--cacert")
        .arg(ca)
        .args(["-H", &format!("content-type: {content_type}"), url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(bytes).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_a_private_ca_is_reached_with_that_ca_only() {
    let svc = Services::from_env();
    let s3 = PrivateS3::start_tls().await.unwrap();
    let ws = new_workspace(&svc, "files3tls").await.unwrap();
    let mut env = s3.env();
    env.push(("PALAVER_S3_CA_FILE".into(), s3.ca_file().display().to_string()));
    let (_pod, alice, general) = pod_for(&svc, &ws, "pod-file-tls", env).await;

    let (s, up) = declare(&alice, &general, "a.txt", 3, "text/plain").await;
    assert_eq!(s, 201, "{up}");
    let url = up["upload_url"].as_str().unwrap();
    assert!(url.starts_with(&s3.endpoint()) && url.starts_with("https://"), "{url}");
    assert_eq!(curl_put(url, &s3.ca_file(), "text/plain", b"abc").await, 200);
    let id = up["id"].as_str().unwrap();
    let (s, done) = alice.post(&format!("/v1/files/{id}/complete"), json!({})).await.unwrap();
    assert_eq!((s, &done["state"]), (200, &json!("ready")), "{done}");

    // Without the CA the store's certificate is refused: unavailable, nothing stored.
    let untrusting = Pod::start("pod-file-no-ca", &svc, PodOptions { env: s3.env(), ..Default::default() }).await.unwrap();
    let alice = Rest::new(&untrusting.http_url(), &token(&ws, "alice"));
    let (_, up) = declare(&alice, &general, "b.txt", 3, "text/plain").await;
    assert_eq!(curl_put(up["upload_url"].as_str().unwrap(), &s3.ca_file(), "text/plain", b"abc").await, 200);
    let (s, e) = alice.post(&format!("/v1/files/{}/complete", up["id"].as_str().unwrap()), json!({})).await.unwrap();
    assert_eq!((s, e["code"].as_str()), (503, Some("unavailable")), "{e}");
}
