//! What only a real API server can judge: the CRDs' CEL rules and structural schema at
//! admission (object storage and file limits included) and for every example,
//! server-side-apply field ownership between an administrator and the operator, `kubectl
//! explain` showing the CRDs' descriptions, and the printer columns of `kubectl get`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use palaver_crds::resources::{ChatCluster, Workspace};
use palaver_e2e::kube_server::{KubeOptions, KubeServer};
use palaver_e2e::operator::{create_cluster_secrets, example_cluster, fast_settings, wait_for};
use palaver_operator::controller::{chatcluster, Context, MANAGER};
use palaver_operator::metrics::Metrics;
use serde_json::{json, Value};

const NS: &str = "chat";
const T: Duration = Duration::from_secs(30);

fn workspace(name: &str, partitions: i64) -> Value {
    json!({
        "apiVersion": "palaver.dev/v1alpha1", "kind": "Workspace",
        "metadata": { "name": name, "namespace": NS },
        "spec": { "clusterRef": "main", "partitions": partitions }
    })
}

/// The API server's refusal (code, message) of creating `obj`; panics if it was accepted.
async fn refused_create(client: &Client, obj: Value) -> (u16, String) {
    let ws: Workspace = serde_json::from_value(obj.clone()).unwrap();
    match Api::<Workspace>::namespaced(client.clone(), NS).create(&PostParams::default(), &ws).await {
        Ok(_) => panic!("accepted: {obj}"),
        Err(kube::Error::Api(e)) => (e.code, e.message),
        Err(e) => panic!("{e}"),
    }
}

