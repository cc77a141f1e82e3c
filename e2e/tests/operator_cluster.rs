//! The ChatCluster controller against a real kube-apiserver (e2e/src/kube_server.rs): the
//! objects it creates, idempotence (read back as unchanged resourceVersions and in the API
//! server's audit log), drift repair, status, failure behaviour under a real RBAC denial, the
//! object store's settings, Secret references and CA bundle on the pods, and leader election on
//! a real Lease.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use palaver_crds::resources::{ChatCluster, ObjectStorageCaSecret, ObjectStorageCredentials, ObjectStorageSpec};
use palaver_e2e::eventually;
use palaver_e2e::kube_server::{KubeOptions, KubeServer, CONTROLLER_USER, OPERATOR_RESOURCES, OPERATOR_USER};
use palaver_e2e::operator::{
    apply_objects, chart_rbac, cond, condition, create_cluster_secrets, example_cluster, fast_settings, mark_ready, secret, wait_for,
};
use palaver_operator::controller::objects::CONFIG_HASH;
use palaver_operator::controller::{chatcluster, Context};
use palaver_operator::leader::{self, Elector};
use palaver_operator::metrics::Metrics;
use serde_json::{json, Value};
use tokio::sync::watch;

const NS: &str = "chat";
const T: Duration = Duration::from_secs(30);

fn context(client: &Client) -> Arc<Context> {
    Context::new(client.clone(), Arc::new(Metrics::new()), fast_settings(), None)
}

async fn start() -> KubeServer {
    KubeServer::start(KubeOptions::default()).await.expect("a test API server")
}

async fn create_cluster(client: &Client, cc: &ChatCluster) -> ChatCluster {
    Api::<ChatCluster>::namespaced(client.clone(), NS).create(&PostParams::default(), cc).await.unwrap()
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

/// `resource[/subresource] name` of an audit event.
fn target(e: &Value) -> String {
    let r = &e["objectRef"];
    let sub = r["subresource"].as_str().map(|s| format!("/{s}")).unwrap_or_default();
    format!(
        "{} {}{sub} {}",
        e["verb"].as_str().unwrap_or_default(),
        r["resource"].as_str().unwrap_or_default(),
        r["name"].as_str().unwrap_or_default()
    )
}

/// Waits until the controller's objects stop changing (two reads a second apart agree).
async fn settle(server: &KubeServer) {
    let mut last = server.versions(NS, &OPERATOR_RESOURCES).await.unwrap();
    let mut stable = 0;
    let deadline = tokio::time::Instant::now() + T;
    while stable < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the objects kept changing for {T:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = server.versions(NS, &OPERATOR_RESOURCES).await.unwrap();
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
    }
}

#[tokio::test]
async fn chatcluster_creates_its_objects_with_owner_references_and_a_second_reconcile_writes_nothing() {
    let server = start().await;
    let client = server.client();
    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    let cc = create_cluster(&client, &example_cluster(NS, "main", "kafka:9092")).await;
    let ctx = context(&server.controller_client());
    chatcluster::reconcile(Arc::new(cc.clone()), ctx.clone()).await.unwrap();

    // Exactly the expected objects, each owned (controller=true) by the ChatCluster.
    let owned = [
        ("apps/v1/deployments", vec!["main-gateway"]),
        ("/v1/services", vec!["main", "main-headless"]),
        ("/v1/configmaps", vec!["kube-root-ca.crt", "main-config", "main-dashboards"]),
        ("policy/v1/poddisruptionbudgets", vec!["main-gateway"]),
        ("autoscaling/v2/horizontalpodautoscalers", vec!["main-gateway"]),
    ];
    for (res, names) in &owned {
        let have = server.names(NS, res).await;
        // kube-root-ca.crt is published into every namespace by kube-controller-manager only.
        let want: Vec<&str> = names.iter().copied().filter(|n| *n != "kube-root-ca.crt" || have.iter().any(|h| h == n)).collect();
        assert_eq!(have, want, "{res}");
        for name in want.iter().filter(|n| **n != "kube-root-ca.crt") {
            let o = server.object(NS, res, name).await.unwrap();
            let refs = o["metadata"]["ownerReferences"].as_array().unwrap();
            assert_eq!(refs.len(), 1, "{res}/{name}: {refs:?}");
            assert_eq!(refs[0]["kind"], "ChatCluster");
            assert_eq!(refs[0]["uid"].as_str(), cc.uid().as_deref());
            assert_eq!(refs[0]["controller"], true);
            assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/managed-by"], "palaver-operator", "{res}/{name}");
        }
    }
    // Monitoring CRDs are not installed: nothing created, said on the status and in an Event.
    assert!(server.names(NS, "monitoring.coreos.com/v1/servicemonitors").await.is_empty());
    let cc = Api::<ChatCluster>::namespaced(client.clone(), NS).get("main").await.unwrap();
    let status = cc.status.clone().unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.workspaces, Some(0));
    assert_eq!(cond(&status.conditions, "Ready"), Some(("False".into(), "GatewayUnavailable".into())));
    assert_eq!(cond(&status.conditions, "Progressing"), Some(("True".into(), "RollingOut".into())));
    assert_eq!(cond(&status.conditions, "Degraded"), Some(("True".into(), "MonitoringUnavailable".into())));
    let evs = events(&client).await;
    assert!(evs.iter().any(|e| e.reason.as_deref() == Some("MonitoringUnavailable") && e.type_.as_deref() == Some("Warning")), "{evs:?}");

    // Idempotent: reconciling the unchanged ChatCluster changes nothing anywhere. The API
    // server decides what a no-op apply is (defaulted fields, managedFields included).
    let before = server.versions(NS, &OPERATOR_RESOURCES).await.unwrap();
    let writes_before = server.audited_writes(CONTROLLER_USER).len();
    chatcluster::reconcile(Arc::new(cc), ctx).await.unwrap();
    assert_eq!(server.versions(NS, &OPERATOR_RESOURCES).await.unwrap(), before, "a second reconcile changed something");
    let writes: Vec<String> = server.audited_writes(CONTROLLER_USER)[writes_before..].iter().map(target).collect();
    // Server-side apply re-sends the desired objects (a no-op for the API server); nothing else.
    assert!(
        !writes.is_empty() && writes.iter().all(|w| w.starts_with("patch ") && !w.contains("/status") && !w.contains("events")),
        "{writes:?}"
    );
}

