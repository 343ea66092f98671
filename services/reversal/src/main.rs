//! `reversal`: reversals 冲正 (terminal-initiated and host-initiated for approvals the gateway
//! could not deliver), voids 撤销 and refunds 退货 with their limits (`Reversal` gRPC API), and
//! a follower of `pos.transactions.v1` that undoes what no terminal received.
//!
//! Layout: `config` (settings), `app` (wiring), `grpc` (the tonic adapter), `service` (the
//! flows), `rules` (pure checks of voids and refunds), `facts` (event facts and answers),
//! `state` (this service's Redis state), `issuer` (the issuer calls), `follow` (the consumer
//! and the sweeper of unpublished decisions), `rebuild` (state from the topics after a flush),
//! `metrics`, `error`.

mod app;
mod config;
mod error;
mod facts;
mod follow;
mod grpc;
mod issuer;
mod metrics;
mod rebuild;
mod rules;
mod service;
mod state;

use clap::Parser;
use pos_telemetry::TelemetryConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = config::Config::parse();
    config.validate()?;
    let telemetry = pos_telemetry::init(&TelemetryConfig::from_env("reversal")?)?;
    let result = app::run(config, pos_telemetry::shutdown_signal()).await;
    if let Err(error) = &result {
        tracing::error!(error = %format!("{error:#}"), "reversal stopped");
    }
    telemetry.shutdown();
    result
}
