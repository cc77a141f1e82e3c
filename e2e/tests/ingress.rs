//! palaverd behind a proxy (issue 13): Origin checks on WebSocket upgrades, client addresses
//! from trusted proxies only, a path prefix, and a real nginx on loopback in front of two pods
//! (upgrade, the web app's page and files, an idle connection outliving the proxy's read timeout
//! thanks to heartbeats, and a drain that clients resume from on the other pod with nothing
//! lost).

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use palaver_e2e::client::check_in_order;
use palaver_e2e::{eventually, new_workspace, token, Client, NginxConfig, Pod, PodOptions, PrivateNginx, Rest, Services, Upgrade};
use serde_json::json;

const T: Duration = Duration::from_secs(15);

fn headers(h: &[(&str, &str)]) -> Upgrade {
    Upgrade { headers: h.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), local_ip: None }
}

fn from(ip: &str, h: &[(&str, &str)]) -> Upgrade {
    Upgrade { local_ip: Some(ip.parse().unwrap()), ..headers(h) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_origin_is_checked_before_the_token() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "origin").await.unwrap();
    let opts = PodOptions { env: vec![("PALAVER_ALLOWED_ORIGINS".into(), "https://app.example.com".into())], ..Default::default() };
    let pod = Pod::start("pod-origin", &svc, opts).await.unwrap();
    let t = token(&ws, "alice");
    let url = pod.ws_url();

    // Not a browser (no Origin), the same origin, and a listed one: accepted.
    Client::connect(&url, &t).await.unwrap();
    let same = format!("http://127.0.0.1:{}", pod.port);
    Client::connect_with(&url, &t, &headers(&[("Origin", &same)])).await.unwrap();
    Client::connect_with(&url, &t, &headers(&[("Origin", "https://app.example.com")])).await.unwrap();

    // Another site: 403 with the JSON body, even with a valid token.
    let evil = headers(&[("Origin", "https://evil.example")]);
    let refused = Client::connect_refused_with(&url, Some(&t), &evil).await.unwrap();
    assert_eq!((refused.status, refused.body["code"].as_str()), (403, Some("forbidden")), "{}", refused.body);
    // Checked first: a bad token from another site learns nothing about the token.
    let refused = Client::connect_refused_with(&url, Some("not-a-token"), &evil).await.unwrap();
    assert_eq!(refused.status, 403);
    // Another port of the same host is another origin.
    let other_port = headers(&[("Origin", "http://127.0.0.1:1")]);
    assert_eq!(Client::connect_refused_with(&url, Some(&t), &other_port).await.unwrap().status, 403);
}

