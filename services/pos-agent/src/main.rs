//! `pos-agent`: the POS terminal (DESIGN.md §2). Each command is what the cashier does on a
//! real terminal: activate the device once, sign in (签到) for fresh working keys, log an
//! operator in, and so on. The terminal's keys live in its data directory (owner-only).

mod card;
mod commands;
mod device;
mod emv;
mod link;
mod receipt;
mod sale;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pos-agent",
    version,
    about = "A POS terminal for the acquiring platform"
)]
struct Cli {
    /// The terminal's data directory (identity, keys, session).
    #[arg(
        long,
        global = true,
        env = "POS_AGENT_DIR",
        default_value = ".pos/agent"
    )]
    data_dir: PathBuf,
    /// The host (terminal gateway) address.
    #[arg(
        long,
        global = true,
        env = "POS_AGENT_GATEWAY",
        default_value = "http://127.0.0.1:7001"
    )]
    gateway: String,
    /// CA certificate (PEM) that signed the host's certificate, for an https:// host.
    #[arg(long, global = true, env = "POS_AGENT_CA")]
    ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bind this device to its terminal with a one-time activation code from the acquirer.
    Activate {
        #[arg(long)]
        code: String,
        /// The device serial number (as registered).
        #[arg(long)]
        serial: String,
    },
    /// Sign in (签到): fresh working keys and the batch number.
    SignIn,
    /// Log an operator in (operator 01, password 0000 on a new terminal).
    Login {
        #[arg(long, default_value = "01")]
        operator: String,
        #[arg(long)]
        password: String,
    },
    /// Change an operator's password.
    Password {
        #[arg(long, default_value = "01")]
        operator: String,
        #[arg(long)]
        old: String,
        #[arg(long)]
        new: String,
    },
    /// Purchase 消费: `--amount 50.00 --card FILE|PAN[/YYMM[/SC]] --entry swipe|chip|tap --pin PIN`.
    Purchase(SaleArgs),
    /// Balance inquiry 余额查询.
    Balance(CardArgs),
    /// Pre-authorization 预授权: places a hold.
    Preauth(SaleArgs),
    /// Pre-authorization completion 预授权完成: captures a hold.
    Complete(OriginalArgs),
    /// Pre-authorization void 预授权撤销: releases a hold.
    PreauthVoid(OriginalArgs),
    /// Supervisor (operator 00) unlocks a locked cashier.
    Unlock {
        #[arg(long)]
        operator: String,
        #[arg(long)]
        supervisor_password: String,
    },
}

/// The card and how it is read.
#[derive(Debug, clap::Args)]
struct CardArgs {
    /// A test-card file (JSON) or PAN[/YYMM[/SERVICE_CODE]].
    #[arg(long)]
    card: String,
    /// How the card is read: swipe, chip, tap (or fallback after a failed chip read).
    #[arg(long, default_value = "chip")]
    entry: String,
    /// The cardholder's PIN (omit when none is entered).
    #[arg(long)]
    pin: Option<String>,
}

/// An amount and a card.
#[derive(Debug, clap::Args)]
struct SaleArgs {
    /// Amount keyed in yuan with fen, e.g. 50.00.
    #[arg(long)]
    amount: String,
    #[command(flatten)]
    card: CardArgs,
}

/// A pre-authorization to complete or void.
#[derive(Debug, clap::Args)]
struct OriginalArgs {
    #[command(flatten)]
    sale: SaleArgs,
    /// The pre-authorization's approval code (授权码).
    #[arg(long)]
    auth_code: String,
    /// The pre-authorization's date, YYYY-MM-DD (default today).
    #[arg(long)]
    date: Option<String>,
}

fn transaction<'a>(
    kind: commands::Kind,
    amount: Option<&'a str>,
    card: &'a CardArgs,
    original: Option<&'a OriginalArgs>,
) -> commands::Transaction<'a> {
    commands::Transaction {
        kind,
        amount,
        card: &card.card,
        entry: &card.entry,
        pin: card.pin.as_deref(),
        original: original.map(|o| (o.auth_code.as_str(), o.date.as_deref())),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        let dir = device::DataDir::open(&cli.data_dir)?;
        let terminal = commands::Terminal::new(dir, cli.gateway.clone(), cli.ca.clone());
        match cli.command {
            Command::Activate { code, serial } => terminal.activate(&code, &serial).await,
            Command::SignIn => terminal.sign_in().await,
            Command::Login { operator, password } => terminal.login(&operator, &password).await,
            Command::Password { operator, old, new } => {
                terminal.change_password(&operator, &old, &new).await
            }
            Command::Purchase(args) => {
                let request = transaction(
                    commands::Kind::Purchase,
                    Some(&args.amount),
                    &args.card,
                    None,
                );
                terminal.transact(request).await
            }
            Command::Balance(args) => {
                terminal
                    .transact(transaction(commands::Kind::Balance, None, &args, None))
                    .await
            }
            Command::Preauth(args) => {
                let request = transaction(
                    commands::Kind::PreAuth,
                    Some(&args.amount),
                    &args.card,
                    None,
                );
                terminal.transact(request).await
            }
            Command::Complete(args) => {
                let request = transaction(
                    commands::Kind::Completion,
                    Some(&args.sale.amount),
                    &args.sale.card,
                    Some(&args),
                );
                terminal.transact(request).await
            }
            Command::PreauthVoid(args) => {
                let request = transaction(
                    commands::Kind::PreAuthVoid,
                    Some(&args.sale.amount),
                    &args.sale.card,
                    Some(&args),
                );
                terminal.transact(request).await
            }
            Command::Unlock {
                operator,
                supervisor_password,
            } => terminal.unlock(&operator, &supervisor_password).await,
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
