//! `palaver-bench`: load and correctness benchmark against running palaverd pods
//! (see docs/benchmarks.md for the standard scenario).

use clap::Parser;
use palaver_e2e::bench::{self, BenchOpts};

#[derive(Parser)]
#[command(version, about = "Palaver load generator: throughput, latency, loss, duplicates, reordering")]
struct Cli {
    #[command(flatten)]
    opts: BenchOpts,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = bench::run(&cli.opts).await?;
    println!("{}", serde_json::to_string(&report)?);
    eprintln!("{}", report.summary());
    if !report.ok() {
        eprintln!("FAIL: lost, reordered or refused messages");
        std::process::exit(1);
    }
    Ok(())
}
