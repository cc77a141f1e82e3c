//! The provisioning library against the real Postgres and Kafka: partition growth (never
//! shrink) and retention changes read back from the broker, deprovision with Retain and Delete
//! (which deletes exactly that workspace's topics), file limits in the registry, and
//! `palaver-operator provision -f`.

use std::time::Duration;

use palaver_crds::resources::DeletionPolicy;
use palaver_crds::WorkspaceName;
use palaver_e2e::operator::{registered, schema_exists};
use palaver_e2e::{unique_workspace, Services};
use palaver_operator::provision::{FileLimits, Provisioner, WorkspacePlan};

fn plan(name: &WorkspaceName, partitions: i32) -> WorkspacePlan {
    WorkspacePlan {
        name: name.clone(),
        display_name: name.to_string(),
        partitions,
        default_channels: vec!["general".into()],
        retention_hours: Some(24),
        files: FileLimits::default(),
    }
}

#[tokio::test]
async fn partitions_grow_but_never_shrink() -> anyhow::Result<()> {
    let svc = Services::from_env();
    let p = Provisioner::connect(&svc.database_url, &svc.kafka_brokers).await?;
    let name = unique_workspace("grow");
    let events = name.events_topic();
    assert_eq!(p.provision(&plan(&name, 2)).await?.partitions, 2);
    assert_eq!(p.topics().partitions(&events).await?, 2);
    assert_eq!(p.provision(&plan(&name, 4)).await?.partitions, 4, "growing adds partitions");
    assert_eq!(p.topics().partitions(&events).await?, 4, "the broker has the new partitions");
    assert_eq!(p.provision(&plan(&name, 1)).await?.partitions, 4, "a smaller plan keeps the partitions the topic has");
    assert_eq!(p.topics().partitions(&events).await?, 4, "never shrunk");
    let recorded: i32 = sqlx::query_scalar("SELECT partitions FROM palaver_control.workspaces WHERE name = $1")
        .bind(name.as_str())
        .fetch_one(p.pool())
        .await?;
    assert_eq!(recorded, 4, "the registry records what the topic really has");

    // The retention is set at creation; a changed one is applied to the live topic, and the
    // topic's other overrides survive the change.
    let retention = |t: std::collections::BTreeMap<String, String>| t.get("retention.ms").cloned();
    assert_eq!(retention(p.topics().topic_overrides(&events).await?).as_deref(), Some("86400000"), "24 h at creation");
    set_topic_config(&svc.kafka_brokers, &events, &[("retention.ms", "86400000"), ("max.message.bytes", "2000000")]).await?;
    let mut longer = plan(&name, 4);
    longer.retention_hours = Some(48);
    p.provision(&longer).await?;
    let overrides = p.topics().topic_overrides(&events).await?;
    assert_eq!(retention(overrides.clone()).as_deref(), Some("172800000"), "48 h after the change: {overrides:?}");
    assert_eq!(overrides.get("max.message.bytes").map(String::as_str), Some("2000000"), "other overrides kept: {overrides:?}");
    let again = p.provision(&longer).await?;
    assert_eq!(again.partitions, 4);
    assert_eq!(retention(p.topics().topic_overrides(&events).await?).as_deref(), Some("172800000"));
    Ok(())
}

/// Sets topic configs behind the provisioner's back, as an administrator would.
async fn set_topic_config(brokers: &str, topic: &str, configs: &[(&str, &str)]) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in configs {
        alter = alter.set(k, v);
    }
    for r in admin.alter_configs([&alter], &AdminOptions::new().request_timeout(Some(Duration::from_secs(15)))).await? {
        r.map_err(|(_, code)| anyhow::anyhow!("alter configs of {topic}: {code}"))?;
    }
    Ok(())
}

/// The registry row's file limits (issue 11), as palaverd reads them.
async fn recorded_files(p: &Provisioner, name: &WorkspaceName) -> anyhow::Result<(Option<i64>, Option<i32>, Option<Vec<String>>)> {
    let row =
        sqlx::query_as("SELECT file_max_bytes, file_max_per_message, file_allowed_types FROM palaver_control.workspaces WHERE name = $1")
            .bind(name.as_str())
            .fetch_one(p.pool())
            .await?;
    Ok(row)
}

#[tokio::test]
async fn file_limits_are_written_to_the_registry_and_cleared_with_the_spec() -> anyhow::Result<()> {
    let svc = Services::from_env();
    let p = Provisioner::connect(&svc.database_url, &svc.kafka_brokers).await?;
    let name = unique_workspace("files");
    let mut limited = plan(&name, 1);
    let types = vec!["image/*".to_string(), "application/pdf".to_string()];
    limited.files = FileLimits { max_bytes: Some(26_214_400), max_per_message: Some(4), allowed_types: Some(types.clone()) };
    p.provision(&limited).await?;
    assert_eq!(recorded_files(&p, &name).await?, (Some(26_214_400), Some(4), Some(types)));

    // Only some set: the others are NULL, the pod's default.
    limited.files = FileLimits { max_per_message: Some(1), ..Default::default() };
    p.provision(&limited).await?;
    assert_eq!(recorded_files(&p, &name).await?, (None, Some(1), None));

    // Every provision writes them: a spec without files clears the columns.
    p.provision(&plan(&name, 1)).await?;
    assert_eq!(recorded_files(&p, &name).await?, (None, None, None));

    // What the CRD refuses, the plan refuses too, before writing anything.
    limited.files = FileLimits { allowed_types: Some(vec!["image/*".into(), "PNG".into()]), ..Default::default() };
    assert!(p.provision(&limited).await.unwrap_err().to_string().contains("allowedTypes"));
    limited.files = FileLimits { max_bytes: Some(0), ..Default::default() };
    assert!(p.provision(&limited).await.unwrap_err().to_string().contains("maxBytes"));
    assert_eq!(recorded_files(&p, &name).await?, (None, None, None));
    p.deprovision(&name, DeletionPolicy::Delete).await?;
    Ok(())
}

