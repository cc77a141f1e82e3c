//! The chart's RBAC against what the operator really calls, judged by a real API server's
//! authorizer. The operator (leader election and both controllers) runs as the chart's
//! ServiceAccount, bound to the chart's ClusterRole and leader-election Role, through the whole
//! life of a ChatCluster and a Workspace on a kube-apiserver with RBAC authorization and the
//! OwnerReferencesPermissionEnforcement admission plugin. Every request must be allowed (the
//! audit log records the authorizer's decision for each), and every permission the chart grants
//! must have been used (least privilege), save the few listed below with the reason they do not
//! show up as a request of their own.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use palaver_crds::resources::{ChatCluster, Workspace};
use palaver_e2e::kube_server::{gateway_api_httproute_crd, KubeOptions, KubeServer, OPERATOR_USER};
use palaver_e2e::operator::{
    apply_objects, chart_rbac, cond, create_cluster_secrets, example_cluster, fast_settings, mark_ready, wait_for,
};
use palaver_e2e::{eventually, free_port, Services};
use palaver_operator::{leader, operator};
use serde_json::{json, Value};

const NS: &str = "chat";
const T: Duration = Duration::from_secs(40);

/// Granted, needed on a real cluster, but not a request of its own in the audit log.
const NOT_REQUESTED: [(&str, &str, &str, &str); 2] = [
    (
        "palaver.dev",
        "chatclusters/finalizers",
        "update",
        "OwnerReferencesPermissionEnforcement checks it inside the create of an object owned with blockOwnerDeletion",
    ),
    ("events.k8s.io", "events", "patch", "the event recorder patches an Event that repeats within its cache window"),
];

/// The rules of the chart's ClusterRole and leader-election Role.
fn chart_rules() -> Vec<PolicyRule> {
    let mut rules = Vec::new();
    for v in chart_rbac() {
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

/// `(API group, resource[/subresource], verb)` of an audited request. A server-side apply that
/// created its object (201) was authorized as create too.
fn permissions(e: &Value) -> Vec<(String, String, String)> {
    let r = &e["objectRef"];
    let Some(resource) = r["resource"].as_str() else { return Vec::new() };
    let resource = match r["subresource"].as_str() {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_string(),
    };
    let group = r["apiGroup"].as_str().unwrap_or_default().to_string();
    let verb = e["verb"].as_str().unwrap_or_default().to_string();
    let mut out = vec![(group.clone(), resource.clone(), verb.clone())];
    if verb == "patch" && e["responseStatus"]["code"] == 201 {
        out.push((group, resource, "create".into()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_grants_exactly_what_the_operator_uses() {
    let svc = Services::from_env().private_database().await.unwrap();
    let server = KubeServer::start(KubeOptions::default()).await.unwrap();
    let client = server.client();
    for (plural, kind) in [("servicemonitors", "ServiceMonitor"), ("prometheusrules", "PrometheusRule")] {
        server.install_schemaless_crd("monitoring.coreos.com", plural, kind).await.unwrap();
    }
    server.install_crd_file(&gateway_api_httproute_crd().unwrap()).await.unwrap();
    apply_objects(&client, &chart_rbac()).await.unwrap();
    create_cluster_secrets(&client, NS, &svc.database_url).await.unwrap();
    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);
    // Exposed both ways, so the Ingress and HTTPRoute permissions are exercised too.
    let mut cc = example_cluster(NS, "main", &svc.kafka_brokers);
    cc.spec.ingress = Some(serde_json::from_value(json!({ "host": "chat.example.com" })).unwrap());
    cc.spec.gateway_api =
        Some(serde_json::from_value(json!({ "parentRefs": [{ "name": "gw" }], "hostnames": ["chat.example.com"] })).unwrap());
    clusters.create(&PostParams::default(), &cc).await.unwrap();

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
    let op = tokio::spawn(operator::run(server.operator_client(), opts, async move {
        let _ = rx.await;
    }));

    // A ChatCluster's life: created, ready, monitoring, autoscaling and exposure switched off.
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
        .patch(
            "main",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "autoscaling": null, "monitoring": null, "ingress": null, "gatewayAPI": null } })),
        )
        .await
        .unwrap();
    eventually(T, "the HPA, Ingress, HTTPRoute and monitoring objects deleted", || async {
        (server.names(NS, "autoscaling/v2/horizontalpodautoscalers").await.is_empty()
            && server.names(NS, "monitoring.coreos.com/v1/servicemonitors").await.is_empty()
            && server.names(NS, "networking.k8s.io/v1/ingresses").await.is_empty()
            && server.names(NS, "gateway.networking.k8s.io/v1/httproutes").await.is_empty())
        .then_some(())
    })
    .await
    .unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(T, op).await.expect("the operator stops").unwrap().unwrap();

    // The authorizer's verdict on every request the operator made.
    let audit = server.audit(OPERATOR_USER);
    assert!(audit.len() > 20, "too few audited requests: {audit:?}");
    let denied: Vec<_> = audit
        .iter()
        .filter(|e| e["annotations"]["authorization.k8s.io/decision"] != "allow" || e["responseStatus"]["code"] == 403)
        .collect();
    assert!(denied.is_empty(), "the operator calls what the chart does not grant: {denied:?}");
    let used: BTreeSet<(String, String, String)> = audit.iter().flat_map(permissions).collect();
    let grants = granted(&chart_rules());
    let outside: Vec<_> = used.difference(&grants).collect();
    assert!(outside.is_empty(), "allowed, but not by the chart's rules: {outside:?}");
    let exempt: BTreeSet<(String, String, String)> =
        NOT_REQUESTED.iter().map(|(g, r, v, _)| (g.to_string(), r.to_string(), v.to_string())).collect();
    let unused: Vec<_> = grants.difference(&used).filter(|p| !exempt.contains(*p)).collect();
    assert!(unused.is_empty(), "the chart grants what the operator never uses: {unused:?}");
    svc.drop_database().await.unwrap();
}
