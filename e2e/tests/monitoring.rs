//! Every metric a shipped dashboard panel or alert rule queries is exported by a running
//! palaverd or a running operator: a renamed metric cannot silently blank a panel or disarm an
//! alert.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use kube::api::PostParams;
use kube::Api;
use palaver_crds::resources::ChatCluster;
use palaver_e2e::kube_server::{KubeOptions, KubeServer};
use palaver_e2e::operator::{example_cluster, fast_settings};
use palaver_e2e::{eventually, free_port, Pod, PodOptions, Services};
use palaver_operator::{leader, operator};

/// `palaver_*` metric names in `text` (PromQL in JSON or YAML).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("palaver_") {
        let preceded_by_ident = rest[..i].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        if !preceded_by_ident {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// `(name, type)` of every metric family in `exposition`, from its `# TYPE` lines.
fn families(exposition: &str) -> Vec<(&str, &str)> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?, it.next()?))
        })
        .collect()
}

/// Series names a Prometheus scrape of `exposition` yields.
fn exported(exposition: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, kind) in families(exposition) {
        match kind {
            "counter" => drop(out.insert(format!("{name}_total"))),
            "histogram" => out.extend(["_bucket", "_count", "_sum"].map(|s| format!("{name}{s}"))),
            _ => drop(out.insert(name.to_string())),
        }
    }
    out
}

fn chart_files(dir: &str) -> Vec<(String, String)> {
    let dir = format!("{}/../charts/palaver/files/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        // alerts/tests/ holds the rules' promtool unit tests, not rules.
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn the_name_scanner_finds_names_in_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(palaver_x_seconds_bucket{job=~"palaver-.*"}[5m]))) > on() my_palaver_y"#,
    );
    assert_eq!(names, BTreeSet::from(["palaver_x_seconds_bucket".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_dashboards_and_alerts_is_exported() {
    // palaverd, serving one workspace.
    let svc = Services::from_env();
    let ws = palaver_e2e::new_workspace(&svc, "mon").await.unwrap();
    let pod = Pod::start("pod-m", &svc, PodOptions::default()).await.unwrap();
    // Frame and REST series exist once there was traffic of their kind.
    let tok = palaver_e2e::token(&ws, "alice");
    let mut alice = palaver_e2e::Client::connect(&pod.ws_url(), &tok).await.unwrap();
    let general = alice.channel_id("general").unwrap();
    let ack = alice.send_message(&general, "m1", "hello").await.unwrap();
    assert_eq!(ack["t"], "ack", "{ack}");
    let (status, _) = palaver_e2e::Rest::new(&pod.http_url(), &tok).get("/v1/channels").await.unwrap();
    assert_eq!(status, 200);
    let mut have = exported(&pod.metrics().await.unwrap());

    // The operator, reconciling a ChatCluster (it fails for want of Secrets, so the error
    // counter has a series too) against a real API server.
    let server = KubeServer::start(KubeOptions::default()).await.unwrap();
    let client = server.client();
    Api::<ChatCluster>::namespaced(client.clone(), "chat")
        .create(&PostParams::default(), &example_cluster("chat", "main", "kafka:9092"))
        .await
        .unwrap();
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let opts = operator::Options {
        listen,
        lease: leader::Settings {
            name: "palaver-operator".into(),
            namespace: "palaver-system".into(),
            identity: "test".into(),
            lease_duration: Duration::from_secs(5),
            retry: Duration::from_millis(200),
        },
        namespace: None,
        settings: fast_settings(),
    };
    let op = tokio::spawn(operator::run(server.controller_client(), opts, async move {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    let text = eventually(Duration::from_secs(20), "operator metrics with a reconcile error", || {
        let http = http.clone();
        async move {
            let text = http.get(format!("http://{listen}/metrics")).send().await.ok()?.text().await.ok()?;
            text.contains("palaver_operator_reconcile_errors_total{").then_some(text)
        }
    })
    .await
    .unwrap();
    have.extend(exported(&text));
    // The operator's metrics (every family has a series by now) are the ones documented.
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/observability.md")).unwrap();
    let operator_families = families(&text);
    assert_eq!(operator_families.len(), 5, "{operator_families:?}");
    let undocumented: Vec<_> = operator_families
        .iter()
        .map(|(name, kind)| if *kind == "counter" { format!("{name}_total") } else { name.to_string() })
        .filter(|n| !docs.contains(&format!("`{n}`")))
        .collect();
    assert!(undocumented.is_empty(), "undocumented in docs/observability.md: {undocumented:?}");
    let ready = http.get(format!("http://{listen}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let mut wanted = BTreeSet::new();
    for (dir, min_files) in [("dashboards", 2), ("alerts", 2)] {
        let files = chart_files(dir);
        assert!(files.len() >= min_files, "{dir}: {files:?}");
        for (file, text) in files {
            let names = metric_names(&text);
            assert!(names.len() >= 3, "{file} queries too few metrics: {names:?}");
            wanted.extend(names.into_iter().map(|n| (n, file.clone())));
        }
    }
    let missing: Vec<_> = wanted.iter().filter(|(n, _)| !have.contains(n)).collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}\nexported: {have:?}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), op).await.expect("the operator shuts down").unwrap().unwrap();
}
