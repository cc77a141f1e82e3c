//! `palaverd`: serve the data plane, rebuild a workspace's search index, or mint a development
//! token.

use std::time::Duration;

use clap::{Parser, Subcommand};
use palaver_crds::WorkspaceName;
use palaver_dataplane::config::{AuthConfig, Config};

#[derive(Parser)]
#[command(version, about = "Palaver data plane: WebSocket/REST gateway and fan-out")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (all settings also come from PALAVER_* environment variables).
    Serve(Box<Config>),
    /// Print an HS256 token signed with PALAVER_DEV_JWT_SECRET (development only).
    Token {
        #[arg(long)]
        workspace: WorkspaceName,
        #[arg(long)]
        user: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
        #[command(flatten)]
        auth: AuthConfig,
    },
    /// Rebuild a workspace's search index from its stored messages (e.g. after restoring a
    /// backup); safe while the pods run, whose indexers keep writing only newer states.
    Reindex {
        #[arg(long)]
        workspace: WorkspaceName,
        #[arg(long, env = "PALAVER_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/palaver")]
        database_url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(cfg) => {
            palaver_dataplane::telemetry::init();
            palaver_dataplane::server::run(*cfg, tokio_util::sync::CancellationToken::new()).await
        }
        Command::Token { workspace, user, ttl_secs, auth } => {
            if auth.dev_secret().is_none() {
                anyhow::bail!("PALAVER_DEV_JWT_SECRET is not set: dev tokens can only be minted with a development secret");
            }
            let token = palaver_dataplane::auth::mint_dev_token(&auth, &workspace, &user, Duration::from_secs(ttl_secs))?;
            println!("{token}");
            Ok(())
        }
        Command::Reindex { workspace, database_url } => {
            let store = palaver_dataplane::store::Store::connect(&database_url, 1).await?;
            let started = std::time::Instant::now();
            let n = store.reindex(&workspace).await?;
            println!("reindexed {n} messages of {workspace} in {:.1?}", started.elapsed());
            Ok(())
        }
    }
}