#[tokio::test]
async fn chatcluster_controller_repairs_drift_reports_readiness_and_settles() {
    let server = start().await;
    let client = server.client();
    server.install_schemaless_crd("monitoring.coreos.com", "servicemonitors", "ServiceMonitor").await.unwrap();
    server.install_schemaless_crd("monitoring.coreos.com", "prometheusrules", "PrometheusRule").await.unwrap();
    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    create_cluster(&client, &example_cluster(NS, "main", "kafka:9092")).await;
    let (stop, task) = spawn_controller(context(&server.controller_client()));

    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    let cc = wait_for(&clusters, "main", "status observed", T, |c| c.status.as_ref().is_some_and(|s| s.observed_generation == Some(1)))
        .await
        .unwrap();
    let degraded_since = condition(&cc.status.unwrap().conditions, "Degraded").unwrap().clone();
    assert_eq!(degraded_since.status, "False", "monitoring CRDs are installed: {degraded_since:?}");
    assert_eq!(server.names(NS, "monitoring.coreos.com/v1/servicemonitors").await, ["main"]);
    assert_eq!(server.names(NS, "monitoring.coreos.com/v1/prometheusrules").await, ["main"]);

    // A hand-edited Deployment (a full replace, as `kubectl edit` does) is put back.
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
    settle(&server).await;
    let (versions, writes) = (server.versions(NS, &OPERATOR_RESOURCES).await.unwrap(), server.audited_writes(CONTROLLER_USER).len());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        server.versions(NS, &OPERATOR_RESOURCES).await.unwrap(),
        versions,
        "the controller kept changing objects while nothing changed"
    );
    let late: Vec<String> = server.audited_writes(CONTROLLER_USER)[writes..].iter().map(target).collect();
    assert!(late.is_empty(), "the controller kept sending writes while nothing changed: {late:?}");

    stop.send_replace(true);
    tokio::time::timeout(T, task).await.expect("the controller stops on shutdown").unwrap();
}

