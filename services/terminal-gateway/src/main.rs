//! `terminal-gateway`: terminals connect here (TerminalGateway: activation and the `Connect`
//! stream), operators manage merchants and terminals here (TerminalManagement).
//!
//! Layout: `config` (settings), `app` (wiring and start-up: topics, projections, HSM, keys),
//! `management` (the operators' API), `activation` and `connect` (the terminals' API), `repo`
//! (aggregates over Kafka and Redis), `hot` (sessions and fleet state), `auth` (operator
//! credentials), `metrics`, `error` (one mapping of errors to gRPC codes).

mod activation;
mod app;
mod auth;
mod config;
mod connect;
mod error;
mod history;
mod hot;
mod management;
mod metrics;
mod repo;
mod secrets;
mod settle;
mod steps;
mod transactions;
mod views;

use clap::Parser;
use pos_telemetry::TelemetryConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = config::Config::parse();
    config.validate()?;
    let telemetry = pos_telemetry::init(&TelemetryConfig::from_env("terminal-gateway")?)?;
    let result = app::run(config, pos_telemetry::shutdown_signal()).await;
    if let Err(error) = &result {
        tracing::error!(error = %format!("{error:#}"), "terminal-gateway stopped");
    }
    telemetry.shutdown();
    result
}
