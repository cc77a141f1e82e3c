//! How a ChatCluster exposes its gateway, against a real kube-apiserver (e2e/src/kube_server.rs):
//! the Ingress (validated by the API server on apply, its drift repaired through the watch,
//! deleted when unset), a LoadBalancer Service, status.url following each, and the Gateway API
//! HTTPRoute — skipped with Degraded=GatewayAPIUnavailable where its CRD is missing, applied
//! against the real, published HTTPRoute CRD (its schema, defaults and CEL rules) where it is.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use palaver_crds::resources::{ChatCluster, ChatClusterStatus};
use palaver_e2e::eventually;
use palaver_e2e::kube_server::{gateway_api_httproute_crd, KubeOptions, KubeServer, CONTROLLER_USER};
use palaver_e2e::operator::{cond, create_cluster_secrets, example_cluster, fast_settings, mark_ready, wait_for};
use palaver_operator::controller::{chatcluster, objects, Context};
use palaver_operator::metrics::Metrics;
use serde_json::{json, Value};
use tokio::sync::watch;

const NS: &str = "chat";
const T: Duration = Duration::from_secs(30);
const IN_CLUSTER: &str = "ws://main.chat.svc/v1/ws";
const INGRESSES: &str = "networking.k8s.io/v1/ingresses";
const ROUTES: &str = "gateway.networking.k8s.io/v1/httproutes";

fn context(client: &Client) -> Arc<Context> {
    Context::new(client.clone(), Arc::new(Metrics::new()), fast_settings(), None)
}

/// examples/chatcluster.yaml without monitoring (its Degraded reason would be another's) and
/// autoscaling, created.
async fn create_cluster(client: &Client) -> ChatCluster {
    let mut cc = example_cluster(NS, "main", "kafka:9092");
    cc.spec.monitoring = None;
    cc.spec.autoscaling = None;
    Api::<ChatCluster>::namespaced(client.clone(), NS).create(&PostParams::default(), &cc).await.unwrap()
}