async fn refused_patch<K>(api: &Api<K>, name: &str, patch: Value) -> (u16, String)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.patch(name, &PatchParams::default(), &Patch::Merge(patch.clone())).await {
        Ok(_) => panic!("accepted: {patch}"),
        Err(kube::Error::Api(e)) => (e.code, e.message),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn invalid_workspaces_and_chatclusters_are_refused_at_admission() {
    let server = KubeServer::start(KubeOptions::default()).await.unwrap();
    let client = server.client();
    const NAME_RULE: &str = "workspace names are 2-41 of a-z, 0-9 and '-'";

    // Names the CEL rule on metadata.name refuses (all valid Kubernetes object names).
    let too_long = format!("a{}", "b".repeat(41));
    for bad in ["a--b", "x", "1abc", "a.b", too_long.as_str()] {
        let (code, message) = refused_create(&client, workspace(bad, 1)).await;
        assert_eq!(code, 422, "{bad}: {message}");
        assert!(message.contains(NAME_RULE), "{bad}: {message}");
    }
    // The structural schema's bounds.
    for partitions in [0, 1025] {
        let (code, message) = refused_create(&client, workspace("acme", partitions)).await;
        assert_eq!(code, 422, "{message}");
        assert!(message.contains("spec.partitions"), "{message}");
    }
    // File limits (issue 11): media types or `type/*` patterns, at most 100 files a message.
    for (files, want) in [
        (json!({ "allowedTypes": ["image/*", "png"] }), "spec.files.allowedTypes[1]"),
        (json!({ "allowedTypes": ["Image/PNG"] }), "spec.files.allowedTypes[0]"),
        (json!({ "allowedTypes": ["*/png"] }), "spec.files.allowedTypes[0]"),
        (json!({ "maxPerMessage": 101 }), "spec.files.maxPerMessage"),
        (json!({ "maxBytes": 0 }), "spec.files.maxBytes"),
    ] {
        let mut bad = workspace("acme", 1);
        bad["spec"]["files"] = files.clone();
        let (code, message) = refused_create(&client, bad).await;
        assert!(code == 422 && message.contains(want), "{files}: {code} {message}");
    }
    // A valid one is stored, with the schema's defaults filled in.
    let mut ws = workspace("acme", 2);
    ws["spec"]["files"] = json!({ "maxBytes": 26214400, "maxPerMessage": 10, "allowedTypes": ["image/*", "application/pdf", "*/*"] });
    let ws: Workspace = serde_json::from_value(ws).unwrap();
    let api = Api::<Workspace>::namespaced(client.clone(), NS);
    let created = api.create(&PostParams::default(), &ws).await.unwrap();
    assert_eq!(created.spec.partitions, 2);
    assert_eq!(created.spec.files.unwrap().allowed_types.unwrap().len(), 3);

    // Transition rules: partitions may only grow, clusterRef never changes.
    let (code, message) = refused_patch(&api, "acme", json!({ "spec": { "partitions": 1 } })).await;
    assert_eq!(code, 422);
    assert!(message.contains("partitions may only grow"), "{message}");
    let (code, message) = refused_patch(&api, "acme", json!({ "spec": { "clusterRef": "other" } })).await;
    assert_eq!(code, 422);
    assert!(message.contains("clusterRef is immutable"), "{message}");
    let grown = api.patch("acme", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "partitions": 3 } }))).await.unwrap();
    assert_eq!((grown.spec.partitions, grown.metadata.generation), (3, Some(2)), "growth is accepted");

    // ChatCluster: autoscaling bounds must be ordered.
    let mut cc = example_cluster(NS, "main", "kafka:9092");
    let clusters = Api::<ChatCluster>::namespaced(client.clone(), NS);
    let mut upside_down = serde_json::to_value(&cc).unwrap();
    upside_down["spec"]["autoscaling"]["minReplicas"] = json!(12);
    match clusters.create(&PostParams::default(), &serde_json::from_value(upside_down).unwrap()).await {
        Err(kube::Error::Api(e)) => assert!(e.code == 422 && e.message.contains("minReplicas must not exceed maxReplicas"), "{e:?}"),
        other => panic!("accepted or failed otherwise: {other:?}"),
    }
    // The exposure rules, CEL (isCIDR and isIP included) and schema patterns.
    let route = json!({ "parentRefs": [{ "name": "gw" }], "hostnames": ["chat.example.com"] });
    let store = |endpoint: &str, bucket: &str| json!({ "objectStorage": { "endpoint": endpoint, "bucket": bucket, "credentialsSecret": { "name": "s3" } } });
    let refusals = [
        (json!({ "http": { "trustedProxies": ["10.0.0.0/8", "nginx"] } }), "trustedProxies holds CIDRs or IP addresses"),
        (json!({ "service": { "type": "ClusterIP", "loadBalancerSourceRanges": ["10.0.0.0/8"] } }), "needs type LoadBalancer"),
        (json!({ "ingress": { "host": "chat.example.com", "tls": {} } }), "tls needs secretName or an issuer"),
        (json!({ "ingress": { "host": "chat.example.com", "tls": { "issuer": "a", "clusterIssuer": "b" } } }), "not both"),
        (json!({ "ingress": { "host": "chat.example.com", "path": "/chat/" }, "gatewayAPI": route }), "must be equal"),
        (json!({ "ingress": { "host": "Chat.Example.com" } }), "spec.ingress.host"),
        (json!({ "ingress": { "host": "chat.example.com", "path": "/chat" } }), "spec.ingress.path"),
        (json!({ "http": { "allowedOrigins": ["https://app.example.com/path"] } }), "spec.http.allowedOrigins"),
        // Object storage (issue 11): http(s) endpoints and S3 bucket names.
        (store("ftp://minio.storage.svc", "chat-files"), "endpoint must be an http:// or https:// URL"),
        (store("minio.storage.svc:9000", "chat-files"), "endpoint must be an http:// or https:// URL"),
        (store("http://minio.storage.svc:9000", "Chat_Files"), "spec.objectStorage.bucket"),
        (store("http://minio.storage.svc:9000", "ab"), "spec.objectStorage.bucket"),
        (store("http://minio.storage.svc:9000", "-chat"), "spec.objectStorage.bucket"),
        (
            json!({ "objectStorage": { "endpoint": "http://minio:9000", "publicEndpoint": "files.example.com", "bucket": "chat-files",
                                       "credentialsSecret": { "name": "s3" } } }),
            "publicEndpoint must be an http:// or https:// URL",
        ),
    ];
    for (spec, want) in refusals {
        let mut bad = serde_json::to_value(&cc).unwrap();
        bad["metadata"]["name"] = json!("exposed");
        for (k, v) in spec.as_object().unwrap() {
            bad["spec"][k] = v.clone();
        }
        match clusters.create(&PostParams::default(), &serde_json::from_value(bad).unwrap()).await {
            Err(kube::Error::Api(e)) => assert!(e.code == 422 && e.message.contains(want), "{spec}: {e:?}"),
            other => panic!("{spec}: accepted or failed otherwise: {other:?}"),
        }
    }
    let mut exposed = serde_json::to_value(&cc).unwrap();
    exposed["metadata"]["name"] = json!("exposed");
    exposed["spec"]["ingress"] = json!({ "host": "chat.example.com", "path": "/chat/", "tls": { "clusterIssuer": "letsencrypt" } });
    exposed["spec"]["gatewayAPI"] = json!({ "parentRefs": [{ "name": "gw" }], "hostnames": ["chat.example.com"], "path": "/chat/" });
    exposed["spec"]["http"] =
        json!({ "trustedProxies": ["10.0.0.0/8", "fd00::1"], "allowedOrigins": ["*", "https://app.example.com:8443"] });
    exposed["spec"]["service"] = json!({ "type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24"] });
    exposed["spec"]["objectStorage"] = json!({ "endpoint": "https://s3.eu-central-1.amazonaws.com", "bucket": "chat.files-1",
                                               "credentialsSecret": { "name": "s3" }, "caSecret": { "name": "s3-ca" } });
    let exposed = clusters.create(&PostParams::default(), &serde_json::from_value(exposed).unwrap()).await.unwrap();
    // The schema's defaults; the unset publicEndpoint travels as null, which its rule skips.
    let store = exposed.spec.object_storage.unwrap();
    assert_eq!((store.region.as_str(), store.virtual_hosted_style, store.public_endpoint), ("us-east-1", false, None));
    assert_eq!(store.credentials_secret.secret_access_key_key, "secret-access-key");
    assert_eq!(store.ca_secret.map(|ca| (ca.name, ca.key)), Some(("s3-ca".into(), "ca.crt".into())), "the CA key's default");

    cc.metadata.name = Some("main".into());
    clusters.create(&PostParams::default(), &cc).await.unwrap();
    let (code, message) = refused_patch(&clusters, "main", json!({ "spec": { "autoscaling": { "minReplicas": 11 } } })).await;
    assert_eq!(code, 422);
    assert!(message.contains("minReplicas must not exceed maxReplicas"), "{message}");
}

