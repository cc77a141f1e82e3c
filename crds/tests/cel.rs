//! The CRDs' CEL rules, evaluated client-side with kube's CEL engine the way the API server
//! evaluates them on create and update: they must accept what is valid and refuse the rest.

use kube::CustomResourceExt;
use palaver_crds::resources::{ChatCluster, Workspace};
use serde_json::{json, Value};

fn schema(crd: impl serde::Serialize) -> Value {
    serde_json::to_value(crd).unwrap()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn workspace(name: &str, cluster: &str, partitions: i64) -> Value {
    json!({
        "apiVersion": "palaver.dev/v1alpha1", "kind": "Workspace",
        "metadata": { "name": name, "namespace": "chat" },
        "spec": { "clusterRef": cluster, "partitions": partitions }
    })
}

fn errors(schema: &Value, new: &Value, old: Option<&Value>) -> Vec<String> {
    match kube::core::cel::Validator::new().validate(schema, new, old) {
        Ok(()) => Vec::new(),
        Err(e) => e.into_vec().into_iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn workspace_rules_accept_valid_changes_and_refuse_the_rest() {
    let s = schema(Workspace::crd());
    let base = workspace("acme", "main", 4);
    assert_eq!(errors(&s, &base, None), Vec::<String>::new());
    assert_eq!(errors(&s, &workspace("acme", "main", 6), Some(&base)), Vec::<String>::new(), "growing partitions is allowed");

    let shrink = errors(&s, &workspace("acme", "main", 2), Some(&base));
    assert!(shrink.iter().any(|e| e.contains("partitions may only grow")), "{shrink:?}");
    let moved = errors(&s, &workspace("acme", "other", 4), Some(&base));
    assert!(moved.iter().any(|e| e.contains("clusterRef is immutable")), "{moved:?}");

    for bad in ["Acme", "a", "acme-", "ac--me", "9acme", "acme_corp"] {
        let e = errors(&s, &workspace(bad, "main", 4), None);
        assert!(e.iter().any(|e| e.contains("workspace names are")), "{bad}: {e:?}");
    }
    for good in ["ab", "acme-corp", "team42"] {
        assert_eq!(errors(&s, &workspace(good, "main", 4), None), Vec::<String>::new(), "{good}");
    }
}

#[test]
fn chatcluster_autoscaling_bounds_are_checked() {
    let s = schema(ChatCluster::crd());
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/chatcluster.yaml")).unwrap();
    let mut cc: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(errors(&s, &cc, None), Vec::<String>::new(), "the example is valid");
    cc["spec"]["autoscaling"]["minReplicas"] = json!(12);
    let e = errors(&s, &cc, None);
    assert!(e.iter().any(|e| e.contains("minReplicas must not exceed maxReplicas")), "{e:?}");
}

/// examples/chatcluster.yaml with `spec` fields replaced by `patch`'s (null removes one).
fn cluster_with(patch: Value) -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/chatcluster.yaml")).unwrap();
    let mut cc: Value = serde_yaml::from_str(&text).unwrap();
    for (k, v) in patch.as_object().unwrap() {
        cc["spec"][k] = v.clone();
    }
    cc
}

#[test]
fn chatcluster_exposure_rules_accept_valid_specs_and_refuse_the_rest() {
    let s = schema(ChatCluster::crd());
    let ok = |patch: Value| {
        let e = errors(&s, &cluster_with(patch.clone()), None);
        assert_eq!(e, Vec::<String>::new(), "{patch}");
    };
    let refused = |patch: Value, message: &str| {
        let e = errors(&s, &cluster_with(patch.clone()), None);
        assert!(e.iter().any(|e| e.contains(message)), "{patch}: {e:?}");
    };
    let route = |path: &str| json!({ "parentRefs": [{ "name": "gw" }], "hostnames": ["chat.example.com"], "path": path });

    // TLS: a Secret or an issuer; one issuer at most.
    ok(json!({ "ingress": { "host": "chat.example.com", "tls": { "secretName": "cert" } } }));
    ok(json!({ "ingress": { "host": "chat.example.com", "tls": { "clusterIssuer": "letsencrypt" } } }));
    ok(json!({ "ingress": { "host": "chat.example.com", "tls": { "issuer": "ca", "secretName": "cert" } } }));
    ok(json!({ "ingress": { "host": "chat.example.com", "tls": { "issuer": null, "secretName": "cert" } } }));
    refused(json!({ "ingress": { "host": "chat.example.com", "tls": {} } }), "tls needs secretName or an issuer");
    refused(
        json!({ "ingress": { "host": "chat.example.com", "tls": { "issuer": "a", "clusterIssuer": "b" } } }),
        "set clusterIssuer or issuer, not both",
    );

    // One path prefix for palaverd: the Ingress's and the HTTPRoute's agree (unset is "/").
    ok(json!({ "ingress": { "host": "chat.example.com", "path": "/chat/" }, "gatewayAPI": route("/chat/") }));
    ok(json!({ "ingress": { "host": "chat.example.com" }, "gatewayAPI": route("/") }));
    ok(json!({ "ingress": { "host": "chat.example.com", "path": "/chat/" } }));
    refused(json!({ "ingress": { "host": "chat.example.com", "path": "/chat/" }, "gatewayAPI": route("/") }), "must be equal");
    refused(json!({ "ingress": { "host": "chat.example.com" }, "gatewayAPI": route("/chat/") }), "must be equal");

    // Proxies are addresses or CIDRs; source ranges CIDRs, and only for a LoadBalancer.
    ok(json!({ "http": { "trustedProxies": ["10.0.0.0/8", "192.168.1.10", "fd00::/8", "::1"] } }));
    refused(json!({ "http": { "trustedProxies": ["10.0.0.0/8", "ingress-nginx"] } }), "trustedProxies holds CIDRs or IP addresses");
    refused(json!({ "http": { "trustedProxies": ["10.0.0.0/33"] } }), "trustedProxies holds CIDRs or IP addresses");
    ok(json!({ "service": { "type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24"] } }));
    ok(json!({ "service": { "type": "NodePort" } }));
    refused(
        json!({ "service": { "type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.7"] } }),
        "loadBalancerSourceRanges holds CIDRs",
    );
    refused(json!({ "service": { "loadBalancerSourceRanges": ["203.0.113.0/24"] } }), "loadBalancerSourceRanges needs type LoadBalancer");
    refused(
        json!({ "service": { "type": "NodePort", "loadBalancerSourceRanges": ["203.0.113.0/24"] } }),
        "loadBalancerSourceRanges needs type LoadBalancer",
    );
}