fn spawn_controller(ctx: Arc<Context>) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, mut rx) = watch::channel(false);
    let task = tokio::spawn(chatcluster::run(ctx, None, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    (stop, task)
}

async fn patch_spec(clusters: &Api<ChatCluster>, spec: Value) {
    clusters.patch("main", &PatchParams::default(), &Patch::Merge(json!({ "spec": spec }))).await.unwrap();
}

/// Waits until the status describes the current generation and `check` accepts it.
async fn wait_status(clusters: &Api<ChatCluster>, what: &str, check: impl Fn(&ChatClusterStatus) -> bool) -> ChatCluster {
    wait_for(clusters, "main", what, T, |c| c.status.as_ref().is_some_and(|s| s.observed_generation == c.metadata.generation && check(s)))
        .await
        .unwrap()
}

/// The Ingress's paths with their types, as stored.
fn ingress_paths(i: &Ingress) -> Vec<(&str, &str)> {
    let rule = &i.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
    rule.http.as_ref().unwrap().paths.iter().map(|p| (p.path.as_deref().unwrap_or_default(), p.path_type.as_str())).collect()
}

fn url_is(want: &'static str) -> impl Fn(&ChatClusterStatus) -> bool {
    move |s| s.url.as_deref() == Some(want)
}

#[tokio::test]
async fn the_ingress_and_load_balancer_follow_the_spec_and_status_url_follows_them() {
    let server = KubeServer::start(KubeOptions::default()).await.expect("a test API server");
    let client = server.client();
    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    create_cluster(&client).await;
    let (stop, task) = spawn_controller(context(&server.controller_client()));
    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);
    let ingresses = Api::<Ingress>::namespaced(client.clone(), NS);

    // Nothing asked for: no Ingress, no HTTPRoute, the in-cluster URL.
    let cc = wait_status(&clusters, "the in-cluster URL", url_is(IN_CLUSTER)).await;
    assert!(server.names(NS, INGRESSES).await.is_empty());
    assert!(server.names(NS, ROUTES).await.is_empty());
    assert_eq!(cond(&cc.status.unwrap().conditions, "Degraded"), Some(("False".into(), "AsExpected".into())));

    // An Ingress with TLS from a Secret, a class and an extra annotation: the API server
    // validated it on apply, and what it stores is what the builder made.
    patch_spec(
        &clusters,
        json!({ "ingress": { "className": "nginx", "host": "chat.example.com",
                             "tls": { "secretName": "chat-cert" }, "annotations": { "example.com/team": "chat" } } }),
    )
    .await;
    let cc = wait_status(&clusters, "the Ingress's URL", url_is("wss://chat.example.com/v1/ws")).await;
    let built = objects::ingress(&cc).unwrap();
    let stored = ingresses.get("main").await.unwrap();
    assert_eq!(stored.spec, built.spec);
    assert_eq!(stored.metadata.labels, built.metadata.labels);
    let annotations = stored.metadata.annotations.clone().unwrap();
    assert_eq!(annotations, built.metadata.annotations.unwrap());
    assert_eq!(annotations["example.com/team"], "chat");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"], "3600");
    let owner = &stored.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("ChatCluster", cc.uid().unwrap().as_str(), Some(true)));
    assert_eq!(ingress_paths(&stored), [("/v1", "Prefix"), ("/assets", "Prefix"), ("/", "Exact")], "the API and the web app only");

    // Deleted by hand, it comes back at once (the controller watches Ingresses).
    let first_uid = stored.uid();
    ingresses.delete("main", &DeleteParams::default()).await.unwrap();
    wait_for(&ingresses, "main", "the Ingress recreated", T, |i| i.uid() != first_uid).await.unwrap();

    // Unset, it goes; the URL falls back to the in-cluster one.
    patch_spec(&clusters, json!({ "ingress": null })).await;
    wait_status(&clusters, "the in-cluster URL again", url_is(IN_CLUSTER)).await;
    eventually(T, "the Ingress deleted", || async { server.names(NS, INGRESSES).await.is_empty().then_some(()) }).await.unwrap();

    // A LoadBalancer: in-cluster URL until the cloud assigns an address (set by hand here, as a
    // cloud controller would), then that address.
    let services = Api::<Service>::namespaced(client.clone(), NS);
    patch_spec(
        &clusters,
        json!({ "service": { "type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24"],
                             "annotations": { "example.com/idle-timeout": "3600" } } }),
    )
    .await;
    wait_for(&services, "main", "a LoadBalancer Service", T, |s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"))
        .await
        .unwrap();
    wait_status(&clusters, "the in-cluster URL without an address", url_is(IN_CLUSTER)).await;
    let address = json!({ "status": { "loadBalancer": { "ingress": [{ "ip": "203.0.113.7" }] } } });
    services.patch_status("main", &PatchParams::default(), &Patch::Merge(address)).await.unwrap();
    wait_status(&clusters, "the load balancer's URL", url_is("ws://203.0.113.7/v1/ws")).await;
    let svc = services.get("main").await.unwrap();
    assert_eq!(svc.metadata.annotations.as_ref().unwrap()["example.com/idle-timeout"], "3600");
    assert_eq!(svc.spec.as_ref().unwrap().load_balancer_source_ranges.as_deref(), Some(&["203.0.113.0/24".to_string()][..]));

    // Back to ClusterIP: the API server takes the type change (and drops the node port it had
    // allocated) from the operator's apply.
    patch_spec(&clusters, json!({ "service": null })).await;
    wait_status(&clusters, "the in-cluster URL after the LoadBalancer", url_is(IN_CLUSTER)).await;
    let spec = services.get("main").await.unwrap().spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert!(spec.ports.unwrap()[0].node_port.is_none() && spec.load_balancer_source_ranges.is_none());
    let cc = clusters.get("main").await.unwrap();
    assert_eq!(cond(&cc.status.unwrap().conditions, "Degraded"), Some(("False".into(), "AsExpected".into())));

    stop.send_replace(true);
    tokio::time::timeout(T, task).await.expect("the controller stops").unwrap();
}