/// Every manifest of examples/ passes admission (schema, patterns and CEL rules), as
/// `kubectl apply --dry-run=server` sends it.
#[tokio::test]
async fn every_example_passes_a_server_side_dry_run() {
    let server = KubeServer::start(KubeOptions::default()).await.unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let (ok, out, err) = server.kubectl_output(&["apply", "--dry-run=server", "--server-side", "-f", dir, "-o", "name"]).await.unwrap();
    assert!(ok, "the API server refused an example:\n{err}\n{out}");
    let documents: usize = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .map(|text| serde_yaml::Deserializer::from_str(&text).count())
        .sum();
    assert_eq!(out.lines().count(), documents, "{out}");
    assert!(out.contains("secret/palaver-s3") && out.contains("workspace.palaver.dev/acme"), "{out}");
}

/// Field managers of `obj` that own the path (e.g. `f:metadata` > `f:annotations` > `f:x`).
fn owners(obj: &Value, path: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for m in obj["metadata"]["managedFields"].as_array().into_iter().flatten() {
        let mut node = &m["fieldsV1"];
        for p in path {
            node = &node[*p];
        }
        if !node.is_null() {
            out.push(m["manager"].as_str().unwrap_or_default().to_string());
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_keeps_an_admins_field_and_takes_back_its_own() {
    let server = KubeServer::start(KubeOptions::default()).await.unwrap();
    let client = server.client();
    create_cluster_secrets(&client, NS, "postgres://unused").await.unwrap();
    let mut cc = example_cluster(NS, "main", "kafka:9092");
    cc.spec.monitoring = None;
    Api::<ChatCluster>::namespaced(client.clone(), NS).create(&PostParams::default(), &cc).await.unwrap();
    let ctx = Context::new(server.controller_client(), Arc::new(Metrics::new()), fast_settings(), None);
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(chatcluster::run(ctx, None, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    let d = wait_for(&deployments, "main-gateway", "the Deployment", T, |_| true).await.unwrap();
    let image = d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();

    // An administrator applies, as their own field manager, a field the operator does not manage
    // (an annotation, and minReadySeconds)...
    let admin = PatchParams::apply("sre-team");
    let mine = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "main-gateway", "annotations": { "example.com/on-call": "chat-sre" } },
        "spec": { "minReadySeconds": 7 }
    });
    deployments.patch("main-gateway", &admin, &Patch::Apply(&mine)).await.unwrap();
    // ...and forces a change to one it does (the image), taking the field over.
    let theirs = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "main-gateway" },
        "spec": { "template": { "spec": { "containers": [{ "name": "palaverd", "image": "evil:latest" }] } } }
    });
    let err = deployments.patch("main-gateway", &PatchParams::apply("intruder"), &Patch::Apply(&theirs)).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(e) if e.code == 409), "an unforced apply of an owned field is a conflict: {err:?}");
    deployments.patch("main-gateway", &PatchParams::apply("intruder").force(), &Patch::Apply(&theirs)).await.unwrap();

    // The operator's next reconcile (woken by the change) takes its field back...
    let image_of = |d: &Deployment| d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].image.clone();
    let d = wait_for(&deployments, "main-gateway", "the image reverted", T, |d| image_of(d) == Some(image.clone())).await.unwrap();
    // ...and leaves the administrator's fields alone.
    assert_eq!(d.metadata.annotations.as_ref().unwrap().get("example.com/on-call").map(String::as_str), Some("chat-sre"));
    assert_eq!(d.spec.as_ref().unwrap().min_ready_seconds, Some(7));
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(owners(&v, &["f:metadata", "f:annotations", "f:example.com/on-call"]), ["sre-team"]);
    assert_eq!(owners(&v, &["f:spec", "f:minReadySeconds"]), ["sre-team"]);
    let image_path = ["f:spec", "f:template", "f:spec", "f:containers", r#"k:{"name":"palaverd"}"#, "f:image"];
    assert_eq!(owners(&v, &image_path), [MANAGER], "the operator owns the image again, alone: {v}");
    stop.send_replace(true);
    tokio::time::timeout(T, task).await.expect("the controller stops").unwrap();
}

