//! `pos-bench`: the load client of `cargo xtask bench` (DESIGN.md §9), printing throughput and
//! latency percentiles. It drives a running service as its real caller does and reads the
//! service's own latency histogram from its `/metrics` before and after the measured run.
//!
//! Layout: `fraud` (the `FraudCheck.Assess` workload and its report), `stats` (client-side
//! percentiles and number formats), `histogram` (scraping a Prometheus histogram and
//! estimating its quantiles).

mod fraud;
mod histogram;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pos_domain::TokenKey;

#[derive(Debug, Parser)]
#[command(
    name = "pos-bench",
    version,
    about = "Benchmark the platform's services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// FraudCheck.Assess: chip purchases as authorization sends them, ~5% hitting a rule.
    Fraud(FraudArgs),
}

#[derive(Debug, clap::Args)]
struct FraudArgs {
    /// fraud-check's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:7005")]
    url: String,
    /// fraud-check's metrics address (its `POS_FRAUD_METRICS`), for the in-service latency.
    #[arg(long)]
    metrics: Option<String>,
    /// Measured requests.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    requests: u64,
    /// Requests in flight at once (tasks sharing one channel).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=4096))]
    concurrency: u16,
    /// Requests before the measured run, not counted.
    #[arg(long, default_value_t = 500)]
    warmup: u64,
    /// Requests per terminal over the run (the shipped rules alert above 60 in 10 minutes).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=60))]
    per_terminal: u64,
    /// Requests per merchant over the run (the shipped rules alert above 1000 in an hour).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    per_merchant: u64,
    /// The platform's card token key (64 hex characters), as fraud-check reads it.
    #[arg(long, env = "POS_TOKEN_KEY_FILE")]
    token_key_file: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Fraud(args) => fraud(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pos-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn fraud(args: FraudArgs) -> anyhow::Result<()> {
    let key = tokio::fs::read_to_string(&args.token_key_file)
        .await
        .with_context(|| format!("reading {}", args.token_key_file.display()))?;
    let tokens = TokenKey::from_hex(key.trim())
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.token_key_file.display()))?;
    let plan = fraud::Plan {
        url: args.url,
        metrics: args.metrics,
        requests: args.requests,
        concurrency: usize::from(args.concurrency),
        warmup: args.warmup,
        per_terminal: args.per_terminal,
        per_merchant: args.per_merchant,
    };
    fraud::run(plan, tokens).await
}