#[tokio::test]
async fn gateway_api_without_its_crds_degrades_and_keeps_the_rest_going() {
    let server = KubeServer::start(KubeOptions::default()).await.expect("a test API server");
    let client = server.client();
    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    create_cluster(&client).await;
    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);
    patch_spec(
        &clusters,
        json!({ "gatewayAPI": { "parentRefs": [{ "name": "public", "namespace": "gateways" }],
                                "hostnames": ["chat.example.com"], "path": "/chat/" } }),
    )
    .await;
    let (stop, task) = spawn_controller(context(&server.controller_client()));

    // No route (there is no HTTPRoute API to make it in), said on the status and in an Event;
    // the URL is still the route's, and palaverd is told the prefix.
    let cc = wait_status(&clusters, "Degraded for the Gateway API", |s| {
        cond(&s.conditions, "Degraded") == Some(("True".into(), "GatewayAPIUnavailable".into()))
    })
    .await;
    let status = cc.status.unwrap();
    assert_eq!(status.url.as_deref(), Some("wss://chat.example.com/chat/v1/ws"));
    let degraded = palaver_e2e::operator::condition(&status.conditions, "Degraded").unwrap();
    assert!(degraded.message.contains("httproutes.gateway.networking.k8s.io"), "{degraded:?}");
    assert!(server.names(NS, ROUTES).await.is_empty());
    let config = Api::<ConfigMap>::namespaced(client.clone(), NS).get("main-config").await.unwrap().data.unwrap();
    assert_eq!(config["PALAVER_PATH_PREFIX"], "/chat");
    let events = eventually(T, "a GatewayAPIUnavailable Event", || async {
        let evs = Api::<Event>::namespaced(client.clone(), NS).list(&ListParams::default()).await.ok()?.items;
        evs.iter().any(|e| e.reason.as_deref() == Some("GatewayAPIUnavailable") && e.type_.as_deref() == Some("Warning")).then_some(evs)
    })
    .await
    .unwrap();
    assert!(!events.iter().any(|e| e.reason.as_deref() == Some("MonitoringUnavailable")), "{events:?}");

    // Ready still follows the pods.
    assert_eq!(cond(&status.conditions, "Ready"), Some(("False".into(), "GatewayUnavailable".into())));
    mark_ready(&client, NS, "main-gateway", 2).await.unwrap();
    let cc = wait_status(&clusters, "Ready while Degraded", |s| {
        cond(&s.conditions, "Ready") == Some(("True".into(), "GatewayAvailable".into()))
    })
    .await;
    assert_eq!(cond(&cc.status.unwrap().conditions, "Degraded"), Some(("True".into(), "GatewayAPIUnavailable".into())));

    // Unset, the warning goes.
    patch_spec(&clusters, json!({ "gatewayAPI": null })).await;
    let cc = wait_status(&clusters, "no longer Degraded", |s| cond(&s.conditions, "Degraded").is_some_and(|(st, _)| st == "False")).await;
    assert_eq!(cc.status.unwrap().url.as_deref(), Some(IN_CLUSTER));
    stop.send_replace(true);
    tokio::time::timeout(T, task).await.expect("the controller stops").unwrap();
}

