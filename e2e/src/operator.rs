//! Fixtures of the operator tests: controller settings fast enough for tests, the Secrets and
//! ChatCluster of examples/ pointed at the test's services, and status helpers.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use palaver_crds::resources::ChatCluster;
use palaver_crds::WorkspaceName;
use palaver_operator::controller::{Backoff, Settings};
use serde::de::DeserializeOwned;
use sqlx::PgPool;

use crate::eventually;

/// Short backoff and waits: a test sees a retry within a second.
pub fn fast_settings() -> Settings {
    Settings {
        backoff: Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1) },
        resync: Duration::from_secs(600),
        wait_for_cluster: Duration::from_secs(600),
        connect_timeout: Duration::from_secs(3),
    }
}

pub fn secret(ns: &str, name: &str, key: &str, value: &str) -> Secret {
    Secret {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
        data: Some([(key.to_string(), ByteString(value.as_bytes().to_vec()))].into()),
        ..Default::default()
    }
}

/// The Secrets examples/chatcluster.yaml refers to, in `ns`.
pub async fn create_cluster_secrets(client: &Client, ns: &str, database_url: &str) -> anyhow::Result<()> {
    let api = Api::<Secret>::namespaced(client.clone(), ns);
    for s in [
        secret(ns, "palaver-postgres", "dsn", database_url),
        secret(ns, "palaver-redis", "url", "redis://127.0.0.1:6379"),
        secret(ns, "palaver-jwt", "public.pem", "-----BEGIN PUBLIC KEY-----\ntest\n-----END PUBLIC KEY-----\n"),
    ] {
        api.create(&PostParams::default(), &s).await?;
    }
    Ok(())
}

/// examples/chatcluster.yaml as ChatCluster `ns/name` with Kafka at `bootstrap`.
pub fn example_cluster(ns: &str, name: &str, bootstrap: &str) -> ChatCluster {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/chatcluster.yaml")).expect("examples/chatcluster.yaml");
    let mut cc: ChatCluster = serde_yaml::from_str(&text).expect("the example parses");
    cc.metadata.name = Some(name.into());
    cc.metadata.namespace = Some(ns.into());
    cc.spec.kafka.bootstrap = bootstrap.into();
    cc
}

/// The condition `type_` of a status, if present.
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// `(status, reason)` of condition `type_`, for compact assertions.
pub fn cond(conditions: &[Condition], type_: &str) -> Option<(String, String)> {
    condition(conditions, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

/// Whether the workspace's schema exists.
pub async fn schema_exists(db: &PgPool, name: &WorkspaceName) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)").bind(name.schema()).fetch_one(db).await.unwrap()
}

/// Whether the workspace has a row in the registry.
pub async fn registered(db: &PgPool, name: &WorkspaceName) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM palaver_control.workspaces WHERE name = $1)")
        .bind(name.as_str())
        .fetch_one(db)
        .await
        .unwrap()
}

/// Reports `deployment`'s pods as all ready, as the Deployment controller would.
pub async fn mark_ready(client: &Client, ns: &str, deployment: &str, replicas: i32) -> anyhow::Result<()> {
    let status = serde_json::json!({ "status": { "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas } });
    Api::<Deployment>::namespaced(client.clone(), ns).patch_status(deployment, &PatchParams::default(), &Patch::Merge(status)).await?;
    Ok(())
}

/// Waits until `name` exists and `check` accepts it; returns it.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, timeout: Duration, check: impl Fn(&K) -> bool) -> anyhow::Result<K>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let found = eventually(timeout, what, || async { api.get_opt(name).await.ok().flatten().filter(|o| check(o)) }).await;
    match found {
        Ok(o) => Ok(o),
        Err(e) => Err(e.context(format!("last seen: {:?}", api.get_opt(name).await))),
    }
}

/// The chart's RBAC objects as a release `palaver` in namespace `palaver-system` installs them:
/// charts/palaver/templates/{serviceaccount,rbac}.yaml with their few template expressions
/// substituted (they only name things; the rules are literal YAML).
pub fn chart_rbac() -> Vec<serde_json::Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/palaver/templates");
    let mut out = Vec::new();
    for file in ["serviceaccount.yaml", "rbac.yaml"] {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).expect("a chart template");
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
        assert!(!text.contains("{{"), "a template expression this helper does not know: {text}");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).expect("YAML");
            if v.is_object() {
                out.push(v);
            }
        }
    }
    out
}

/// Creates or updates `objects` (server-side apply as `palaver-test`, taking over any field).
/// Kinds are mapped to resources by the plural rule (`ClusterRole` -> `clusterroles`), which
/// holds for the kinds the tests install.
pub async fn apply_objects(client: &Client, objects: &[serde_json::Value]) -> anyhow::Result<()> {
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
    for o in objects {
        let (api_version, kind) = (o["apiVersion"].as_str().unwrap_or_default(), o["kind"].as_str().unwrap_or_default());
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &format!("{}s", kind.to_lowercase()));
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = match o["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        api.patch(name, &PatchParams::apply("palaver-test").force(), &Patch::Apply(o))
            .await
            .map_err(|e| anyhow::anyhow!("applying {kind} {name}: {e}"))?;
    }
    Ok(())
}
