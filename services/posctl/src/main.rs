//! `posctl`: the operator's command line for the acquiring platform (DESIGN.md §9). Every call
//! authenticates with the operator's token and is recorded by the platform as an audit event.

mod blacklist;
mod client;
mod fraud;
mod merchant;
mod print;
mod settlement;
mod terminal;
mod txn;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use client::Connection;

#[derive(Debug, Parser)]
#[command(name = "posctl", version, about = "Operate the POS acquiring platform")]
struct Cli {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Onboard, approve, activate, suspend and show merchants.
    #[command(subcommand)]
    Merchant(merchant::MerchantCommand),
    /// Register terminals, issue activation codes, show terminals and their fleet state.
    #[command(subcommand)]
    Terminal(terminal::TerminalCommand),
    /// Terminal operators (cashiers): list and unlock.
    #[command(subcommand)]
    Operator(terminal::OperatorCommand),
    /// Transactions: show one with its whole history, list by merchant, terminal or date.
    #[command(subcommand)]
    Txn(txn::TxnCommand),
    /// Merchant settlement per business day: run, show, list (settlement service).
    Settlement(settlement::SettlementArgs),
    /// Blacklisted cards, BIN ranges, merchants and terminals: add, remove, list (fraud-check
    /// service, risk role).
    #[command(subcommand)]
    Blacklist(blacklist::BlacklistCommand),
    /// Fraud alerts: recent reviews, declines and rule hits (fraud-check service, risk role).
    #[command(subcommand)]
    Fraud(fraud::FraudCommand),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Merchant(cmd) => merchant::run(&cli.connection, cmd).await,
        Command::Terminal(cmd) => terminal::run(&cli.connection, cmd).await,
        Command::Operator(cmd) => terminal::run_operator(&cli.connection, cmd).await,
        Command::Txn(cmd) => txn::run(&cli.connection, cmd).await,
        Command::Settlement(args) => settlement::run(&cli.connection, args).await,
        Command::Blacklist(cmd) => blacklist::run(&cli.connection, cmd).await,
        Command::Fraud(cmd) => fraud::run(&cli.connection, cmd).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match error.downcast_ref::<tonic::Status>() {
                Some(status) => eprintln!("error: {} ({:?})", status.message(), status.code()),
                None => eprintln!("error: {error:#}"),
            }
            ExitCode::FAILURE
        }
    }
}
