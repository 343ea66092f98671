//! `authorization`: the synchronous authorization path behind terminal-gateway
//! (`Authorization.Authorize`): validation, fraud-check, PIN translation, the issuer, and the
//! transaction's events on `pos.transactions.v1` before any answer.
//!
//! Layout: `config` (settings), `app` (wiring and start-up), `grpc` (the tonic adapter),
//! `service` (the flow, with `checks`, `calls` and `record` for its steps), `model` (the
//! request), `rules` (pure validation and policies), `emv` and `tlv` (field 55), `idempotency`
//! (terminal id + batch + STAN), `clients` (issuer and fraud-check calls), `decision` (event,
//! answer and record of a decision; its record is `pos_facts::txn`), `rebuild` (records and
//! answers from the topic after a flush), `holds` (pre-authorization holds after reversals),
//! `clock`, `metrics`, `error` (one mapping to gRPC codes).

mod app;
mod clients;
mod clock;
mod config;
mod decision;
mod emv;
mod error;
mod grpc;
mod holds;
mod idempotency;
mod metrics;
mod model;
mod rebuild;
mod rules;
mod service;
mod tlv;

use clap::Parser;
use pos_telemetry::TelemetryConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = config::Config::parse();
    config.validate()?;
    let telemetry = pos_telemetry::init(&TelemetryConfig::from_env("authorization")?)?;
    let result = app::run(config, pos_telemetry::shutdown_signal()).await;
    if let Err(error) = &result {
        tracing::error!(error = %format!("{error:#}"), "authorization stopped");
    }
    telemetry.shutdown();
    result
}
