//! `issuer-sim`: the reference issuing bank. It implements the `Issuer` gRPC API
//! (`proto/pos/v1/issuer.proto`) that real banks implement for this acquirer: debit and credit
//! card accounts with balances and limits, PINs verified from PIN blocks under the zone PIN
//! key, PIN-try counters, expiry and card status, holds for pre-authorizations, approval codes
//! and RRNs, idempotent answers, reversals and refunds, and a ledger of every movement. The
//! books live in Redis under the bank's own key prefix.
//!
//! Commands: `issuer-sim [serve]` (the server), `issuer-sim account --pan PAN` (print a card's
//! account and ledger), `issuer-sim seed --file FILE` (load a seed file and exit).
//!
//! Layout: `config` (settings and command line), `app` (wiring and start-up), `grpc` (proto
//! to commands and back), `service` (the logic), `checks` (its pure decisions), `pin` (PIN
//! verification), `books` (Redis and the Lua scripts in `lua/`), `card` (the account), `seed`
//! (the seed file), `account` (the report), `clock` (business dates), `metrics`, `error`.

mod account;
mod app;
mod books;
mod card;
mod checks;
mod clock;
mod config;
mod error;
mod grpc;
mod metrics;
mod pin;
mod seed;
mod service;

use clap::Parser;
use pos_telemetry::TelemetryConfig;

use crate::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Account(args)) => app::account(args).await,
        Some(Command::Seed(args)) => {
            let telemetry = pos_telemetry::init(&TelemetryConfig::from_env("issuer-sim")?)?;
            let result = app::seed(args).await;
            telemetry.shutdown();
            result
        }
        Some(Command::Serve(args)) => serve(*args).await,
        None => serve(cli.serve).await,
    }
}

async fn serve(args: config::ServeArgs) -> anyhow::Result<()> {
    args.validate()?;
    let telemetry = pos_telemetry::init(&TelemetryConfig::from_env("issuer-sim")?)?;
    let result = app::run(args, pos_telemetry::shutdown_signal()).await;
    if let Err(error) = &result {
        tracing::error!(error = %format!("{error:#}"), "issuer-sim stopped");
    }
    telemetry.shutdown();
    result
}
