//! `palaver-operator`: the Kubernetes operator (`run`), the CRD generator (`crdgen`) and the
//! Kubernetes-free provisioning path local development uses (`provision`).

use anyhow::Context;
use clap::{Parser, Subcommand};
use palaver_crds::resources::Workspace;
use palaver_crds::WorkspaceName;
use std::time::Duration;

use palaver_operator::controller::Settings;
use palaver_operator::provision::{Provisioner, WorkspacePlan};
use palaver_operator::{leader, operator};

#[derive(Parser)]
#[command(version, about = "Palaver operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers (leader-elected) with /metrics, /healthz and /readyz.
    Run {
        /// Address of the metrics and health server.
        #[arg(long, env = "PALAVER_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
        listen: std::net::SocketAddr,
        /// Name of the leader-election Lease, in the operator's namespace.
        #[arg(long, env = "PALAVER_OPERATOR_LEASE", default_value = "palaver-operator")]
        lease: String,
        /// The operator's namespace (downward API), where the Lease lives.
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        pod_namespace: String,
        /// This replica's identity in the Lease (downward API); defaults to the host name.
        #[arg(long, env = "POD_NAME")]
        pod_name: Option<String>,
        /// Watch only this namespace (default: all).
        #[arg(long, env = "PALAVER_OPERATOR_NAMESPACE")]
        namespace: Option<String>,
    },
    /// Print the CustomResourceDefinitions (or write one file per CRD into --out).
    Crdgen {
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Provision a workspace (schema, migrations, topics, registry row) without Kubernetes, from
    /// a Workspace manifest (-f) or from flags.
    Provision {
        /// A Workspace manifest (YAML); its metadata.name is the workspace name.
        #[arg(short = 'f', long = "file", conflicts_with_all = ["name", "display_name", "partitions", "default_channels", "retention_hours"])]
        file: Option<std::path::PathBuf>,
        /// Workspace name: 2-41 of a-z, 0-9, '-', starting with a letter.
        #[arg(long, required_unless_present = "file")]
        name: Option<WorkspaceName>,
        #[arg(long)]
        display_name: Option<String>,
        /// Partitions of the events topic.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Comma-separated public channels every user joins on first sight.
        #[arg(long, value_delimiter = ',', default_value = "general")]
        default_channels: Vec<String>,
        /// Kafka retention of the events topic, hours (broker default when unset).
        #[arg(long)]
        retention_hours: Option<i64>,
        #[arg(long, env = "PALAVER_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/palaver")]
        database_url: String,
        #[arg(long, env = "PALAVER_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
        kafka_brokers: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    palaver_operator::telemetry::init();
    match Cli::parse().command {
        Command::Run { listen, lease, pod_namespace, pod_name, namespace } => {
            let identity =
                pod_name.or_else(|| std::env::var("HOSTNAME").ok()).unwrap_or_else(|| format!("palaver-operator-{}", std::process::id()));
            let client = kube::Client::try_default().await.context("Kubernetes client configuration (in-cluster or kubeconfig)")?;
            let lease = leader::Settings {
                name: lease,
                namespace: pod_namespace,
                identity,
                lease_duration: Duration::from_secs(15),
                retry: Duration::from_secs(4),
            };
            operator::run(client, operator::Options { listen, lease, namespace, settings: Settings::default() }, shutdown_signal()).await?;
        }
        Command::Crdgen { out } => {
            for (file, yaml) in palaver_crds::resources::manifests() {
                match &out {
                    Some(dir) => std::fs::write(dir.join(&file), yaml).with_context(|| format!("writing {file}"))?,
                    None => print!("---\n{yaml}"),
                }
            }
        }
        Command::Provision { file, name, display_name, partitions, default_channels, retention_hours, database_url, kafka_brokers } => {
            let plan = match (file, name) {
                (Some(path), _) => {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    let ws: Workspace =
                        serde_yaml::from_str(&text).with_context(|| format!("{}: not a Workspace manifest", path.display()))?;
                    WorkspacePlan::from_resource(&ws).with_context(|| format!("{}", path.display()))?
                }
                (None, Some(name)) => WorkspacePlan {
                    display_name: display_name.unwrap_or_else(|| name.to_string()),
                    name,
                    partitions,
                    default_channels,
                    retention_hours,
                    files: Default::default(),
                },
                (None, None) => unreachable!("clap requires --name without -f"),
            };
            let p = Provisioner::connect(&database_url, &kafka_brokers).await.context("connecting to Postgres / Kafka")?;
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

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
