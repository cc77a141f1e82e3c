//! The ChatCluster controller against the in-memory Kubernetes API: the objects it creates,
//! idempotence, drift repair, status, failure behaviour, and leader election.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use palaver_crds::resources::ChatCluster;
use palaver_e2e::eventually;
use palaver_e2e::kube_api::ApiServer;
use palaver_e2e::operator::{cond, condition, create_cluster_secrets, example_cluster, fast_settings, mark_ready, wait_for};
use palaver_operator::controller::{chatcluster, Context};
use palaver_operator::leader::{self, Elector};
use palaver_operator::metrics::Metrics;
use serde_json::json;
use tokio::sync::watch;

const NS: &str = "chat";
const T: Duration = Duration::from_secs(20);

fn context(client: &Client) -> Arc<Context> {
    Context::new(client.clone(), Arc::new(Metrics::new()), fast_settings(), None)
}

async fn create_cluster(client: &Client, cc: &ChatCluster) -> ChatCluster {
    Api::<ChatCluster>::namespaced(client.clone(), NS).create(&PostParams::default(), cc).await.unwrap()
}

/// Installs the CRD of `plural.group` (only its existence matters to the controller).
async fn install_crd(client: &Client, group: &str, plural: &str, kind: &str) {
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{plural}.{group}") },
        "spec": { "group": group, "scope": "Namespaced",
                  "names": { "plural": plural, "kind": kind },
                  "versions": [{ "name": "v1", "served": true, "storage": true }] }
    }))
    .unwrap();
    Api::all(client.clone()).create(&PostParams::default(), &crd).await.unwrap();
}

async fn events(client: &Client) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), NS).list(&ListParams::default()).await.unwrap().items
}

fn spawn_controller(ctx: Arc<Context>) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, mut rx) = watch::channel(false);
    let task = tokio::spawn(chatcluster::run(ctx, None, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    (stop, task)
}

#[tokio::test]
async fn chatcluster_creates_its_objects_with_owner_references_and_a_second_reconcile_writes_nothing() {
    let server = ApiServer::new();
    let client = server.client();
    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    let cc = create_cluster(&client, &example_cluster(NS, "main", "kafka:9092")).await;
    let ctx = context(&client);
    chatcluster::reconcile(Arc::new(cc.clone()), ctx.clone()).await.unwrap();

    // Exactly the expected objects, each owned (controller=true) by the ChatCluster.
    let owned = [
        ("apps/deployments", vec!["main-gateway"]),
        ("/services", vec!["main", "main-headless"]),
        ("/configmaps", vec!["main-config", "main-dashboards"]),
        ("policy/poddisruptionbudgets", vec!["main-gateway"]),
        ("autoscaling/horizontalpodautoscalers", vec!["main-gateway"]),
    ];
    for (res, names) in &owned {
        assert_eq!(&server.names(res, NS), names, "{res}");
        for name in names {
            let o = server.object(res, NS, name).unwrap();
            let refs = o["metadata"]["ownerReferences"].as_array().unwrap();
            assert_eq!(refs.len(), 1, "{res}/{name}: {refs:?}");
            assert_eq!(refs[0]["kind"], "ChatCluster");
            assert_eq!(refs[0]["uid"].as_str(), cc.uid().as_deref());
            assert_eq!(refs[0]["controller"], true);
            assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/managed-by"], "palaver-operator", "{res}/{name}");
        }
    }
    // Monitoring CRDs are not installed: nothing created, said on the status and in an Event.
    assert!(server.names("monitoring.coreos.com/servicemonitors", NS).is_empty());
    let cc = Api::<ChatCluster>::namespaced(client.clone(), NS).get("main").await.unwrap();
    let status = cc.status.clone().unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.workspaces, Some(0));
    assert_eq!(cond(&status.conditions, "Ready"), Some(("False".into(), "GatewayUnavailable".into())));
    assert_eq!(cond(&status.conditions, "Progressing"), Some(("True".into(), "RollingOut".into())));
    assert_eq!(cond(&status.conditions, "Degraded"), Some(("True".into(), "MonitoringUnavailable".into())));
    let evs = events(&client).await;
    assert!(evs.iter().any(|e| e.reason.as_deref() == Some("MonitoringUnavailable") && e.type_.as_deref() == Some("Warning")), "{evs:?}");

    // Idempotent: reconciling the unchanged ChatCluster changes nothing anywhere.
    let before = server.resource_version();
    let calls = server.calls().len();
    chatcluster::reconcile(Arc::new(cc), ctx).await.unwrap();
    assert_eq!(server.resource_version(), before, "a second reconcile changed something");
    let writes: Vec<_> = server.calls()[calls..].iter().filter(|c| c.is_write()).map(|c| c.path.clone()).collect();
    // Server-side apply re-sends the desired objects (a no-op for the API server); nothing else.
    assert!(writes.iter().all(|p| !p.ends_with("/status") && !p.contains("/events")), "{writes:?}");
}