/// The HTTPRoute against the Gateway API's own published CRD (`make deps-test` fetches it): the
/// API server checks the operator's route with that schema and its CEL rules, and fills in its
/// defaults; a second reconcile must still write nothing.
#[tokio::test]
async fn the_http_route_passes_the_real_gateway_api_schema() {
    let crd = gateway_api_httproute_crd().unwrap();
    let server = KubeServer::start(KubeOptions::default()).await.expect("a test API server");
    server.install_crd_file(&crd).await.unwrap();
    let client = server.client();
    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    create_cluster(&client).await;
    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);
    patch_spec(
        &clusters,
        json!({
            "gatewayAPI": {
                "parentRefs": [{ "name": "public", "namespace": "gateways", "sectionName": "https" }, { "name": "internal" }],
                "hostnames": ["chat.example.com", "*.chat.example.org"],
                "path": "/chat/",
                "tls": false,
                "annotations": { "example.com/team": "chat" }
            },
            "ingress": { "host": "chat.example.com", "path": "/chat/" }
        }),
    )
    .await;
    let ctx = context(&server.controller_client());
    let cc = clusters.get("main").await.unwrap();
    chatcluster::reconcile(Arc::new(cc), ctx.clone()).await.unwrap();

    let cc = clusters.get("main").await.unwrap();
    let status = cc.status.clone().unwrap();
    assert_eq!(cond(&status.conditions, "Degraded"), Some(("False".into(), "AsExpected".into())));
    assert_eq!(status.url.as_deref(), Some("ws://chat.example.com/chat/v1/ws"), "the Ingress comes first");
    let route = server.object(NS, ROUTES, "main").await.expect("the HTTPRoute");
    let built = serde_json::to_value(objects::http_route(&cc).unwrap()).unwrap();
    assert_eq!(route["metadata"]["annotations"], json!({ "example.com/team": "chat" }));
    assert_eq!(route["metadata"]["labels"], built["metadata"]["labels"]);
    assert_eq!(route["metadata"]["ownerReferences"][0]["uid"].as_str(), cc.uid().as_deref());
    let spec = &route["spec"];
    assert_eq!(spec["hostnames"], json!(["chat.example.com", "*.chat.example.org"]));
    // The Gateway API schema's defaults are in: the real schema judged it.
    assert_eq!(spec["parentRefs"][0]["kind"], "Gateway");
    assert_eq!(spec["parentRefs"][0]["group"], "gateway.networking.k8s.io");
    for (i, want) in built["spec"]["parentRefs"].as_array().unwrap().iter().enumerate() {
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&spec["parentRefs"][i][k], v, "parentRefs[{i}].{k}");
        }
    }
    assert!(spec["parentRefs"][1].get("namespace").is_none(), "an unset namespace is left out: {spec}");
    let rule = &spec["rules"][0];
    // The API and the web app (its files, its page, and the redirect to the page), nothing else.
    assert_eq!(
        rule["matches"],
        json!([
            { "path": { "type": "PathPrefix", "value": "/chat/v1" } },
            { "path": { "type": "PathPrefix", "value": "/chat/assets" } },
            { "path": { "type": "Exact", "value": "/chat/" } },
            { "path": { "type": "Exact", "value": "/chat" } },
        ])
    );
    assert_eq!(rule["backendRefs"][0]["name"], "main");
    assert_eq!(rule["backendRefs"][0]["port"], 80);
    assert_eq!(rule["backendRefs"][0]["kind"], "Service");
    assert_eq!(rule["backendRefs"][0]["weight"], 1);
    // The Ingress beside it routes the same paths: the API server took them, `/chat` too.
    let ingress = Api::<Ingress>::namespaced(client.clone(), NS).get("main").await.unwrap();
    assert_eq!(ingress_paths(&ingress), [("/chat/v1", "Prefix"), ("/chat/assets", "Prefix"), ("/chat/", "Exact"), ("/chat", "Exact")]);

    // Idempotent against the defaulted object: nothing changes on a second reconcile.
    let version = route["metadata"]["resourceVersion"].clone();
    let writes = server.audited_writes(CONTROLLER_USER).len();
    chatcluster::reconcile(Arc::new(cc), ctx.clone()).await.unwrap();
    assert_eq!(server.object(NS, ROUTES, "main").await.unwrap()["metadata"]["resourceVersion"], version);
    let status_writes =
        server.audited_writes(CONTROLLER_USER)[writes..].iter().filter(|e| e["objectRef"]["subresource"] == "status").count();
    assert_eq!(status_writes, 0, "a second reconcile rewrote the status");

    // Unset: the route is deleted.
    patch_spec(&clusters, json!({ "gatewayAPI": null })).await;
    chatcluster::reconcile(Arc::new(clusters.get("main").await.unwrap()), ctx).await.unwrap();
    assert!(server.names(NS, ROUTES).await.is_empty());
    let status = clusters.get("main").await.unwrap().status.unwrap();
    assert_eq!(status.url.as_deref(), Some("ws://chat.example.com/chat/v1/ws"));
}
