//! The in-memory Kubernetes API behaves as the real one where the controller tests rely on it:
//! no-op writes, generation, optimistic concurrency, finalizers, the owner-reference cascade,
//! and injected failures.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use palaver_crds::resources::Workspace;
use palaver_e2e::kube_api::ApiServer;
use serde_json::json;

fn config_map(name: &str, owner: Option<&ConfigMap>, finalizer: bool) -> ConfigMap {
    let owner_references = owner.map(|o| {
        vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: o.name_any(),
            uid: o.uid().unwrap(),
            ..Default::default()
        }]
    });
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references,
            finalizers: finalizer.then(|| vec!["test/keep".into()]),
            ..Default::default()
        },
        data: Some([("k".to_string(), "v".to_string())].into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn writes_generation_and_conflicts_follow_the_api_server() {
    let server = ApiServer::new();
    let api: Api<Workspace> = Api::namespaced(server.client(), "chat");
    let ws: Workspace = serde_json::from_value(json!({
        "apiVersion": "palaver.dev/v1alpha1", "kind": "Workspace", "metadata": { "name": "acme" }, "spec": { "clusterRef": "main" }
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &ws).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    // A write that changes nothing is a no-op: same resourceVersion.
    let rv = server.resource_version();
    api.patch("acme", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "clusterRef": "main" } }))).await.unwrap();
    assert_eq!(server.resource_version(), rv);
    // Metadata and status leave the generation alone; the spec moves it.
    api.patch("acme", &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "labels": { "a": "b" } } }))).await.unwrap();
    api.patch_status("acme", &PatchParams::default(), &Patch::Merge(json!({ "status": { "observedGeneration": 1 } }))).await.unwrap();
    let ws = api.get("acme").await.unwrap();
    assert_eq!(ws.metadata.generation, Some(1));
    assert_eq!(ws.status.as_ref().unwrap().observed_generation, Some(1));
    let ws = api.patch("acme", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "partitions": 4 } }))).await.unwrap();
    assert_eq!(ws.metadata.generation, Some(2));
    assert!(ws.status.is_some(), "a write to the object keeps the status");

    // Replacing from a stale copy is a conflict.
    let err = api.replace("acme", &PostParams::default(), &created).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref e) if e.code == 409), "{err:?}");
}

#[tokio::test]
async fn delete_honours_finalizers_and_cascades_to_owned_objects() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "chat");
    let owner = api.create(&PostParams::default(), &config_map("owner", None, false)).await.unwrap();
    api.create(&PostParams::default(), &config_map("plain", Some(&owner), false)).await.unwrap();
    api.create(&PostParams::default(), &config_map("held", Some(&owner), true)).await.unwrap();
    api.create(&PostParams::default(), &config_map("other", None, false)).await.unwrap();

    api.delete("owner", &DeleteParams::default()).await.unwrap();
    assert_eq!(server.names("/configmaps", "chat"), ["held", "other"], "the owned object without a finalizer went with its owner");
    let held = api.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some(), "the one with a finalizer is only marked");

    api.patch("held", &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "finalizers": null } }))).await.unwrap();
    assert_eq!(server.names("/configmaps", "chat"), ["other"], "releasing the last finalizer completes the delete");
}

#[tokio::test]
async fn injected_failures_answer_with_their_status_until_cleared() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "chat");
    server.fail_when(|call| (call.method == http::Method::POST).then_some(503));
    let err = api.create(&PostParams::default(), &config_map("a", None, false)).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref e) if e.code == 503), "{err:?}");
    assert!(server.names("/configmaps", "chat").is_empty());
    server.clear_faults();
    api.create(&PostParams::default(), &config_map("a", None, false)).await.unwrap();
    assert_eq!(server.names("/configmaps", "chat"), ["a"]);
}