#[tokio::test]
async fn chatcluster_controller_repairs_drift_reports_readiness_and_settles() {
    let server = ApiServer::new();
    let client = server.client();
    install_crd(&client, "monitoring.coreos.com", "servicemonitors", "ServiceMonitor").await;
    install_crd(&client, "monitoring.coreos.com", "prometheusrules", "PrometheusRule").await;
    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    create_cluster(&client, &example_cluster(NS, "main", "kafka:9092")).await;
    let (stop, task) = spawn_controller(context(&client));

    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    let cc = wait_for(&clusters, "main", "status observed", T, |c| c.status.as_ref().is_some_and(|s| s.observed_generation == Some(1)))
        .await
        .unwrap();
    let degraded_since = condition(&cc.status.unwrap().conditions, "Degraded").unwrap().clone();
    assert_eq!(degraded_since.status, "False", "monitoring CRDs are installed: {degraded_since:?}");
    assert_eq!(server.names("monitoring.coreos.com/servicemonitors", NS), ["main"]);
    assert_eq!(server.names("monitoring.coreos.com/prometheusrules", NS), ["main"]);

    // A hand-edited Deployment is put back.
    let mut d = deployments.get("main-gateway").await.unwrap();
    let image = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].image.clone().unwrap();
    d.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].image = Some("evil:latest".into());
    deployments.replace("main-gateway", &PostParams::default(), &d).await.unwrap();
    let image_of = |d: &Deployment| d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].image.clone();
    wait_for(&deployments, "main-gateway", "the image reverted", T, |d| image_of(d) == Some(image.clone())).await.unwrap();

    // A deleted Service comes back.
    Api::<Service>::namespaced(client.clone(), NS).delete("main", &DeleteParams::default()).await.unwrap();
    wait_for(&Api::<Service>::namespaced(client.clone(), NS), "main", "the Service recreated", T, |_| true).await.unwrap();

    // Pods becoming ready flip Ready; Degraded, unchanged, keeps its transition time.
    mark_ready(&client, NS, "main-gateway", 2).await.unwrap();
    let cc = wait_for(&clusters, "main", "Ready", T, |c| {
        c.status.as_ref().is_some_and(|s| cond(&s.conditions, "Ready") == Some(("True".into(), "GatewayAvailable".into())))
    })
    .await
    .unwrap();
    let status = cc.status.unwrap();
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(cond(&status.conditions, "Progressing"), Some(("False".into(), "RolloutComplete".into())));
    assert_eq!(condition(&status.conditions, "Degraded"), Some(&degraded_since));

    // A spec change is observed under its new generation.
    clusters.patch("main", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "image": "palaverd:next" } }))).await.unwrap();
    wait_for(&clusters, "main", "generation 2 observed", T, |c| c.status.as_ref().is_some_and(|s| s.observed_generation == Some(2)))
        .await
        .unwrap();
    wait_for(&deployments, "main-gateway", "the new image", T, |d| image_of(d).as_deref() == Some("palaverd:next")).await.unwrap();

    // Settled: no hot loop. Watch events of its own writes must not make it write again.
    let settle = |server: ApiServer| async move {
        let mut last = server.resource_version();
        eventually(T, "writes to stop", || {
            let now = server.resource_version();
            let quiet = now == last;
            last = now;
            async move { quiet.then_some(()) }
        })
        .await
    };
    settle(server.clone()).await.unwrap();
    let (rv, writes) = (server.resource_version(), server.calls().iter().filter(|c| c.is_write()).count());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.resource_version(), rv, "the controller kept changing objects while nothing changed");
    assert_eq!(server.calls().iter().filter(|c| c.is_write()).count(), writes, "the controller kept sending writes while nothing changed");

    stop.send_replace(true);
    tokio::time::timeout(T, task).await.expect("the controller stops on shutdown").unwrap();
}