#[tokio::test]
async fn missing_secret_degrades_with_an_event_and_recovers_when_it_appears() {
    let server = start().await;
    let client = server.client();
    let mut cc = example_cluster(NS, "main", "kafka:9092");
    cc.spec.monitoring = None;
    create_cluster(&client, &cc).await;
    let (stop, task) = spawn_controller(context(&server.controller_client()));
    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);

    let cc = wait_for(&clusters, "main", "Degraded", T, |c| c.status.as_ref().is_some_and(|s| cond(&s.conditions, "Degraded").is_some()))
        .await
        .unwrap();
    let status = cc.status.unwrap();
    let degraded = condition(&status.conditions, "Degraded").unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "SecretNotFound"));
    assert!(degraded.message.contains("chat/palaver-postgres"), "{degraded:?}");
    assert!(server.names(NS, "apps/v1/deployments").await.is_empty(), "no Deployment without its Secrets");
    let evs = events(&client).await;
    assert!(evs.iter().any(|e| e.reason.as_deref() == Some("SecretNotFound") && e.type_.as_deref() == Some("Warning")), "{evs:?}");
    // Retried with backoff, not in a tight loop: the retries stay few (read from the audit log).
    let lookups = || server.audit(CONTROLLER_USER).iter().filter(|e| target(e) == "get secrets palaver-postgres").count();
    let before = lookups();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let gets = lookups() - before;
    assert!((1..=8).contains(&gets), "{gets} Secret lookups in 1.5 s of backoff");
    assert!(!task.is_finished(), "the controller is still running");

    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    wait_for(&clusters, "main", "recovered", T, |c| {
        c.status.as_ref().is_some_and(|s| cond(&s.conditions, "Degraded").is_some_and(|(st, _)| st == "False"))
    })
    .await
    .unwrap();
    assert_eq!(server.names(NS, "apps/v1/deployments").await, ["main-gateway"]);
    let config_maps: Vec<String> = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert_eq!(config_maps, ["main-config"], "monitoring is off: no dashboards ConfigMap");
    stop.send_replace(true);
    tokio::time::timeout(T, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn one_of_two_replicas_leads_and_the_other_takes_over_on_release() {
    let server = start().await;
    let client = server.controller_client();
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
        Api::namespaced(server.client(), "palaver-system").get("palaver-operator").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(if first.0 { "b" } else { "a" }));
    assert_eq!(spec.lease_transitions, Some(1));
}

