//! `palaver-operator`: the Kubernetes operator binary. For now it offers the provisioning path
//! used by local development; the controllers arrive with the operator issue.

use anyhow::Context;
use clap::{Parser, Subcommand};
use palaver_crds::WorkspaceName;
use palaver_operator::provision::{Provisioner, WorkspacePlan};

#[derive(Parser)]
#[command(version, about = "Palaver operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (or write one file per CRD into --out).
    Crdgen {
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Provision a workspace (schema, migrations, topics, registry row) without Kubernetes.
    Provision {
        /// Workspace name: 2-41 of a-z, 0-9, '-', starting with a letter.
        #[arg(long)]
        name: WorkspaceName,
        #[arg(long)]
        display_name: Option<String>,
        /// Partitions of the events topic.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Comma-separated public channels every user joins on first sight.
        #[arg(long, value_delimiter = ',', default_value = "general")]
        default_channels: Vec<String>,
        #[arg(long, env = "PALAVER_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/palaver")]
        database_url: String,
        #[arg(long, env = "PALAVER_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
        kafka_brokers: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match Cli::parse().command {
        Command::Crdgen { out } => {
            for (file, yaml) in palaver_crds::resources::manifests() {
                match &out {
                    Some(dir) => std::fs::write(dir.join(&file), yaml).with_context(|| format!("writing {file}"))?,
                    None => print!("---\n{yaml}"),
                }
            }
        }
        Command::Provision { name, display_name, partitions, default_channels, database_url, kafka_brokers } => {
            let p = Provisioner::connect(&database_url, &kafka_brokers).await.context("connecting to Postgres / Kafka")?;
            let plan = WorkspacePlan { display_name: display_name.unwrap_or_else(|| name.to_string()), name, partitions, default_channels };
            let report = p.provision(&plan).await.with_context(|| format!("provisioning workspace {}", plan.name))?;
            println!(
                "workspace {} ready: schema {}, migration {}, topics {} ({} partitions)",
                plan.name,
                report.schema,
                report.migration_version,
                report.topics.join(", "),
                report.partitions
            );
        }
    }
    Ok(())
}