#[test]
fn the_exposure_examples_are_valid() {
    let s = schema(ChatCluster::crd());
    for file in ["chatcluster-ingress.yaml", "chatcluster-gateway-api.yaml", "chatcluster-loadbalancer.yaml"] {
        let text = std::fs::read_to_string(format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let cc: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(errors(&s, &cc, None), Vec::<String>::new(), "{file}");
    }
}

#[test]
fn object_storage_endpoints_are_http_urls() {
    let s = schema(ChatCluster::crd());
    // Null stands for "unset" (left out): the API server skips a field's rules on null, kube's
    // evaluator does not.
    let store = |endpoint: Value, public: Value| {
        let mut o = json!({ "endpoint": endpoint, "bucket": "chat-files", "credentialsSecret": { "name": "s3" } });
        if !public.is_null() {
            o["publicEndpoint"] = public;
        }
        json!({ "objectStorage": o })
    };
    for (endpoint, public) in [
        (json!("http://minio.storage.svc:9000"), json!(null)),
        (json!("https://s3.eu-central-1.amazonaws.com"), json!("https://files.example.com/s3")),
        (json!("http://127.0.0.1:7070"), json!("http://[::1]:7070")),
    ] {
        let patch = store(endpoint, public);
        assert_eq!(errors(&s, &cluster_with(patch.clone()), None), Vec::<String>::new(), "{patch}");
    }
    for (endpoint, public, message) in [
        (json!("minio.storage.svc:9000"), json!(null), "endpoint must be an http:// or https:// URL"),
        (json!("ftp://minio.storage.svc"), json!(null), "endpoint must be an http:// or https:// URL"),
        (json!("http://"), json!(null), "endpoint must be an http:// or https:// URL"),
        (json!("http://minio:9000"), json!("files.example.com"), "publicEndpoint must be an http:// or https:// URL"),
        (json!("http://minio:9000"), json!("s3://files"), "publicEndpoint must be an http:// or https:// URL"),
    ] {
        let patch = store(endpoint, public);
        let e = errors(&s, &cluster_with(patch.clone()), None);
        assert!(e.iter().any(|e| e.contains(message)), "{patch}: {e:?}");
    }
}

#[test]
fn the_object_storage_example_is_valid() {
    let s = schema(ChatCluster::crd());
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/chatcluster-object-storage.yaml")).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    let cc = docs.iter().find(|d| d["kind"] == "ChatCluster").expect("a ChatCluster");
    assert_eq!(errors(&s, cc, None), Vec::<String>::new());
}
