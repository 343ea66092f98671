//! `settlement`: terminal batch settlement 结算 (`Settlement` gRPC API): the host's batch
//! totals from `pos.transactions.v1`, the comparison with the terminal's (0500), line-by-line
//! reconciliation of uploaded records (0320) and the close that hands out the next batch.
//!
//! Layout: `config`, `app` (wiring), `grpc` (the tonic adapter), `service` (the flows),
//! `lines` (pure: batch lines, totals, reconciliation), `store` (Redis), `follow` (the
//! projection: consumer and rebuild), `error`. Merchant settlement per business day:
//! `merchant` (runs, adjustments, reads; its projection is hooked into `follow`), `fees`
//! (pure fee arithmetic), `day` (which dates are closed). Operators and their audit are
//! `pos_auth::OperatorGate`'s.

mod app;
mod config;
mod day;
mod error;
mod fees;
mod follow;
mod grpc;
mod lines;
mod merchant;
mod service;
mod store;

use clap::Parser;
use pos_telemetry::TelemetryConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = config::Config::parse();
    config.validate()?;
    let telemetry = pos_telemetry::init(&TelemetryConfig::from_env("settlement")?)?;
    let result = app::run(config, pos_telemetry::shutdown_signal()).await;
    if let Err(error) = &result {
        tracing::error!(error = %format!("{error:#}"), "settlement stopped");
    }
    telemetry.shutdown();
    result
}