/// `spec.objectStorage` (issue 11) reaches the gateway pods: the settings through the ConfigMap,
/// the access key only as references to its Secret, which must exist with both keys like the
/// other Secrets, and a private CA's bundle as a file mounted from its Secret, checked the same
/// way; a change rolls the pods and removing it takes every S3 setting away.
#[tokio::test]
async fn object_storage_reaches_the_gateways_with_the_access_key_by_reference() {
    let server = start().await;
    let client = server.client();
    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    let mut cc = example_cluster(NS, "main", "kafka:9092");
    cc.spec.monitoring = None;
    cc.spec.object_storage = Some(ObjectStorageSpec {
        endpoint: "https://minio.storage.svc:9000".into(),
        public_endpoint: None,
        bucket: "chat-files".into(),
        region: "eu-west-1".into(),
        virtual_hosted_style: false,
        credentials_secret: ObjectStorageCredentials {
            name: "palaver-s3".into(),
            access_key_id_key: "id".into(),
            secret_access_key_key: "secret".into(),
        },
        ca_secret: Some(ObjectStorageCaSecret { name: "palaver-s3-ca".into(), key: "bundle.pem".into() }),
    });
    create_cluster(&client, &cc).await;
    let (stop, task) = spawn_controller(context(&server.controller_client()));
    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);
    let degraded = |reason: &'static str| {
        move |c: &ChatCluster| c.status.as_ref().is_some_and(|s| cond(&s.conditions, "Degraded") == Some(("True".into(), reason.into())))
    };

    // The pods could not start without the Secret and both its keys: no Deployment until then.
    let cc = wait_for(&clusters, "main", "SecretNotFound", T, degraded("SecretNotFound")).await.unwrap();
    let conditions = cc.status.unwrap().conditions;
    assert_eq!(condition(&conditions, "Degraded").unwrap().message, "Secret chat/palaver-s3 not found");
    let no_credentials = [cond(&conditions, "Ready"), cond(&conditions, "Degraded")];
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    secrets.create(&PostParams::default(), &secret(NS, "palaver-s3", "id", "AKIDEXAMPLE")).await.unwrap();
    wait_for(&clusters, "main", "SecretKeyMissing", T, degraded("SecretKeyMissing")).await.unwrap();
    assert!(server.names(NS, "apps/v1/deployments").await.is_empty());
    let key = json!({ "stringData": { "secret": "wJalrXUtnFEMIEXAMPLEKEY" } });
    secrets.patch("palaver-s3", &PatchParams::default(), &Patch::Merge(key)).await.unwrap();

    // Nor without the CA's Secret and key: the same reasons, naming the CA's Secret.
    let about_ca = |reason: &'static str| {
        let degraded = degraded(reason);
        move |c: &ChatCluster| {
            degraded(c)
                && c.status.as_ref().and_then(|s| condition(&s.conditions, "Degraded")).is_some_and(|d| d.message.contains("palaver-s3-ca"))
        }
    };
    let cc = wait_for(&clusters, "main", "SecretNotFound for the CA", T, about_ca("SecretNotFound")).await.unwrap();
    let conditions = cc.status.unwrap().conditions;
    assert_eq!(condition(&conditions, "Degraded").unwrap().message, "Secret chat/palaver-s3-ca not found");
    assert_eq!([cond(&conditions, "Ready"), cond(&conditions, "Degraded")], no_credentials, "as without the access key");
    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n";
    secrets.create(&PostParams::default(), &secret(NS, "palaver-s3-ca", "ca.crt", PEM)).await.unwrap();
    let cc = wait_for(&clusters, "main", "SecretKeyMissing for the CA", T, about_ca("SecretKeyMissing")).await.unwrap();
    let message = condition(&cc.status.unwrap().conditions, "Degraded").unwrap().message.clone();
    assert_eq!(message, "Secret chat/palaver-s3-ca has no key \"bundle.pem\"");
    assert!(server.names(NS, "apps/v1/deployments").await.is_empty());
    secrets.patch("palaver-s3-ca", &PatchParams::default(), &Patch::Merge(json!({ "stringData": { "bundle.pem": PEM } }))).await.unwrap();

    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    let d = wait_for(&deployments, "main-gateway", "the Deployment", T, |_| true).await.unwrap();
    // The CA bundle: the Secret that palaverd's container mounts at /etc/palaver/s3-ca, its
    // keys with the file names they get there, and whether the mount is read-only.
    type CaFiles = (String, Vec<(String, String)>, Option<bool>);
    let ca_mount = |d: &Deployment| -> Option<CaFiles> {
        let pod = d.spec.as_ref()?.template.spec.as_ref()?;
        let container = pod.containers.iter().find(|c| c.name == "palaverd")?;
        let mount = container.volume_mounts.iter().flatten().find(|m| m.mount_path == "/etc/palaver/s3-ca")?;
        let secret = pod.volumes.iter().flatten().find(|v| v.name == mount.name)?.secret.as_ref()?;
        let items = secret.items.iter().flatten().map(|i| (i.key.clone(), i.path.clone())).collect();
        Some((secret.secret_name.clone()?, items, mount.read_only))
    };
    let files = |secret: &str| Some((secret.to_string(), vec![("bundle.pem".to_string(), "ca.crt".to_string())], Some(true)));
    assert_eq!(ca_mount(&d), files("palaver-s3-ca"));
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let env = pod.containers.iter().find(|c| c.name == "palaverd").unwrap().env.clone().unwrap();
    for (name, key) in [("PALAVER_S3_ACCESS_KEY_ID", "id"), ("PALAVER_S3_SECRET_ACCESS_KEY", "secret")] {
        let e = env.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("no {name} in {env:?}"));
        assert!(e.value.is_none(), "{name} is copied into the pod spec");
        let r = e.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()).unwrap_or_else(|| panic!("{name}: {e:?}"));
        assert_eq!((r.name.as_str(), r.key.as_str(), r.optional), ("palaver-s3", key, Some(false)));
    }
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), NS);
    let data = config_maps.get("main-config").await.unwrap().data.unwrap();
    let s3 = |data: &std::collections::BTreeMap<String, String>| -> Vec<(String, String)> {
        data.iter().filter(|(k, _)| k.starts_with("PALAVER_S3_")).map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let want = [
        ("PALAVER_S3_BUCKET", "chat-files"),
        ("PALAVER_S3_CA_FILE", "/etc/palaver/s3-ca/ca.crt"),
        ("PALAVER_S3_ENDPOINT", "https://minio.storage.svc:9000"),
        ("PALAVER_S3_REGION", "eu-west-1"),
        ("PALAVER_S3_VIRTUAL_HOSTED", "false"),
    ];
    assert_eq!(s3(&data), want.map(|(k, v)| (k.to_string(), v.to_string())), "no PALAVER_S3_PUBLIC_ENDPOINT while unset");
    let stored = format!("{}{}", serde_json::to_string(&d).unwrap(), serde_json::to_string(&data).unwrap());
    assert!(!stored.contains("AKIDEXAMPLE") && !stored.contains("wJalrXUtnFEMIEXAMPLEKEY"), "a Secret value left its Secret");
    assert!(!stored.contains("MIIBdummy"), "the CA bundle left its Secret");

    // A change rolls the pods (the ConfigMap's hash in the pod template).
    let hash = |d: &Deployment| d.spec.as_ref()?.template.metadata.as_ref()?.annotations.as_ref()?.get(CONFIG_HASH).cloned();
    let before = hash(&d);
    let public = json!({ "spec": { "objectStorage": { "publicEndpoint": "https://files.example.com" } } });
    clusters.patch("main", &PatchParams::default(), &Patch::Merge(public)).await.unwrap();
    wait_for(&deployments, "main-gateway", "a new config hash", T, |d| hash(d) != before).await.unwrap();
    let data = config_maps.get("main-config").await.unwrap().data.unwrap();
    assert_eq!(data.get("PALAVER_S3_PUBLIC_ENDPOINT").map(String::as_str), Some("https://files.example.com"));

    // Another CA Secret rolls the pods too (its name is in the pod template), once it exists.
    let d = deployments.get("main-gateway").await.unwrap();
    let (generation, settings) = (d.metadata.generation, hash(&d));
    secrets.create(&PostParams::default(), &secret(NS, "palaver-s3-ca-2026", "bundle.pem", PEM)).await.unwrap();
    let rotated = json!({ "spec": { "objectStorage": { "caSecret": { "name": "palaver-s3-ca-2026" } } } });
    clusters.patch("main", &PatchParams::default(), &Patch::Merge(rotated)).await.unwrap();
    let d = wait_for(&deployments, "main-gateway", "the new CA Secret mounted", T, |d| ca_mount(d) == files("palaver-s3-ca-2026"))
        .await
        .unwrap();
    assert!(d.metadata.generation > generation, "a new pod template: {:?} after {generation:?}", d.metadata.generation);
    assert_eq!(hash(&d), settings, "the same settings: the Secret's name alone rolls them");

    // Removed: no S3 setting left, in the ConfigMap or the container.
    clusters.patch("main", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "objectStorage": null } }))).await.unwrap();
    let d = wait_for(&deployments, "main-gateway", "the S3 keys gone", T, |d| {
        let env = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].env.clone().unwrap_or_default();
        env.iter().all(|e| !e.name.starts_with("PALAVER_S3_"))
    })
    .await
    .unwrap();
    assert_ne!(hash(&d), before);
    assert_eq!(ca_mount(&d), None, "no CA volume left");
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert!(pod.volumes.iter().flatten().all(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) != Some("palaver-s3-ca-2026")));
    assert!(s3(&config_maps.get("main-config").await.unwrap().data.unwrap()).is_empty());
    stop.send_replace(true);
    tokio::time::timeout(T, task).await.unwrap().unwrap();
}

