//! The shipped `palaver-operator run` binary, against a real kube-apiserver through a kubeconfig
//! (TLS, the chart's ServiceAccount and RBAC): it becomes ready, leads, reconciles, logs JSON,
//! and on SIGTERM stops, releases its Lease and exits 0.

use std::process::Stdio;
use std::time::Duration;

use kube::api::PostParams;
use kube::Api;
use palaver_crds::resources::ChatCluster;
use palaver_e2e::kube_server::{KubeOptions, KubeServer};
use palaver_e2e::operator::{apply_objects, chart_rbac, create_cluster_secrets, example_cluster};
use palaver_e2e::{eventually, free_port};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_binary_reconciles_and_shuts_down_cleanly_on_sigterm() {
    let server = KubeServer::start(KubeOptions::default()).await.unwrap();
    let client = server.client();
    apply_objects(&client, &chart_rbac()).await.unwrap();
    create_cluster_secrets(&client, "chat", "postgres://unused").await.unwrap();
    Api::<ChatCluster>::namespaced(client.clone(), "chat")
        .create(&PostParams::default(), &example_cluster("chat", "main", "kafka:9092"))
        .await
        .unwrap();
    let kubeconfig = server.operator_kubeconfig().unwrap();

    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = tokio::process::Command::new(palaver_e2e::procs::operator_bin())
        .arg("run")
        .env("KUBECONFIG", &kubeconfig)
        .env("PALAVER_OPERATOR_LISTEN", &listen)
        .env("POD_NAMESPACE", "palaver-system")
        // As the chart sets it: the Lease its leader-election Role names.
        .env("PALAVER_OPERATOR_LEASE", "palaver")
        .env("POD_NAME", "operator-0")
        .env("RUST_LOG", "info")
        .env_remove("PALAVER_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let logs = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Ok(Some(l)) = stderr.next_line().await {
            lines.push(l);
        }
        lines
    });

    let http = reqwest::Client::new();
    eventually(T, "/readyz 200", || async {
        (http.get(format!("http://{listen}/readyz")).send().await.ok()?.status() == 200).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(http.get(format!("http://{listen}/healthz")).send().await.unwrap().status(), 200);
    eventually(T, "the Deployment of the ChatCluster", || async { server.object("chat", "apps/v1/deployments", "main-gateway").await })
        .await
        .unwrap();
    let metrics = http.get(format!("http://{listen}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("palaver_operator_leader 1"), "{metrics}");
    let lease = server.object("palaver-system", "coordination.k8s.io/v1/leases", "palaver").await.expect("the Lease");
    assert_eq!(lease["spec"]["holderIdentity"], "operator-0");

    let pid = child.id().unwrap().to_string();
    // The shell's builtin kill: no procps needed.
    assert!(std::process::Command::new("sh").args(["-c", &format!("kill -TERM {pid}")]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("exits after SIGTERM").unwrap();
    assert!(status.success(), "{status}");
    let lease = server.object("palaver-system", "coordination.k8s.io/v1/leases", "palaver").await.unwrap();
    assert!(lease["spec"].get("holderIdentity").is_none_or(Value::is_null), "the Lease is released on shutdown: {lease}");

    let lines = logs.await.unwrap();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"));
        assert!(v.get("level").is_some(), "{l}");
    }
    assert!(lines.iter().any(|l| l.contains("shutting down")), "{lines:?}");
}
