//! `palaver-bench`: load and correctness benchmarks against running palaverd pods
//! (see docs/benchmarks.md for the scenarios and their standard command lines).
//! Without a subcommand it runs the send scenario, so `palaver-bench --rate 1000` still works.

use clap::{Parser, Subcommand};
use palaver_e2e::bench::presence::{self, PresenceOpts};
use palaver_e2e::bench::reads::{self, ReadsOpts};
use palaver_e2e::bench::search::{self, SearchOpts};
use palaver_e2e::bench::{self, BenchOpts};

#[derive(Parser)]
#[command(version, about = "Palaver load generator: throughput, latency, loss, duplicates, reordering")]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Cli {
    #[command(subcommand)]
    scenario: Option<Scenario>,
    #[command(flatten)]
    send: BenchOpts,
}

#[derive(Subcommand)]
enum Scenario {
    /// Open-loop sends (optionally with replies, reactions and edits), checked for loss and order.
    Send(BenchOpts),
    /// Latency of a rendered history page and of a long thread.
    Reads(ReadsOpts),
    /// Presence of many users following each other: frames and Redis operations per second.
    Presence(PresenceOpts),
    /// Search latency over a large seeded index, per query kind.
    Search(SearchOpts),
}

fn fail(what: &str) -> ! {
    eprintln!("FAIL: {what}");
    std::process::exit(1)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.scenario {
        None => send(&cli.send).await,
        Some(Scenario::Send(o)) => send(&o).await,
        Some(Scenario::Reads(o)) => {
            let report = reads::run(&o).await?;
            println!("{}", serde_json::to_string(&report)?);
            eprintln!("{}", report.summary());
            Ok(())
        }
        Some(Scenario::Search(o)) => {
            let report = search::run(&o).await?;
            println!("{}", serde_json::to_string(&report)?);
            eprintln!("{}", report.summary());
            Ok(())
        }
        Some(Scenario::Presence(o)) => {
            let report = presence::run(&o).await?;
            println!("{}", serde_json::to_string(&report)?);
            eprintln!("{}", report.summary());
            if !report.ok() {
                fail("presence frames missing or unexpected, or connections closed");
            }
            Ok(())
        }
    }
}

async fn send(o: &BenchOpts) -> anyhow::Result<()> {
    let report = bench::run(o).await?;
    println!("{}", serde_json::to_string(&report)?);
    eprintln!("{}", report.summary());
    if !report.ok() {
        fail("lost, reordered or refused operations");
    }
    Ok(())
}