/// A real API server error: the operator's ServiceAccount is denied Deployments (its
/// ClusterRole without that rule) until the chart's full ClusterRole is restored.
#[tokio::test]
async fn api_server_errors_degrade_the_cluster_until_they_stop() {
    let server = start().await;
    let client = server.client();
    let rbac = chart_rbac();
    let mut without_deployments = rbac.clone();
    for o in &mut without_deployments {
        if o["kind"] == "ClusterRole" {
            let rules = o["rules"].as_array_mut().unwrap();
            rules.retain(|r| r["resources"] != json!(["deployments"]));
        }
    }
    apply_objects(&client, &without_deployments).await.unwrap();
    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    create_cluster(&client, &example_cluster(NS, "main", "kafka:9092")).await;
    let (stop, task) = spawn_controller(context(&server.operator_client()));
    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);
    let cc = wait_for(&clusters, "main", "Degraded", T, |c| {
        c.status.as_ref().is_some_and(|s| cond(&s.conditions, "Degraded") == Some(("True".into(), "KubernetesApiError".into())))
    })
    .await
    .unwrap();
    assert!(server.names(NS, "apps/v1/deployments").await.is_empty());
    let degraded = condition(&cc.status.unwrap().conditions, "Degraded").unwrap().clone();
    assert!(degraded.message.contains("forbidden"), "{degraded:?}");
    let denied: Vec<String> =
        server.audit(OPERATOR_USER).iter().filter(|e| e["annotations"]["authorization.k8s.io/decision"] == "forbid").map(target).collect();
    assert!(!denied.is_empty() && denied.iter().all(|d| d.contains(" deployments ")), "{denied:?}");

    apply_objects(&client, &rbac).await.unwrap();
    wait_for(&clusters, "main", "recovered", T, |c| {
        c.status.as_ref().is_some_and(|s| cond(&s.conditions, "Degraded").is_some_and(|(_, reason)| reason != "KubernetesApiError"))
    })
    .await
    .unwrap();
    assert_eq!(server.names(NS, "apps/v1/deployments").await, ["main-gateway"]);
    stop.send_replace(true);
    tokio::time::timeout(T, task).await.unwrap().unwrap();
}