/// The description of `spec.<field>` in the CRD manifest `file` (first version).
fn description(file: &str, field: &str) -> String {
    let path = format!("{}/../crds/manifests/{file}", env!("CARGO_MANIFEST_DIR"));
    let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][field];
    spec["description"].as_str().unwrap_or_else(|| panic!("no description of spec.{field} in {file}")).to_string()
}

#[tokio::test]
async fn kubectl_explain_shows_the_descriptions_and_get_prints_the_columns() {
    let server = KubeServer::start(KubeOptions::default()).await.unwrap();
    for (resource, file, field) in [("workspaces", "workspaces.yaml", "partitions"), ("chatclusters", "chatclusters.yaml", "kafka")] {
        // The CRD's OpenAPI is published a moment after it is established.
        let what = format!("kubectl explain {resource}.spec.{field}");
        let out = palaver_e2e::eventually(T, &what, || async {
            let (ok, out, _) = server.kubectl_output(&["explain", &format!("{resource}.spec.{field}")]).await.ok()?;
            ok.then_some(out)
        })
        .await
        .unwrap();
        // kubectl re-wraps the text: compare word by word.
        let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>().join(" ");
        let want = words(&description(file, field));
        assert!(want.len() > 20, "{want}");
        assert!(words(&out).contains(&want), "kubectl explain {resource}.spec.{field} lacks {want:?}:\n{out}");
    }

    // A Workspace with a status, as the operator writes it.
    let client = server.client();
    let api = Api::<Workspace>::namespaced(client.clone(), NS);
    api.create(&PostParams::default(), &serde_json::from_value(workspace("acme", 3)).unwrap()).await.unwrap();
    let status = json!({ "status": { "partitions": 3, "conditions": [{
        "type": "Ready", "status": "True", "reason": "Provisioned", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z" }] } });
    api.patch_status("acme", &PatchParams::default(), &Patch::Merge(status)).await.unwrap();
    let (ok, out, err) = server.kubectl_output(&["get", "workspaces", "-n", NS]).await.unwrap();
    assert!(ok, "{err}");
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines.first().map(Vec::as_slice), Some(&["NAME", "READY", "PARTITIONS", "CLUSTER", "AGE"][..]), "{out}");
    assert_eq!(lines.get(1).map(|l| &l[..4]), Some(&["acme", "True", "3", "main"][..]), "{out}");

    let mut cc = example_cluster(NS, "main", "kafka:9092");
    cc.metadata.name = Some("main".into());
    Api::<ChatCluster>::namespaced(client.clone(), NS).create(&PostParams::default(), &cc).await.unwrap();
    let (ok, out, err) = server.kubectl_output(&["get", "chatclusters", "-n", NS]).await.unwrap();
    assert!(ok, "{err}");
    let header: Vec<&str> = out.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "REPLICAS", "WORKSPACES", "URL", "AGE"], "{out}");
}

/// The chart rendered as `helm install palaver -n palaver-system` would, with `values` (a file of
/// charts/palaver/ci) or the defaults, by the helm `make deps-test` installs (`HELM_BIN`
/// overrides it).
fn render_chart(values: Option<&str>) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let chart = format!("{root}/charts/palaver");
    let helm = std::env::var("HELM_BIN").unwrap_or_else(|_| {
        // scripts/lib.sh holds HELM_ROOT's default (the environment may override it).
        let found = std::process::Command::new("bash")
            .args(["-c", &format!("source {root}/scripts/lib.sh && printf %s \"$HELM_ROOT/bin/helm\"")])
            .output()
            .expect("bash");
        String::from_utf8_lossy(&found.stdout).into_owned()
    });
    assert!(std::path::Path::new(&helm).is_file(), "no helm at {helm}: run `make deps-test`");
    let mut cmd = std::process::Command::new(&helm);
    cmd.args(["template", "palaver", &chart, "--namespace", "palaver-system", "--kube-version", "1.33.0"]);
    if let Some(v) = values {
        cmd.args(["--values", &format!("{chart}/ci/{v}")]);
    }
    let out = cmd.output().expect("running helm");
    assert!(out.status.success(), "rendering the chart failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[tokio::test]
async fn every_object_of_the_rendered_chart_passes_a_server_side_dry_run() {
    let server = KubeServer::start(KubeOptions::default()).await.unwrap();
    // The Prometheus operator's CRDs, as a cluster with monitoring has them (schemaless here:
    // their own schemas are not in this repo).
    server.install_schemaless_crd("monitoring.coreos.com", "servicemonitors", "ServiceMonitor").await.unwrap();
    server.install_schemaless_crd("monitoring.coreos.com", "prometheusrules", "PrometheusRule").await.unwrap();
    for values in [None, Some("all-on-values.yaml")] {
        let rendered = render_chart(values);
        let kinds: Vec<String> = serde_yaml::Deserializer::from_str(&rendered)
            .filter_map(|d| serde::Deserialize::deserialize(d).ok())
            .filter_map(|v: Value| Some(format!("{}/{}", v["kind"].as_str()?, v["metadata"]["name"].as_str()?)))
            .collect();
        assert!(kinds.iter().any(|k| k.starts_with("Deployment/")) && kinds.len() >= 7, "{values:?}: {kinds:?}");
        if values.is_some() {
            for kind in ["ServiceMonitor/", "PrometheusRule/", "ConfigMap/"] {
                assert!(kinds.iter().any(|k| k.starts_with(kind)), "all-on values render a {kind}: {kinds:?}");
            }
        }
        // The namespaces the objects go to exist on a cluster that installs this (e.g. the
        // monitoring stack's, for dashboards and rules).
        let namespaces: std::collections::BTreeSet<String> = serde_yaml::Deserializer::from_str(&rendered)
            .filter_map(|d| serde::Deserialize::deserialize(d).ok())
            .filter_map(|v: Value| v["metadata"]["namespace"].as_str().map(str::to_string))
            .collect();
        for ns in &namespaces {
            server.create_namespace(ns).await.unwrap();
        }
        let file = server.scratch("rendered.yaml");
        std::fs::write(&file, &rendered).unwrap();
        let (ok, out, err) = server
            .kubectl_output(&["apply", "--dry-run=server", "--server-side", "-f", file.to_str().unwrap(), "-o", "name"])
            .await
            .unwrap();
        assert!(ok, "{values:?}: the API server refused part of the chart:\n{err}\n{out}");
        // One line per object, each accepted by the API server (admission, schema, defaulting).
        assert_eq!(out.lines().count(), kinds.len(), "{values:?}: {out}\n{kinds:?}");
    }
}
