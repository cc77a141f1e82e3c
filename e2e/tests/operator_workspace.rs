//! The Workspace controller end to end: the real kube-runtime Controller against a real
//! kube-apiserver (e2e/src/kube_server.rs, the CRDs' admission rules in force), provisioning
//! in the real Postgres and the shared Apache Kafka broker
//! (partition growth and retention changes are read back from it; a Delete removes exactly
//! that workspace's topics). The Postgres outage is a proxy cut, so the shared server keeps
//! running for the other tests.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use palaver_crds::resources::{ChatCluster, Workspace};
use palaver_crds::WorkspaceName;
use palaver_e2e::kube_server::{KubeOptions, KubeServer, CONTROLLER_USER};
use palaver_e2e::operator::{cond, create_cluster_secrets, example_cluster, fast_settings, registered, schema_exists, wait_for};
use palaver_e2e::proxy::TcpProxy;
use palaver_e2e::{eventually, unique_workspace, Services};
use palaver_operator::controller::{workspace, Context};
use palaver_operator::metrics::Metrics;
use palaver_operator::provision::{Provisioner, TopicAdmin, TopicSpec, WorkspacePlan};
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::watch;

const NS: &str = "chat";
const T: Duration = Duration::from_secs(40);

struct Harness {
    client: Client,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// The controller, as `palaver-controller`; `client` is the test's own (admin).
    fn start(server: &KubeServer) -> Self {
        let client = server.client();
        let ctx = Context::new(server.controller_client(), Arc::new(Metrics::new()), fast_settings(), None);
        let (stop, mut rx) = watch::channel(false);
        let task = tokio::spawn(workspace::run(ctx, None, async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        Self { client, stop, task }
    }

    fn workspaces(&self) -> Api<Workspace> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn shutdown(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(T, self.task).await.expect("the controller stops").unwrap();
    }
}

fn workspace(name: &WorkspaceName, partitions: i32, policy: &str) -> Workspace {
    serde_json::from_value(json!({
        "apiVersion": "palaver.dev/v1alpha1", "kind": "Workspace",
        "metadata": { "name": name.as_str(), "namespace": NS },
        "spec": { "clusterRef": "main", "displayName": "Test", "partitions": partitions,
                  "defaultChannels": ["general"], "deletionPolicy": policy }
    }))
    .unwrap()
}

fn has(ws: &Workspace, type_: &str, status: &str, reason: &str) -> bool {
    ws.status.as_ref().is_some_and(|s| cond(&s.conditions, type_) == Some((status.into(), reason.into())))
}

async fn migrations_applied(db: &PgPool, name: &WorkspaceName) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {}._sqlx_migrations WHERE success", name.schema())).fetch_one(db).await.unwrap()
}

async fn reasons(client: &Client) -> Vec<String> {
    let evs = Api::<Event>::namespaced(client.clone(), NS).list(&ListParams::default()).await.unwrap().items;
    evs.into_iter().filter_map(|e| e.reason).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_waits_for_its_cluster_provisions_grows_refuses_shrink_and_deletes_its_data() {
    let svc = Services::from_env().private_database().await.unwrap();
    let db = PgPool::connect(&svc.database_url).await.unwrap();
    let admin = TopicAdmin::new(&svc.kafka_brokers, &[]).unwrap();
    let server = KubeServer::start(KubeOptions::default()).await.unwrap();
    let h = Harness::start(&server);
    let name = unique_workspace("ctl");

    // No ChatCluster yet: a condition says what it waits for; no error loop.
    h.workspaces().create(&PostParams::default(), &workspace(&name, 2, "Delete")).await.unwrap();
    let ws = wait_for(&h.workspaces(), name.as_str(), "waiting", Duration::from_secs(10), |w| {
        has(w, "Progressing", "True", "WaitingForCluster")
    })
    .await
    .unwrap();
    assert!(has(&ws, "Ready", "False", "ClusterNotFound"));
    assert_eq!(ws.metadata.finalizers.as_deref(), Some(&["palaver.dev/workspace".to_string()][..]));
    assert!(!schema_exists(&db, &name).await);

    // The ChatCluster appears: its watch wakes the Workspace, which gets provisioned.
    create_cluster_secrets(&h.client, NS, &svc.database_url).await.unwrap();
    Api::<ChatCluster>::namespaced(h.client.clone(), NS)
        .create(&PostParams::default(), &example_cluster(NS, "main", &svc.kafka_brokers))
        .await
        .unwrap();
    let ws = wait_for(&h.workspaces(), name.as_str(), "Ready", T, |w| has(w, "Ready", "True", "Provisioned")).await.unwrap();
    let status = ws.status.clone().unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.schema.as_deref(), Some(name.schema().as_str()));
    assert_eq!(status.topics, [name.events_topic(), name.dlq_topic()]);
    assert_eq!(status.partitions, Some(2));
    assert!(status.migration_version.is_some_and(|v| v > 0));
    assert!(schema_exists(&db, &name).await);
    assert!(migrations_applied(&db, &name).await >= 1);
    assert!(registered(&db, &name).await);
    assert_eq!(admin.partitions(&name.events_topic()).await.unwrap(), 2);
    assert_eq!(admin.partitions(&name.dlq_topic()).await.unwrap(), 1);
    assert!(reasons(&h.client).await.contains(&"Provisioned".to_string()));
    // Ready and unchanged: no further writes (the status is not rewritten, no Event repeats).
    let writes = server.audited_writes(CONTROLLER_USER).len();
    let versions = server.versions(NS, &["palaver.dev/v1alpha1/workspaces", "events.k8s.io/v1/events"]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let late: Vec<_> = server.audited_writes(CONTROLLER_USER)[writes..].to_vec();
    assert!(late.is_empty(), "the controller kept writing after Ready: {late:?}");
    assert_eq!(server.versions(NS, &["palaver.dev/v1alpha1/workspaces", "events.k8s.io/v1/events"]).await.unwrap(), versions);

    // Fewer partitions: the CRD's CEL rule refuses it at admission.
    let err = h
        .workspaces()
        .patch(name.as_str(), &PatchParams::default(), &Patch::Merge(json!({ "spec": { "partitions": 1 } })))
        .await
        .unwrap_err();
    assert!(matches!(&err, kube::Error::Api(e) if e.code == 422 && e.message.contains("partitions may only grow")), "{err:?}");
    // The controller holds anyway where admission cannot see it: the topic was grown with
    // Kafka's own tools behind the operator's back, and the next provisioning keeps it.
    let grown = TopicSpec { name: &name.events_topic(), partitions: 3, retention_ms: None, retention_changed: false };
    assert_eq!(admin.ensure_topic(&grown).await.unwrap(), 3);
    h.workspaces()
        .patch(name.as_str(), &PatchParams::default(), &Patch::Merge(json!({ "spec": { "displayName": "Grown" } })))
        .await
        .unwrap();
    let ws = wait_for(&h.workspaces(), name.as_str(), "shrink refused", T, |w| has(w, "Degraded", "True", "PartitionShrinkRefused"))
        .await
        .unwrap();
    assert!(has(&ws, "Ready", "True", "Provisioned"), "still serving: {:?}", ws.status);
    assert_eq!(ws.status.unwrap().observed_generation, Some(2));
    assert_eq!(admin.partitions(&name.events_topic()).await.unwrap(), 3);

    // More partitions: the live topic grows (CreatePartitions), read back from the broker.
    h.workspaces().patch(name.as_str(), &PatchParams::default(), &Patch::Merge(json!({ "spec": { "partitions": 4 } }))).await.unwrap();
    let ws = wait_for(&h.workspaces(), name.as_str(), "grown", T, |w| {
        has(w, "Ready", "True", "Provisioned") && w.status.as_ref().is_some_and(|s| s.observed_generation == Some(3))
    })
    .await
    .unwrap();
    assert!(has(&ws, "Degraded", "False", "AsExpected"), "{:?}", ws.status);
    assert_eq!(ws.status.unwrap().partitions, Some(4));
    assert_eq!(admin.partitions(&name.events_topic()).await.unwrap(), 4, "the broker has the new partition");

    // A retention change on the live Workspace: applied to the topic, read back from the broker.
    assert_eq!(admin.topic_overrides(&name.events_topic()).await.unwrap().get("retention.ms"), None, "broker default at first");
    h.workspaces().patch(name.as_str(), &PatchParams::default(), &Patch::Merge(json!({ "spec": { "retentionHours": 12 } }))).await.unwrap();
    wait_for(&h.workspaces(), name.as_str(), "retention applied", T, |w| {
        has(w, "Ready", "True", "Provisioned") && w.status.as_ref().is_some_and(|s| s.observed_generation == Some(4))
    })
    .await
    .unwrap();
    let overrides = admin.topic_overrides(&name.events_topic()).await.unwrap();
    assert_eq!(overrides.get("retention.ms").map(String::as_str), Some("43200000"), "12 h: {overrides:?}");

    // Another workspace on the same broker, to show the Delete below takes only this one's topics.
    let other = unique_workspace("bystander");
    let p = Provisioner::connect(&svc.database_url, &svc.kafka_brokers).await.unwrap();
    let plan = WorkspacePlan {
        name: other.clone(),
        display_name: "Other".into(),
        partitions: 2,
        default_channels: vec![],
        retention_hours: None,
        files: Default::default(),
    };
    p.provision(&plan).await.unwrap();

    // Delete with deletionPolicy Delete: its topics and schema gone, registry row gone,
    // finalizer released, object gone; the other topic is still there.
    h.workspaces().delete(name.as_str(), &DeleteParams::default()).await.unwrap();
    eventually(T, "the Workspace to be gone", || async { h.workspaces().get_opt(name.as_str()).await.unwrap().is_none().then_some(()) })
        .await
        .unwrap();
    assert!(!schema_exists(&db, &name).await, "schema dropped");
    assert!(!registered(&db, &name).await, "deregistered");
    eventually(T, "the topics to be deleted", || async { admin.partitions(&name.events_topic()).await.is_err().then_some(()) })
        .await
        .unwrap();
    eventually(T, "the DLQ topic to be deleted", || async { admin.partitions(&name.dlq_topic()).await.is_err().then_some(()) })
        .await
        .unwrap();
    assert_eq!(admin.partitions(&other.events_topic()).await.unwrap(), 2, "another workspace's topics survive");
    assert_eq!(admin.partitions(&other.dlq_topic()).await.unwrap(), 1);
    assert!(registered(&db, &other).await && schema_exists(&db, &other).await, "and its data");
    assert!(reasons(&h.client).await.contains(&"Deprovisioned".to_string()));

    h.shutdown().await;
    p.deprovision(&other, palaver_crds::resources::DeletionPolicy::Delete).await.unwrap();
    drop(p);
    drop(admin);
    db.close().await;
    svc.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_degrades_then_recovers_and_retain_keeps_the_data() {
    let svc = Services::from_env().private_database().await.unwrap();
    let db = PgPool::connect(&svc.database_url).await.unwrap();
    // The operator reaches Postgres only through a proxy the test can cut.
    let (upstream, rest) = svc.database_url.split_once("@").map(|(_, r)| r.split_once('/').unwrap()).unwrap();
    let mut proxy = TcpProxy::start(upstream).await.unwrap();
    let via_proxy = format!("postgres://postgres@{}/{rest}", proxy.addr());
    let server = KubeServer::start(KubeOptions::default()).await.unwrap();
    let h = Harness::start(&server);
    create_cluster_secrets(&h.client, NS, &via_proxy).await.unwrap();
    Api::<ChatCluster>::namespaced(h.client.clone(), NS)
        .create(&PostParams::default(), &example_cluster(NS, "main", &svc.kafka_brokers))
        .await
        .unwrap();
    let name = unique_workspace("keep");
    h.workspaces().create(&PostParams::default(), &workspace(&name, 1, "Retain")).await.unwrap();
    wait_for(&h.workspaces(), name.as_str(), "Ready", T, |w| has(w, "Ready", "True", "Provisioned")).await.unwrap();

    // Postgres goes away while a spec change needs provisioning.
    proxy.cut().await;
    h.workspaces()
        .patch(name.as_str(), &PatchParams::default(), &Patch::Merge(json!({ "spec": { "displayName": "Renamed" } })))
        .await
        .unwrap();
    let ws = wait_for(&h.workspaces(), name.as_str(), "Degraded", T, |w| has(w, "Degraded", "True", "PostgresUnavailable")).await.unwrap();
    assert!(has(&ws, "Ready", "False", "PostgresUnavailable"), "{:?}", ws.status);
    assert!(reasons(&h.client).await.contains(&"PostgresUnavailable".to_string()));

    // It comes back: Ready again through the backoff requeue, no manual step.
    proxy.restore().await.unwrap();
    let ws = wait_for(&h.workspaces(), name.as_str(), "Ready again", T, |w| {
        has(w, "Ready", "True", "Provisioned") && w.status.as_ref().is_some_and(|s| s.observed_generation == Some(2))
    })
    .await
    .unwrap();
    assert!(has(&ws, "Degraded", "False", "AsExpected"));
    let display: String = sqlx::query_scalar("SELECT display_name FROM palaver_control.workspaces WHERE name = $1")
        .bind(name.as_str())
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(display, "Renamed");

    // Delete with Retain: deregistered, data kept.
    h.workspaces().delete(name.as_str(), &DeleteParams::default()).await.unwrap();
    eventually(T, "the Workspace to be gone", || async { h.workspaces().get_opt(name.as_str()).await.unwrap().is_none().then_some(()) })
        .await
        .unwrap();
    assert!(!registered(&db, &name).await, "deregistered");
    assert!(schema_exists(&db, &name).await, "Retain keeps the schema");
    let admin = TopicAdmin::new(&svc.kafka_brokers, &[]).unwrap();
    assert_eq!(admin.partitions(&name.events_topic()).await.unwrap(), 1, "Retain keeps the topic");

    h.shutdown().await;
    drop(proxy);
    db.close().await;
    svc.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spec_and_unreachable_kafka_degrade_with_precise_reasons() {
    let svc = Services::from_env();
    let server = KubeServer::start(KubeOptions::default()).await.unwrap();
    let h = Harness::start(&server);
    create_cluster_secrets(&h.client, NS, &svc.database_url).await.unwrap();
    let clusters = Api::<ChatCluster>::namespaced(h.client.clone(), NS);
    // Nothing listens on this port.
    let nowhere = format!("127.0.0.1:{}", palaver_e2e::free_port());
    clusters.create(&PostParams::default(), &example_cluster(NS, "main", &nowhere)).await.unwrap();
    // A cluster whose Kafka credentials Secret is not `name=value` lines: no schema can tell.
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.client.clone(), NS)
        .create(&PostParams::default(), &palaver_e2e::operator::secret(NS, "kafka-props", "client.properties", "oops\n"))
        .await
        .unwrap();
    let mut garbled = example_cluster(NS, "garbled", &svc.kafka_brokers);
    garbled.spec.kafka.secret_ref =
        Some(palaver_crds::resources::SecretKeyRef { name: "kafka-props".into(), key: "client.properties".into() });
    clusters.create(&PostParams::default(), &garbled).await.unwrap();

    // A name the CRD's CEL rule refuses never reaches the controller (the admission tests in
    // kube_admission.rs cover the rules); the spec the controller alone can judge: InvalidSpec.
    let bad = unique_workspace("props");
    let mut ws = workspace(&bad, 1, "Retain");
    ws.spec.cluster_ref = "garbled".into();
    h.workspaces().create(&PostParams::default(), &ws).await.unwrap();
    let ws = wait_for(&h.workspaces(), bad.as_str(), "InvalidSpec", T, |w| has(w, "Degraded", "True", "InvalidSpec")).await.unwrap();
    assert!(has(&ws, "Ready", "False", "InvalidSpec"), "{:?}", ws.status);

    let name = unique_workspace("nokafka");
    h.workspaces().create(&PostParams::default(), &workspace(&name, 1, "Retain")).await.unwrap();
    let ws =
        wait_for(&h.workspaces(), name.as_str(), "KafkaUnavailable", T, |w| has(w, "Degraded", "True", "KafkaUnavailable")).await.unwrap();
    let degraded = ws.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Degraded").unwrap();
    assert!(degraded.message.contains(&name.events_topic()), "{degraded:?}");
    let evs = reasons(&h.client).await;
    assert!(evs.contains(&"InvalidSpec".to_string()) && evs.contains(&"KafkaUnavailable".to_string()), "{evs:?}");
    assert!(!h.task.is_finished(), "the controller keeps running");
    h.shutdown().await;
}
