//! `palaverd`: serve the data plane, or mint a development token.

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(cfg) => {
            palaver_dataplane::telemetry::init();
            palaver_dataplane::server::run(*cfg, tokio_util::sync::CancellationToken::new()).await
        }
        Command::Token { workspace, user, ttl_secs, auth } => {
            if auth.dev_jwt_secret.is_none() {
                anyhow::bail!("PALAVER_DEV_JWT_SECRET is not set: dev tokens can only be minted with a development secret");
            }
            let token = palaver_dataplane::auth::mint_dev_token(&auth, &workspace, &user, Duration::from_secs(ttl_secs))?;
            println!("{token}");
            Ok(())
        }
    }
}