/// The `client_ip` palaverd logged for the session that got `hello`.
async fn logged_client_ip(log: &Path, c: &Client) -> IpAddr {
    let session = c.hello["session"].as_str().expect("hello has a session").to_string();
    eventually(T, "the session's log line", || {
        let session = session.clone();
        async move {
            let text = std::fs::read_to_string(log).ok()?;
            text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find_map(|v| {
                let opened = v["message"] == "websocket session opened" && v["session"] == session.as_str();
                opened.then(|| v["client_ip"].as_str()?.parse().ok()).flatten()
            })
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_client_ip_comes_from_trusted_proxies_only() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "xff").await.unwrap();
    let dir = std::env::temp_dir().join(format!("palaver-xff-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("pod.log");
    let opts = PodOptions {
        env: vec![
            ("PALAVER_TRUSTED_PROXIES".into(), "127.0.0.1/32".into()),
            ("RUST_LOG".into(), "warn,palaver_dataplane=info".into()),
            ("PALAVER_LOG_FORMAT".into(), "json".into()),
        ],
        log: Some(log.clone()),
        ..Default::default()
    };
    let pod = Pod::start("pod-xff", &svc, opts).await.unwrap();
    let t = token(&ws, "alice");

    // An untrusted peer (127.0.0.2) forging the header: ignored, the socket address counts.
    let forged = Client::connect_with(&pod.ws_url(), &t, &from("127.0.0.2", &[("X-Forwarded-For", "203.0.113.7")])).await.unwrap();
    assert_eq!(logged_client_ip(&log, &forged).await, "127.0.0.2".parse::<IpAddr>().unwrap());
    let forged = Client::connect_with(&pod.ws_url(), &t, &from("127.0.0.2", &[("Forwarded", "for=203.0.113.7")])).await.unwrap();
    assert_eq!(logged_client_ip(&log, &forged).await, "127.0.0.2".parse::<IpAddr>().unwrap());

    // A trusted peer: the nearest hop that is not a trusted proxy.
    let trusted =
        Client::connect_with(&pod.ws_url(), &t, &from("127.0.0.1", &[("X-Forwarded-For", "198.51.100.1, 203.0.113.8")])).await.unwrap();
    assert_eq!(logged_client_ip(&log, &trusted).await, "203.0.113.8".parse::<IpAddr>().unwrap());

    // Through a real proxy: nginx (127.0.0.1, trusted) appends the client's address to
    // whatever the client claimed, so the claim is not believed.
    let stall = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nginx = PrivateNginx::start(NginxConfig {
        upstreams: vec![pod.port],
        stall_upstream: stall.local_addr().unwrap().port(),
        read_timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let proxied = Client::connect_with(&nginx.ws_url(), &t, &from("127.0.0.3", &[("X-Forwarded-For", "198.51.100.9")])).await.unwrap();
    assert_eq!(logged_client_ip(&log, &proxied).await, "127.0.0.3".parse::<IpAddr>().unwrap());
    // nginx keeps Host, so a page served from the proxy's address is same-origin there.
    let origin = format!("http://127.0.0.1:{}", nginx.port());
    Client::connect_with(&nginx.ws_url(), &t, &headers(&[("Origin", &origin)])).await.unwrap();
    // That page loads through it (clients/web/dist, built before palaverd): with its security
    // headers, and a file it links.
    let page = reqwest::get(format!("{}/", nginx.http_url())).await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html") && h.contains_key("content-security-policy"), "{h:?}");
    let html = page.text().await.unwrap();
    let asset = html.split('"').find_map(|s| s.strip_prefix("./assets/")).expect("the page links its files");
    assert_eq!(reqwest::get(format!("{}/assets/{asset}", nginx.http_url())).await.unwrap().status(), 200, "{asset}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_path_prefix_serves_the_routes_below_it() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "prefix").await.unwrap();
    let opts = PodOptions { env: vec![("PALAVER_PATH_PREFIX".into(), "/chat/".into())], ..Default::default() };
    let pod = Pod::start("pod-prefix", &svc, opts).await.unwrap();
    let t = token(&ws, "alice");
    let c = Client::connect(&format!("ws://127.0.0.1:{}/chat/v1/ws", pod.port), &t).await.unwrap();
    assert!(c.channel_id("general").is_some(), "{}", c.hello);
    let rest = Rest::new(&format!("{}/chat", pod.http_url()), &t);
    assert_eq!(rest.get("/v1/channels").await.unwrap().0, 200);
    // Unprefixed requests (probes, in-cluster clients) are served as they are.
    assert_eq!(Rest::new(&pod.http_url(), &t).get("/v1/channels").await.unwrap().0, 200);
    let (status, body) = Rest::new(&format!("{}/chatter", pod.http_url()), &t).get("/v1/channels").await.unwrap();
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
}

/// Which of `pods` holds exactly `n` WebSocket connections.
async fn pod_with_connections(pods: &[&Pod], n: f64) -> usize {
    eventually(T, "a pod holding the client's connection", || async {
        for (i, p) in pods.iter().enumerate() {
            if p.metric("palaver_connections").await.ok()? == n {
                return Some(i);
            }
        }
        None
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_nginx_heartbeats_outlive_its_timeout_and_a_drain_loses_nothing() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "nginx").await.unwrap();
    // The sender's pace is the test's, not the rate limit's.
    let beat = || PodOptions {
        env: vec![("PALAVER_HEARTBEAT_MS".into(), "1000".into()), ("PALAVER_SEND_RATE".into(), "1000".into())],
        ..Default::default()
    };
    let mut pods = vec![Pod::start("pod-ngx-a", &svc, beat()).await.unwrap(), Pod::start("pod-ngx-b", &svc, beat()).await.unwrap()];
    // An upstream that accepts and never answers: the proxy's timeout must cut it.
    let stall = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stall_port = stall.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = stall.accept().await {
            open.push(s);
        }
    });
    // Above the heartbeat, as docs/operator.md asks of every ingress controller.
    let read_timeout = Duration::from_millis(2500);
    let nginx =
        PrivateNginx::start(NginxConfig { upstreams: pods.iter().map(|p| p.port).collect(), stall_upstream: stall_port, read_timeout })
            .await
            .unwrap();

    // The timeout is in force: a silent upstream gets 504 after it.
    let started = Instant::now();
    let status = reqwest::get(format!("{}/stall", nginx.http_url())).await.unwrap().status().as_u16();
    assert_eq!(status, 504);
    assert!(started.elapsed() >= read_timeout - Duration::from_millis(100), "cut after {:?}", started.elapsed());
    held.abort();

    // Upgrade through the proxy, then stay idle (heartbeats only) for three read timeouts.
    let mut c = Client::connect(&nginx.ws_url(), &token(&ws, "alice")).await.unwrap();
    let heartbeat = Duration::from_millis(c.hello["heartbeat_ms"].as_u64().unwrap());
    assert_eq!(heartbeat, Duration::from_secs(1));
    let general = c.channel_id("general").unwrap();
    let idle_until = Instant::now() + read_timeout * 3;
    while Instant::now() < idle_until {
        tokio::time::sleep(heartbeat).await; // the client's heartbeat period, not a wait for a condition
        let pong = c.request(json!({"t": "ping"})).await.unwrap();
        assert_eq!(pong["t"], "pong", "{pong}");
    }
    let first = c.send_message(&general, "m0", "still here").await.unwrap();
    assert_eq!(first["t"], "ack", "{first}");
    let first_seq = first["seq"].as_i64().unwrap();
    c.wait_seq(&general, first_seq, T).await.unwrap();

    // Drain the pod holding the connection while another user keeps sending on the other one.
    let on = pod_with_connections(&[&pods[0], &pods[1]], 1.0).await;
    let survivor = pods[1 - on].ws_url();
    let mut sender = Client::connect(&survivor, &token(&ws, "bob")).await.unwrap();
    const N: usize = 60;
    let general_s = general.clone();
    let sending = tokio::spawn(async move {
        let mut last = 0;
        for i in 0..N {
            let ack = sender.send_message(&general_s, &format!("d{i}"), &format!("during drain {i}")).await.unwrap();
            assert_eq!(ack["t"], "ack", "{ack}");
            last = ack["seq"].as_i64().unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await; // pacing: the drain happens mid-stream
        }
        last
    });
    let exit = pods[on].terminate().await.unwrap();
    assert!(exit.success(), "{exit}");
    let close = c.expect_close(T).await.unwrap();
    assert_eq!(close.map(|c| c.0), Some(1001), "closed with 'going away': resume elsewhere");
    let mut seen = c.events(&general);
    let resume_from = seen.iter().filter_map(|e| e["seq"].as_i64()).max().unwrap();

    // Reconnect through the same proxy: it sends the client to the pod that is left.
    let mut again =
        eventually(T, "a reconnect through nginx", || async { Client::connect(&nginx.ws_url(), &token(&ws, "alice")).await.ok() })
            .await
            .unwrap();
    again.send(json!({"t": "sync", "since": {general.clone(): resume_from}})).await.unwrap();
    let last = sending.await.unwrap();
    let deadline = Instant::now() + T;
    while again.wait_seq(&general, last, heartbeat).await.is_err() {
        assert!(Instant::now() < deadline, "seq {last} not delivered after the reconnect");
        again.request(json!({"t": "ping"})).await.unwrap();
    }
    seen.extend(again.events(&general));
    let dups = check_in_order(&seen, first_seq, last).unwrap_or_else(|e| panic!("lost or reordered across the drain: {e}"));
    assert!(dups <= N, "{dups} repeats");
    pods.clear();
}
