//! The chart's RBAC against what the operator really calls. The operator process (leader
//! election and both controllers) runs against the in-memory API through the whole life of a
//! ChatCluster and a Workspace; every request it makes must be allowed by the chart's ClusterRole
//! or leader-election Role, and every permission the chart grants must have been used (least
//! privilege), save the few listed below with the reason they cannot show up here.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use palaver_crds::resources::{ChatCluster, Workspace};
use palaver_e2e::kube_api::ApiServer;
use palaver_e2e::operator::{cond, create_cluster_secrets, example_cluster, fast_settings, mark_ready, wait_for};
use palaver_e2e::{eventually, free_port, Services};
use palaver_operator::{leader, operator};
use serde_json::{json, Value};

const NS: &str = "chat";
const T: Duration = Duration::from_secs(40);

/// Granted, needed on a real cluster, but never requested by the operator itself.
const NOT_REQUESTED: [(&str, &str, &str, &str); 2] = [
    ("palaver.dev", "chatclusters/finalizers", "update", "admission checks it for owner references with blockOwnerDeletion"),
    ("events.k8s.io", "events", "patch", "the event recorder patches an Event that repeats within its cache window"),
];

/// The rules of the chart's ClusterRole and leader-election Role, from the template (its
/// template expressions only name things; the rules are literal YAML).
fn chart_rules() -> Vec<PolicyRule> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/palaver/templates/rbac.yaml")).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.contains("{{-"))
        .map(|l| {
            l.replace(r#"{{ include "palaver.fullname" . }}"#, "palaver")
                .replace(r#"{{ include "palaver.serviceAccountName" . }}"#, "palaver")
                .replace("{{ .Release.Namespace }}", "palaver-system")
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!text.contains("{{"), "a template expression the test does not know: {text}");
    let mut rules = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        if matches!(v["kind"].as_str(), Some("ClusterRole" | "Role")) {
            rules.extend(serde_json::from_value::<Vec<PolicyRule>>(v["rules"].clone()).unwrap());
        }
    }
    assert!(rules.len() >= 5, "{rules:?}");
    rules
}

fn granted(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for r in rules {
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    assert!(g != "*" && res != "*" && v != "*", "wildcard in the chart's RBAC: {r:?}");
                    out.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_grants_exactly_what_the_operator_uses() {
    let svc = Services::from_env().private_database().await.unwrap();
    let server = ApiServer::new();
    let client = server.client();
    for (plural, kind) in [("servicemonitors", "ServiceMonitor"), ("prometheusrules", "PrometheusRule")] {
        let crd = serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": { "name": format!("{plural}.monitoring.coreos.com") },
            "spec": { "group": "monitoring.coreos.com", "scope": "Namespaced", "names": { "plural": plural, "kind": kind },
                      "versions": [{ "name": "v1", "served": true, "storage": true }] }
        }))
        .unwrap();
        Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(client.clone())
            .create(&PostParams::default(), &crd)
            .await
            .unwrap();
    }
    create_cluster_secrets(&client, NS, &svc.database_url).await.unwrap();
    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);
    clusters.create(&PostParams::default(), &example_cluster(NS, "main", &svc.kafka_brokers)).await.unwrap();

    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let opts = operator::Options {
        listen,
        lease: leader::Settings {
            name: "palaver".into(),
            namespace: "palaver-system".into(),
            identity: "op-0".into(),
            lease_duration: Duration::from_secs(5),
            retry: Duration::from_millis(200),
        },
        namespace: None,
        settings: fast_settings(),
    };
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let op = tokio::spawn(operator::run(server.client_as("operator"), opts, async move {
        let _ = rx.await;
    }));

    // A ChatCluster's life: created, ready, monitoring and autoscaling switched off.
    wait_for(&clusters, "main", "observed", T, |c| c.status.as_ref().is_some_and(|s| s.observed_generation == Some(1))).await.unwrap();
    mark_ready(&client, NS, "main-gateway", 2).await.unwrap();
    wait_for(&clusters, "main", "Ready", T, |c| {
        c.status.as_ref().is_some_and(|s| cond(&s.conditions, "Ready").is_some_and(|(st, _)| st == "True"))
    })
    .await
    .unwrap();

    // A Workspace's life: provisioned, then deleted (finalizer released).
    let workspaces = Api::<Workspace>::namespaced(client.clone(), NS);
    let name = palaver_e2e::unique_workspace("rbac").to_string();
    let ws: Workspace = serde_json::from_value(json!({
        "apiVersion": "palaver.dev/v1alpha1", "kind": "Workspace", "metadata": { "name": name, "namespace": NS },
        "spec": { "clusterRef": "main", "partitions": 1, "deletionPolicy": "Retain" }
    }))
    .unwrap();
    workspaces.create(&PostParams::default(), &ws).await.unwrap();
    wait_for(&workspaces, &name, "Ready", T, |w| {
        w.status.as_ref().is_some_and(|s| cond(&s.conditions, "Ready").is_some_and(|(st, _)| st == "True"))
    })
    .await
    .unwrap();
    workspaces.delete(&name, &DeleteParams::default()).await.unwrap();
    eventually(T, "the Workspace gone", || async { workspaces.get_opt(&name).await.unwrap().is_none().then_some(()) }).await.unwrap();

    clusters
        .patch("main", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "autoscaling": null, "monitoring": null } })))
        .await
        .unwrap();
    eventually(T, "the HPA and monitoring objects deleted", || async {
        (server.names("autoscaling/horizontalpodautoscalers", NS).is_empty()
            && server.names("monitoring.coreos.com/servicemonitors", NS).is_empty())
        .then_some(())
    })
    .await
    .unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(T, op).await.expect("the operator stops").unwrap().unwrap();

    let used: BTreeSet<(String, String, String)> = server
        .calls()
        .iter()
        .filter(|c| c.client == "operator")
        .flat_map(|c| c.permissions())
        .map(|(g, r, v)| (g, r, v.to_string()))
        .collect();
    let grants = granted(&chart_rules());
    let denied: Vec<_> = used.difference(&grants).collect();
    assert!(denied.is_empty(), "the operator calls what the chart does not grant: {denied:?}");
    let exempt: BTreeSet<(String, String, String)> =
        NOT_REQUESTED.iter().map(|(g, r, v, _)| (g.to_string(), r.to_string(), v.to_string())).collect();
    let unused: Vec<_> = grants.difference(&used).filter(|p| !exempt.contains(*p)).collect();
    assert!(unused.is_empty(), "the chart grants what the operator never uses: {unused:?}");
    svc.drop_database().await.unwrap();
}
