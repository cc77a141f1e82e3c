//! The committed CRD manifests are exactly what the types generate, the schemas are structural
//! (what the API server requires), the CEL rules are in place, and the examples parse.

use palaver_crds::resources::{
    manifests, ChatCluster, DeletionPolicy, JwtAlgorithm, ObjectStorageCaSecret, ObjectStorageSpec, ServiceType, Workspace,
};
use serde_json::Value;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn committed_manifests_match_the_types() {
    for (file, yaml) in manifests() {
        let path = root().join("crds/manifests").join(&file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == yaml, "{} is stale: run `palaver-operator crdgen --out crds/manifests`", path.display());
    }
}

/// Structural-schema rules the API server enforces, checked on every node.
fn lint(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else { return };
    if obj.contains_key("$ref") {
        problems.push(format!("{path}: $ref (schemas must be inlined)"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        problems.push(format!("{path}: both properties and additionalProperties"));
    }
    if obj.contains_key("properties") && obj.get("type").and_then(Value::as_str) != Some("object") {
        problems.push(format!("{path}: properties without type object"));
    }
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let has_type = obj.contains_key("type") || int_or_string || obj.contains_key("x-kubernetes-preserve-unknown-fields");
    if !has_type && !path.is_empty() {
        problems.push(format!("{path}: no type"));
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if obj.contains_key(key) && !int_or_string {
            problems.push(format!("{path}: {key} (untagged unions are not structural)"));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            lint(v, &format!("{path}.{k}"), problems);
        }
    }
    if let Some(items) = obj.get("items") {
        lint(items, &format!("{path}[]"), problems);
    }
    if let Some(ap) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        lint(ap, &format!("{path}{{}}"), problems);
    }
}

fn schema(crd: &impl serde::Serialize) -> Value {
    let v = serde_json::to_value(crd).unwrap();
    v["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn schemas_are_structural_and_documented() {
    use kube::CustomResourceExt;
    let crds = [
        ("ChatCluster", serde_json::to_value(ChatCluster::crd()).unwrap()),
        ("Workspace", serde_json::to_value(Workspace::crd()).unwrap()),
    ];
    for (kind, crd) in crds {
        let s = schema(&crd);
        let mut problems = Vec::new();
        lint(&s, "", &mut problems);
        assert!(problems.is_empty(), "{kind}: {problems:#?}");
        // `kubectl explain` needs a description on every spec field we define.
        for (field, v) in s["properties"]["spec"]["properties"].as_object().unwrap() {
            assert!(v.get("description").is_some(), "{kind}.spec.{field} has no description");
        }
        assert!(crd["spec"]["versions"][0]["subresources"]["status"].is_object(), "{kind} needs the status subresource");
    }
}

#[test]
fn validation_rules_are_in_the_schema() {
    use kube::CustomResourceExt;
    let ws = serde_json::to_string(&Workspace::crd()).unwrap();
    for rule in ["self == oldSelf", "self >= oldSelf", "self.metadata.name.matches("] {
        assert!(ws.contains(rule), "Workspace CRD lacks rule {rule}");
    }
    let cc = serde_json::to_string(&ChatCluster::crd()).unwrap();
    for rule in [
        "self.minReplicas <= self.maxReplicas",
        "tls needs secretName or an issuer",
        "set clusterIssuer or issuer, not both",
        "ingress.path and gatewayAPI.path must be equal",
        "isCIDR(x) || isIP(x)",
        "endpoint must be an http:// or https:// URL",
        "publicEndpoint must be an http:// or https:// URL",
    ] {
        assert!(cc.contains(rule), "ChatCluster CRD lacks rule {rule}");
    }
    let ws: Value = serde_json::to_value(Workspace::crd()).unwrap();
    assert_eq!(ws["spec"]["names"]["shortNames"][0], "ws");
}

#[test]
fn examples_parse_into_the_types() {
    let cc: ChatCluster = serde_yaml::from_str(&std::fs::read_to_string(root().join("examples/chatcluster.yaml")).unwrap()).unwrap();
    assert_eq!(cc.spec.auth.algorithm, JwtAlgorithm::ES256);
    assert_eq!(cc.spec.autoscaling.as_ref().unwrap().max_replicas, 10);
    let read = |file: &str| -> ChatCluster { serde_yaml::from_str(&std::fs::read_to_string(root().join(file)).unwrap()).unwrap() };
    let ingress = read("examples/chatcluster-ingress.yaml").spec.ingress.unwrap();
    assert_eq!((ingress.host.as_str(), ingress.path.as_str()), ("chat.example.com", "/"));
    assert_eq!(ingress.tls.unwrap().cluster_issuer.as_deref(), Some("letsencrypt"));
    let route = read("examples/chatcluster-gateway-api.yaml").spec.gateway_api.unwrap();
    assert_eq!((route.parent_refs[0].name.as_str(), route.path.as_str(), route.tls), ("public", "/chat/", true));
    let service = read("examples/chatcluster-loadbalancer.yaml").spec.service.unwrap();
    assert_eq!(service.type_, ServiceType::LoadBalancer);
    // Defaults of the exposure fields.
    let minimal: ChatCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "palaver.dev/v1alpha1", "kind": "ChatCluster", "metadata": { "name": "m" },
        "spec": { "image": "i", "kafka": { "bootstrap": "k:9092" }, "postgres": { "secretRef": { "name": "p", "key": "k" } },
                  "redis": { "secretRef": { "name": "r", "key": "k" } },
                  "auth": { "issuer": "i", "audience": "a", "publicKeySecretRef": { "name": "j", "key": "k" } },
                  "gatewayAPI": { "parentRefs": [{ "name": "gw" }], "hostnames": ["h.example.com"] },
                  "service": {} }
    }))
    .unwrap();
    let route = minimal.spec.gateway_api.unwrap();
    assert_eq!((route.path.as_str(), route.tls), ("/", true));
    assert_eq!(minimal.spec.service.unwrap().type_, ServiceType::ClusterIP);
    assert!(minimal.spec.object_storage.is_none());
    let store: ObjectStorageSpec = serde_json::from_value(serde_json::json!({
        "endpoint": "http://minio:9000", "bucket": "chat-files", "credentialsSecret": { "name": "s3" }
    }))
    .unwrap();
    assert_eq!(store.ca_secret, None, "the system's roots unless a CA is given");
    assert_eq!((store.region.as_str(), store.virtual_hosted_style, store.public_endpoint), ("us-east-1", false, None));
    let creds = store.credentials_secret;
    assert_eq!((creds.access_key_id_key.as_str(), creds.secret_access_key_key.as_str()), ("access-key-id", "secret-access-key"));
    let store: ObjectStorageSpec = serde_json::from_value(serde_json::json!({
        "endpoint": "https://minio:9000", "bucket": "chat-files", "credentialsSecret": { "name": "s3" }, "caSecret": { "name": "s3-ca" }
    }))
    .unwrap();
    assert_eq!(store.ca_secret, Some(ObjectStorageCaSecret { name: "s3-ca".into(), key: "ca.crt".into() }));
    // The object storage example: its Secret holds the keys the ChatCluster names.
    let text = std::fs::read_to_string(root().join("examples/chatcluster-object-storage.yaml")).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    let [secret, cc] = &docs[..] else { panic!("a Secret and a ChatCluster: {docs:?}") };
    let store = serde_json::from_value::<ChatCluster>(cc.clone()).unwrap().spec.object_storage.unwrap();
    assert_eq!((store.bucket.as_str(), store.virtual_hosted_style), ("palaver-files", false));
    let creds = &store.credentials_secret;
    assert_eq!(secret["metadata"]["name"].as_str(), Some(creds.name.as_str()));
    for key in [&creds.access_key_id_key, &creds.secret_access_key_key] {
        assert!(secret["stringData"][key].is_string(), "the Secret lacks {key}");
    }
    let ws: Workspace = serde_yaml::from_str(&std::fs::read_to_string(root().join("examples/workspace.yaml")).unwrap()).unwrap();
    assert_eq!(ws.spec.cluster_ref, "main");
    assert_eq!(ws.spec.files.unwrap().max_per_message, Some(10));
    assert_eq!(ws.spec.deletion_policy, DeletionPolicy::Retain);
    assert!(palaver_crds::WorkspaceName::new(ws.metadata.name.unwrap()).is_ok(), "example name must be a valid workspace name");
    // Defaults apply when fields are left out.
    let minimal: Workspace =
        serde_yaml::from_str("apiVersion: palaver.dev/v1alpha1\nkind: Workspace\nmetadata: {name: x1}\nspec: {clusterRef: main}\n")
            .unwrap();
    assert_eq!((minimal.spec.partitions, minimal.spec.deletion_policy, minimal.spec.files), (3, DeletionPolicy::Retain, None));
}

#[test]
fn the_lint_flags_non_structural_schemas() {
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "a": {"$ref": "#/x"},
            "b": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "c": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "d": {"description": "no type"}
        }
    });
    let mut problems = Vec::new();
    lint(&bad, "", &mut problems);
    assert_eq!(problems.len(), 6, "{problems:#?}");
    for needle in ["$ref", "anyOf", "additionalProperties", ".d: no type"] {
        assert!(problems.iter().any(|p| p.contains(needle)), "{needle} not flagged: {problems:#?}");
    }
}
