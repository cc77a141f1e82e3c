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