/// Owner references are what cleans up: deleting a ChatCluster leaves its objects to the real
/// garbage collector (kube-controller-manager's, started for this test), which removes them all;
/// an object the operator does not own stays.
#[tokio::test]
async fn deleting_a_chatcluster_lets_the_garbage_collector_remove_what_it_owned() {
    let server = KubeServer::start(KubeOptions::default().with_garbage_collector()).await.expect("a test API server with GC");
    let client = server.client();
    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    let cc = create_cluster(&client, &example_cluster(NS, "main", "kafka:9092")).await;
    chatcluster::reconcile(Arc::new(cc), context(&server.controller_client())).await.unwrap();
    let owned = ["apps/v1/deployments", "/v1/services", "policy/v1/poddisruptionbudgets", "autoscaling/v2/horizontalpodautoscalers"];
    for res in owned {
        assert!(!server.names(NS, res).await.is_empty(), "{res} created");
    }
    let config_maps = || async { server.names(NS, "/v1/configmaps").await.into_iter().filter(|n| n.starts_with("main-")).count() };
    assert_eq!(config_maps().await, 2);

    // Background deletion, as kubectl delete does: the API server removes the ChatCluster at
    // once and the garbage collector its dependents.
    Api::<ChatCluster>::namespaced(client.clone(), NS).delete("main", &DeleteParams::background()).await.unwrap();
    eventually(T, "the garbage collector to remove every owned object", || async {
        for res in owned {
            if !server.names(NS, res).await.is_empty() {
                return None;
            }
        }
        (config_maps().await == 0).then_some(())
    })
    .await
    .unwrap();
    let secrets = server.names(NS, "/v1/secrets").await;
    assert!(secrets.contains(&"palaver-postgres".to_string()), "a referenced, unowned Secret stays: {secrets:?}");
}
