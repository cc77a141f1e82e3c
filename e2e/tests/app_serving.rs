//! What palaverd serves besides the API for the web app (issue 10): the dev sign-in, present only
//! with a development secret, and the app's files at `/`, with their caching and security
//! headers, also below a path prefix.

use std::time::Duration;

use palaver_e2e::{new_workspace, Client, Pod, PodOptions, Rest, Services};
use serde_json::json;

const T: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_sign_in_mints_tokens_that_work_and_refuses_bad_input() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "devsign").await.unwrap();
    let pod = Pod::start("pod-devsign", &svc, PodOptions::default()).await.unwrap();
    let anon = Rest::new(&pod.http_url(), "");

    let (s, body) = anon.get("/v1/dev").await.unwrap();
    assert_eq!(s, 200, "{body}");
    let listed: Vec<&str> = body["workspaces"].as_array().unwrap().iter().filter_map(|w| w.as_str()).collect();
    assert!(listed.contains(&ws.as_str()), "{ws} not in {listed:?}");
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "sorted: {listed:?}");

    let (s, body) = anon.post("/v1/dev/token", json!({"workspace": ws.as_str(), "user": "ada", "name": "  Ada Lovelace "})).await.unwrap();
    assert_eq!(s, 200, "{body}");
    assert_eq!((body["workspace"].as_str(), body["user"].as_str()), (Some(ws.as_str()), Some("ada")));
    let expires = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    let left = expires.signed_duration_since(chrono::Utc::now());
    assert!((11..=12).contains(&left.num_hours()), "a dev sign-in lasts 12 hours, this one {left}");
    let token = body["token"].as_str().unwrap();

    // The token is a real one: REST and the WebSocket take it, with the display name it carries.
    let ada = Rest::new(&pod.http_url(), token);
    let (s, me) = ada.get("/v1/users/ada").await.unwrap();
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["display_name"], "Ada Lovelace", "{me}");
    let c = Client::connect(&pod.ws_url(), token).await.unwrap();
    assert_eq!(c.hello["user"], "ada");
    assert!(c.channel_id("general").is_some(), "a new user joins the default channels: {}", c.hello);

    let refused = [
        (json!({"workspace": ws.as_str(), "user": "bad user"}), 400, "bad_request"),
        (json!({"workspace": ws.as_str(), "user": ""}), 400, "bad_request"),
        (json!({"workspace": ws.as_str(), "user": "ada", "name": "x".repeat(81)}), 400, "bad_request"),
        (json!({"workspace": ws.as_str(), "user": "ada", "name": "tab\tbed"}), 400, "bad_request"),
        (json!({"workspace": ws.as_str(), "user": "ada", "role": "owner"}), 400, "bad_request"),
        (json!({"user": "ada"}), 400, "bad_request"),
        (json!({"workspace": "Not A Name!", "user": "ada"}), 400, "bad_request"),
        (json!({"workspace": "no-such-workspace", "user": "ada"}), 404, "not_found"),
    ];
    for (req, status, code) in refused {
        let (s, body) = anon.post("/v1/dev/token", req.clone()).await.unwrap();
        assert_eq!((s, body["code"].as_str()), (status, Some(code)), "{req} → {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_dev_secret_there_is_no_dev_sign_in() {
    let svc = Services::from_env();
    let dir = std::env::temp_dir().join(format!("palaver-nodev-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("jwt.pub.pem");
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().public_key_pem()).unwrap();
    // An empty secret is no secret (an empty HMAC key would let anyone sign tokens).
    let env = [("PALAVER_DEV_JWT_SECRET", ""), ("PALAVER_JWT_PUBLIC_KEY_FILE", key.to_str().unwrap()), ("PALAVER_JWT_ALG", "ES256")];
    let opts = PodOptions { env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Default::default() };
    let pod = Pod::start("pod-nodev", &svc, opts).await.unwrap();
    let anon = Rest::new(&pod.http_url(), "");
    let (s, body) = anon.get("/v1/dev").await.unwrap();
    assert_eq!((s, body["code"].as_str()), (404, Some("not_found")), "{body}");
    let (s, body) = anon.post("/v1/dev/token", json!({"workspace": "demo", "user": "ada"})).await.unwrap();
    assert_eq!((s, body["code"].as_str()), (404, Some("not_found")), "{body}");
    std::fs::remove_dir_all(&dir).ok();
}

/// clients/web/dist, built by `make test` before cargo (scripts/web.sh).
fn built_page() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../clients/web/dist/index.html");
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}: build the web app first (`bash scripts/web.sh build`, which make test runs)"))
}

/// The `assets/…` files the page links.
fn linked_assets(page: &str) -> Vec<String> {
    page.split(['"', '\''])
        .filter_map(|s| s.strip_prefix("./").unwrap_or(s).strip_prefix("assets/").map(|rest| format!("assets/{rest}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_is_served_with_its_caching_and_security_headers() {
    let svc = Services::from_env();
    let page = built_page();
    let assets = linked_assets(&page);
    assert!(!assets.is_empty(), "the page links no assets/ files:\n{page}");
    let opts = PodOptions { env: vec![("PALAVER_PATH_PREFIX".into(), "/chat".into())], ..Default::default() };
    let pod = Pod::start("pod-app", &svc, opts).await.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(T).build().unwrap();
    let base = pod.http_url();

    for root in ["/", "/chat/"] {
        let r = http.get(format!("{base}{root}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {root}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        assert_eq!(h["cache-control"], "no-cache", "the page is revalidated, so a release shows at the next load");
        let csp = h["content-security-policy"].to_str().unwrap();
        let storage = svc.s3_endpoint.trim_end_matches('/');
        for part in ["default-src 'self'", "script-src 'self'", &format!("connect-src 'self' ws: wss: {storage}"), "frame-ancestors 'none'"]
        {
            assert!(csp.contains(part), "CSP lacks {part:?}: {csp}");
        }
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(r.text().await.unwrap(), page, "GET {root} is the built page");
        // Revalidation: the same ETag answers 304 with no body.
        let etag = h["etag"].clone();
        let again = http.get(format!("{base}{root}")).header("if-none-match", etag).send().await.unwrap();
        assert_eq!(again.status(), 304);
    }

    for asset in &assets {
        for path in [format!("/{asset}"), format!("/chat/{asset}")] {
            let r = http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "GET {path}");
            assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable", "{path}: hashed names never change meaning");
            assert_eq!(r.headers()["x-content-type-options"], "nosniff");
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            if asset.ends_with(".js") {
                assert_eq!(ct, "text/javascript; charset=utf-8", "{path}");
            } else if asset.ends_with(".css") {
                assert_eq!(ct, "text/css; charset=utf-8", "{path}");
            }
            assert!(!r.bytes().await.unwrap().is_empty(), "{path} is empty");
        }
    }

    // Not files of the build: the API's JSON 404, never the page.
    let anon = Rest::new(&base, "");
    for path in ["/assets/no-such-file.js", "/index.htm", "/v1/nothing-here"] {
        let (s, body) = anon.get(path).await.unwrap();
        assert_eq!((s, body["code"].as_str()), (404, Some("not_found")), "GET {path} → {body}");
    }

    // The prefix without its slash redirects to it (keeping the query): relative asset links
    // resolve inside the prefix the proxy routes.
    let r = http.get(format!("{base}/chat?token=abc")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/chat/?token=abc");
}
