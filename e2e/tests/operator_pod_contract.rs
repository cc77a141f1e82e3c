//! The contract between the operator and palaverd: a palaverd process started with exactly the
//! environment the operator's Deployment and ConfigMap give a gateway pod (container paths
//! pointed at local files, the listen address at a free port) starts and becomes ready against
//! the real services. A renamed or mistyped setting would keep every pod from starting; one
//! palaverd does not read at all (it ignores unknown variables) is caught by comparing the
//! names with those `palaverd serve --help` lists.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::EnvVar;
use kube::core::ObjectMeta;
use palaver_crds::resources::{
    ChatCluster, HttpSpec, IngressSpec, ObjectStorageCaSecret, ObjectStorageCredentials, ObjectStorageSpec, PushSpec, SecretKeyRef,
};
use palaver_e2e::operator::example_cluster;
use palaver_e2e::{eventually, free_port, Services};
use palaver_operator::controller::objects;

/// examples/chatcluster.yaml with the optional settings that reach palaverd's environment.
fn cluster(bootstrap: &str) -> ChatCluster {
    let mut cc = example_cluster("chat", "main", bootstrap);
    cc.metadata = ObjectMeta { uid: Some("u-1".into()), ..cc.metadata };
    cc.spec.kafka.secret_ref = Some(SecretKeyRef { name: "palaver-kafka".into(), key: "client.properties".into() });
    cc.spec.push = Some(PushSpec { webhook_url: "http://127.0.0.1:9/push".into(), max_attempts: Some(3) });
    // Behind an ingress under a path prefix, with proxies and origins to trust.
    cc.spec.ingress = Some(IngressSpec {
        class_name: None,
        host: "chat.example.com".into(),
        path: "/chat/".into(),
        tls: None,
        annotations: Default::default(),
    });
    cc.spec.http = Some(HttpSpec {
        trusted_proxies: vec!["10.0.0.0/8".into(), "fd00::1".into()],
        allowed_origins: vec!["https://app.example.com".into(), "http://localhost:3000".into()],
    });
    cc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn palaverd_starts_ready_with_the_environment_the_operator_gives_its_pods() {
    let svc = Services::from_env();
    let cc = cluster(&svc.kafka_brokers);

    let dir = std::env::temp_dir().join(format!("palaver-pod-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("public.pem");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/es256-public.pem"), &key).unwrap();
    let props = dir.join("client.properties");
    std::fs::write(&props, "# as the Secret would hold it\nclient.id=palaver-contract-test\n").unwrap();

    let config = objects::config_map(&cc).data.unwrap();
    let deployment = objects::deployment(&cc);
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = tokio::process::Command::new(palaver_e2e::procs::palaverd_bin());
    cmd.arg("serve").env_clear().envs(&config);
    // The container's own env: Secret references resolved as the kubelet would, the pod name
    // from the downward API.
    for EnvVar { name, value, value_from } in container.env.clone().unwrap() {
        let value = match (value, value_from.and_then(|f| f.secret_key_ref.map(|s| s.name).or(f.field_ref.map(|f| f.field_path)))) {
            (Some(v), _) => v,
            (None, Some(from)) if from == "palaver-postgres" => svc.database_url.clone(),
            (None, Some(from)) if from == "palaver-redis" => svc.redis_url.clone(),
            (None, Some(from)) if from == "metadata.name" => "main-gateway-abc12".into(),
            (None, from) => panic!("env {name} from {from:?}: the test does not know this source"),
        };
        cmd.env(name, value);
    }
    // Container paths and the port are the only changes.
    let paths = [("PALAVER_JWT_PUBLIC_KEY_FILE", &key), ("PALAVER_KAFKA_PROPERTIES_FILE", &props)];
    for (var, local) in paths {
        assert!(config.contains_key(var), "the operator no longer sets {var}");
        cmd.env(var, local);
    }
    assert!(config.contains_key("PALAVER_LISTEN"));
    for var in ["PALAVER_PATH_PREFIX", "PALAVER_TRUSTED_PROXIES", "PALAVER_ALLOWED_ORIGINS"] {
        assert!(config.contains_key(var), "the operator no longer sets {var}");
    }
    cmd.env("PALAVER_LISTEN", &listen).env("RUST_LOG", "warn").stdout(Stdio::null()).kill_on_drop(true);
    let mut pod = cmd.spawn().unwrap();

    let http = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(30), "palaverd /readyz 200", || async {
        (http.get(format!("http://{listen}/readyz")).send().await.ok()?.status() == 200).then_some(())
    })
    .await;
    if let Err(e) = ready {
        let exited = pod.try_wait().unwrap();
        panic!("{e}; palaverd exited: {exited:?} (its stderr is above)");
    }
    let probe = container.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.clone().unwrap();
    assert_eq!(http.get(format!("http://{listen}{probe}")).send().await.unwrap().status(), 200);
    let live = container.liveness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.clone().unwrap();
    assert_eq!(http.get(format!("http://{listen}{live}")).send().await.unwrap().status(), 200);
    // What an ingress forwards unchanged, prefix included, reaches the same routes.
    assert_eq!(http.get(format!("http://{listen}/chat{probe}")).send().await.unwrap().status(), 200);
    pod.kill().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// palaverd takes its settings from the variables it knows and ignores the rest, so a name the
/// two sides spell differently goes unnoticed at start-up: every variable the operator sets,
/// object storage included (issue 11), is one `palaverd serve` reads.
#[test]
fn palaverd_reads_every_variable_the_operator_sets() {
    let mut cc = cluster("kafka:9092");
    cc.spec.object_storage = Some(ObjectStorageSpec {
        endpoint: "http://minio.storage.svc:9000".into(),
        public_endpoint: Some("https://files.example.com".into()),
        bucket: "chat-files".into(),
        region: "us-east-1".into(),
        virtual_hosted_style: false,
        credentials_secret: ObjectStorageCredentials {
            name: "palaver-s3".into(),
            access_key_id_key: "access-key-id".into(),
            secret_access_key_key: "secret-access-key".into(),
        },
        ca_secret: Some(ObjectStorageCaSecret { name: "palaver-s3-ca".into(), key: "ca.crt".into() }),
    });
    let out = std::process::Command::new(palaver_e2e::procs::palaverd_bin()).args(["serve", "--help"]).env_clear().output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // clap lists each variable as `[env: NAME=value]` (`[env: NAME]` when values are hidden).
    let help = String::from_utf8(out.stdout).unwrap();
    let mut known: BTreeSet<&str> = help.split("[env: ").skip(1).filter_map(|s| s.split(['=', ']']).next()).collect();
    // Read before the command line is parsed (dataplane/src/telemetry.rs).
    known.insert("PALAVER_LOG_FORMAT");
    let container = objects::deployment(&cc).spec.unwrap().template.spec.unwrap().containers.remove(0);
    let mut set: Vec<String> = objects::config_map(&cc).data.unwrap().into_keys().collect();
    set.extend(container.env.unwrap().into_iter().map(|e| e.name));
    for var in [
        "PALAVER_S3_ENDPOINT",
        "PALAVER_S3_PUBLIC_ENDPOINT",
        "PALAVER_S3_ACCESS_KEY_ID",
        "PALAVER_S3_SECRET_ACCESS_KEY",
        "PALAVER_S3_CA_FILE",
    ] {
        assert!(set.iter().any(|v| v == var), "the operator no longer sets {var}");
    }
    let unknown: Vec<&String> = set.iter().filter(|v| !known.contains(v.as_str())).collect();
    assert!(unknown.is_empty(), "palaverd does not read {unknown:?}");
}
