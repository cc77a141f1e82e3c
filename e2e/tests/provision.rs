//! The provisioning library against the real Postgres and broker: partition growth (never
//! shrink), deprovision with Retain and Delete, and `palaver-operator provision -f`.
//! Topic deletion runs on a private broker (tansu's delete_topics wipes every topic).

use std::time::Duration;

use palaver_crds::resources::DeletionPolicy;
use palaver_crds::WorkspaceName;
use palaver_e2e::operator::{registered, schema_exists};
use palaver_e2e::{unique_workspace, PrivateBroker, Services};
use palaver_operator::provision::{Provisioner, WorkspacePlan};

fn plan(name: &WorkspaceName, partitions: i32) -> WorkspacePlan {
    WorkspacePlan {
        name: name.clone(),
        display_name: name.to_string(),
        partitions,
        default_channels: vec!["general".into()],
        retention_hours: Some(24),
    }
}

#[tokio::test]
async fn partitions_grow_but_never_shrink() -> anyhow::Result<()> {
    let svc = Services::from_env();
    let p = Provisioner::connect(&svc.database_url, &svc.kafka_brokers).await?;
    let name = unique_workspace("grow");
    assert_eq!(p.provision(&plan(&name, 2)).await?.partitions, 2);
    match p.provision(&plan(&name, 4)).await {
        Ok(report) => {
            assert_eq!(report.partitions, 4, "growing adds partitions");
            assert_eq!(p.topics().partitions(&name.events_topic()).await?, 4);
        }
        // tansu 0.6.0 has no CreatePartitions: the error must say what failed, and nothing changes.
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("grow topic") && msg.contains("UnsupportedFeature"), "{msg}");
            assert_eq!(p.topics().partitions(&name.events_topic()).await?, 2);
        }
    }
    let have = p.topics().partitions(&name.events_topic()).await?;
    assert_eq!(p.provision(&plan(&name, 1)).await?.partitions, have, "a smaller plan keeps the partitions the topic has");
    let recorded: i32 = sqlx::query_scalar("SELECT partitions FROM palaver_control.workspaces WHERE name = $1")
        .bind(name.as_str())
        .fetch_one(p.pool())
        .await?;
    assert_eq!(recorded, have, "the registry records what the topic really has");

    // The retention applied at creation is not re-applied; a changed one is applied or, on a
    // broker without AlterConfigs (tansu), refused with an error that says what failed.
    let mut longer = plan(&name, have);
    longer.retention_hours = Some(48);
    if let Err(e) = p.provision(&longer).await {
        assert!(e.to_string().contains("set retention of"), "{e}");
    }
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
    let mut broker = PrivateBroker::start().await?;
    let p = Provisioner::connect(&svc.database_url, &broker.brokers()).await?;

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
    while p.topics().partitions(&gone.events_topic()).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "topic {} still exists", gone.events_topic());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.deprovision(&gone, DeletionPolicy::Delete).await.expect("deprovisioning twice is fine");

    drop(p);
    broker.stop().await;
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
            "apiVersion: palaver.dev/v1alpha1\nkind: Workspace\nmetadata: {{ name: {name} }}\nspec:\n  clusterRef: main\n  partitions: 2\n  defaultChannels: [general, random]\n"
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

    let out = run(&bad)?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid workspace name") && err.contains("bad.yaml"), "{err}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