#[tokio::test]
async fn invalid_plans_are_refused_before_anything_is_created() -> anyhow::Result<()> {
    let svc = Services::from_env();
    let p = Provisioner::connect(&svc.database_url, &svc.kafka_brokers).await?;
    let name = unique_workspace("bad");
    let mut bad = plan(&name, 0);
    assert!(p.provision(&bad).await.unwrap_err().to_string().contains("partitions"));
    bad.partitions = 1;
    bad.default_channels = vec!["Not A Channel".into()];
    assert!(p.provision(&bad).await.unwrap_err().to_string().contains("default channel"));
    assert!(!schema_exists(p.pool(), &name).await);
    Ok(())
}

#[tokio::test]
async fn deprovision_retain_keeps_data_and_delete_removes_it() -> anyhow::Result<()> {
    let shared = Services::from_env();
    let svc = shared.private_database().await?;
    let p = Provisioner::connect(&svc.database_url, &svc.kafka_brokers).await?;

    let kept = unique_workspace("kept");
    p.provision(&plan(&kept, 2)).await?;
    sqlx::query(&format!("INSERT INTO {}.channels (id, name, kind, created_by) VALUES ('c_x', 'x', 'public', 'u')", kept.schema()))
        .execute(p.pool())
        .await?;
    p.deprovision(&kept, DeletionPolicy::Retain).await?;
    assert!(!registered(p.pool(), &kept).await, "Retain deregisters");
    assert!(schema_exists(p.pool(), &kept).await, "Retain keeps the schema");
    assert_eq!(p.topics().partitions(&kept.events_topic()).await?, 2, "Retain keeps the topics");
    p.provision(&plan(&kept, 2)).await?;
    let channels: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM {}.channels WHERE name = 'x'", kept.schema())).fetch_one(p.pool()).await?;
    assert_eq!(channels, 1, "provisioning again picks the retained data up");

    let gone = unique_workspace("gone");
    p.provision(&plan(&gone, 1)).await?;
    p.deprovision(&gone, DeletionPolicy::Delete).await?;
    assert!(!registered(p.pool(), &gone).await);
    assert!(!schema_exists(p.pool(), &gone).await, "Delete drops the schema");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for topic in [gone.events_topic(), gone.dlq_topic()] {
        while p.topics().partitions(&topic).await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "topic {topic} still exists");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Exactly that workspace's topics: the other workspace's (and every other test's on the
    // shared broker) are still there.
    assert_eq!(p.topics().partitions(&kept.events_topic()).await?, 2, "another workspace's topics survive a Delete");
    assert_eq!(p.topics().partitions(&kept.dlq_topic()).await?, 1);
    p.deprovision(&gone, DeletionPolicy::Delete).await.expect("deprovisioning twice is fine");

    p.deprovision(&kept, DeletionPolicy::Delete).await?;
    drop(p);
    svc.drop_database().await
}

#[tokio::test]
async fn provision_cli_reads_a_workspace_manifest() -> anyhow::Result<()> {
    let svc = Services::from_env();
    let name = unique_workspace("cli");
    let dir = std::env::temp_dir().join(format!("palaver-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let good = dir.join("ws.yaml");
    std::fs::write(
        &good,
        format!(
            "apiVersion: palaver.dev/v1alpha1\nkind: Workspace\nmetadata: {{ name: {name} }}\nspec:\n  clusterRef: main\n  partitions: 2\n  defaultChannels: [general, random]\n  files: {{ maxBytes: 1048576, allowedTypes: [image/png] }}\n"
        ),
    )?;
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: palaver.dev/v1alpha1\nkind: Workspace\nmetadata: { name: Bad_Name }\nspec: { clusterRef: main }\n")?;
    let bin = palaver_e2e::procs::operator_bin();
    let run = |file: &std::path::Path| {
        std::process::Command::new(&bin)
            .args(["provision", "-f"])
            .arg(file)
            .env("PALAVER_DATABASE_URL", &svc.database_url)
            .env("PALAVER_KAFKA_BROKERS", &svc.kafka_brokers)
            .env("PALAVER_LOG_FORMAT", "text")
            .output()
    };
    let out = run(&good)?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("workspace {name} ready")));
    let p = Provisioner::connect(&svc.database_url, &svc.kafka_brokers).await?;
    assert!(registered(p.pool(), &name).await);
    assert_eq!(recorded_files(&p, &name).await?, (Some(1_048_576), None, Some(vec!["image/png".to_string()])), "spec.files too");

    let out = run(&bad)?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid workspace name") && err.contains("bad.yaml"), "{err}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
