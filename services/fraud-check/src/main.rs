//! `fraud-check`: fraud detection for the authorization path (`FraudCheck` gRPC API). `Assess`
//! answers with a decision, a score and every reason, from the rules file in force and what
//! Redis knows around the transaction (one round trip); it learns after the fact from the
//! topics (declines in a row, daily volume, merchants' trading hours and settlement cards,
//! terminal locations); blacklists and alerts are managed by operators (`posctl blacklist`,
//! `posctl fraud alerts`, role `risk`) and recorded on `pos.fraud.v1`.
//!
//! Layout: `config`, `app` (wiring), `grpc` (the tonic adapter and operator checks),
//! `service` (the flows), `rules` (the rules file), `assess` (pure: the rules themselves),
//! `signals` (the Redis round trip, `observe.lua`), `lists` (blacklist and alerts in Redis),
//! `project` (the follower and rebuild), `reload` (rules in force and their reload),
//! `metrics`.

mod app;
mod assess;
mod config;
mod grpc;
mod lists;
mod metrics;
mod project;
mod reload;
mod rules;
mod service;
mod signals;

use clap::Parser;
use pos_telemetry::TelemetryConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = config::Config::parse();
    config.validate()?;
    let telemetry = pos_telemetry::init(&TelemetryConfig::from_env("fraud-check")?)?;
    let result = app::run(config, pos_telemetry::shutdown_signal()).await;
    if let Err(error) = &result {
        tracing::error!(error = %format!("{error:#}"), "fraud-check stopped");
    }
    telemetry.shutdown();
    result
}