#[tokio::test]
async fn missing_secret_degrades_with_an_event_and_recovers_when_it_appears() {
    let server = ApiServer::new();
    let client = server.client();
    let mut cc = example_cluster(NS, "main", "kafka:9092");
    cc.spec.monitoring = None;
    create_cluster(&client, &cc).await;
    let (stop, task) = spawn_controller(context(&client));
    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);

    let cc = wait_for(&clusters, "main", "Degraded", T, |c| c.status.as_ref().is_some_and(|s| cond(&s.conditions, "Degraded").is_some()))
        .await
        .unwrap();
    let status = cc.status.unwrap();
    let degraded = condition(&status.conditions, "Degraded").unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "SecretNotFound"));
    assert!(degraded.message.contains("chat/palaver-postgres"), "{degraded:?}");
    assert!(server.names("apps/deployments", NS).is_empty(), "no Deployment without its Secrets");
    let evs = events(&client).await;
    assert!(evs.iter().any(|e| e.reason.as_deref() == Some("SecretNotFound") && e.type_.as_deref() == Some("Warning")), "{evs:?}");
    // Retried with backoff, not in a tight loop: the retries stay few.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let gets = server.calls().iter().filter(|c| c.path.ends_with("/secrets/palaver-postgres")).count();
    assert!((2..=8).contains(&gets), "{gets} Secret lookups in ~1.5 s of backoff");
    assert!(!task.is_finished(), "the controller is still running");

    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    wait_for(&clusters, "main", "recovered", T, |c| {
        c.status.as_ref().is_some_and(|s| cond(&s.conditions, "Degraded").is_some_and(|(st, _)| st == "False"))
    })
    .await
    .unwrap();
    assert_eq!(server.names("apps/deployments", NS), ["main-gateway"]);
    let config_maps: Vec<String> = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(config_maps, ["main-config"], "monitoring is off: no dashboards ConfigMap");
    stop.send_replace(true);
    tokio::time::timeout(T, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn one_of_two_replicas_leads_and_the_other_takes_over_on_release() {
    let server = ApiServer::new();
    let client = server.client();
    let settings = |id: &str| leader::Settings {
        name: "palaver-operator".into(),
        namespace: "palaver-system".into(),
        identity: id.into(),
        lease_duration: Duration::from_secs(3),
        retry: Duration::from_millis(200),
    };
    let (stop_a, rx_a) = watch::channel(false);
    let (stop_b, rx_b) = watch::channel(false);
    let (lead_a, task_a) = Elector::new(client.clone(), settings("a")).spawn(Arc::new(Metrics::new()), rx_a);
    let (lead_b, task_b) = Elector::new(client.clone(), settings("b")).spawn(Arc::new(Metrics::new()), rx_b);
    let both = || (*lead_a.borrow(), *lead_b.borrow());
    let first = eventually(T, "a leader", || async { matches!(both(), (true, false) | (false, true)).then(both) }).await.unwrap();
    // Several renewals later there is still exactly one.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(both(), first, "leadership moved while the leader was healthy");

    let (stop_leader, leader_task, mut standby) = if first.0 { (stop_a, task_a, lead_b.clone()) } else { (stop_b, task_b, lead_a.clone()) };
    stop_leader.send_replace(true);
    tokio::time::timeout(T, leader_task).await.unwrap().unwrap();
    // Released on shutdown: the standby takes over well before the Lease would expire.
    tokio::time::timeout(Duration::from_secs(2), standby.wait_for(|l| *l)).await.expect("takeover after release").unwrap();
    let lease: k8s_openapi::api::coordination::v1::Lease =
        Api::namespaced(client.clone(), "palaver-system").get("palaver-operator").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(if first.0 { "b" } else { "a" }));
    assert_eq!(spec.lease_transitions, Some(1));
}

#[tokio::test]
async fn api_server_errors_degrade_the_cluster_until_they_stop() {
    let server = ApiServer::new();
    let client = server.client();
    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    // The API server refuses every write to Deployments.
    server.fail_when(|call| (call.is_write() && call.path.contains("/deployments/")).then_some(500));
    create_cluster(&client, &example_cluster(NS, "main", "kafka:9092")).await;
    let (stop, task) = spawn_controller(context(&client));
    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);
    let cc = wait_for(&clusters, "main", "Degraded", T, |c| {
        c.status.as_ref().is_some_and(|s| cond(&s.conditions, "Degraded") == Some(("True".into(), "KubernetesApiError".into())))
    })
    .await
    .unwrap();
    assert!(server.names("apps/deployments", NS).is_empty());
    assert!(cc.status.unwrap().conditions.iter().any(|c| c.type_ == "Degraded" && c.message.contains("injected failure")));

    server.clear_faults();
    wait_for(&clusters, "main", "recovered", T, |c| {
        c.status.as_ref().is_some_and(|s| cond(&s.conditions, "Degraded").is_some_and(|(_, reason)| reason != "KubernetesApiError"))
    })
    .await
    .unwrap();
    assert_eq!(server.names("apps/deployments", NS), ["main-gateway"]);
    stop.send_replace(true);
    tokio::time::timeout(T, task).await.unwrap().unwrap();
}
