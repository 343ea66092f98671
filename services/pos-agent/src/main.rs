//! `pos-agent`: the POS terminal (DESIGN.md §2). Each command is what the cashier does on a
//! real terminal: activate the device once, sign in (签到) for fresh working keys, log an
//! operator in, and so on. The terminal's keys live in its data directory (owner-only).

mod commands;
mod device;
mod link;

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
    /// Supervisor (operator 00) unlocks a locked cashier.
    Unlock {
        #[arg(long)]
        operator: String,
        #[arg(long)]
        supervisor_password: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        let dir = device::DataDir::open(&cli.data_dir)?;
        let terminal = commands::Terminal::new(dir, cli.gateway.clone());
        match cli.command {
            Command::Activate { code, serial } => terminal.activate(&code, &serial).await,
            Command::SignIn => terminal.sign_in().await,
            Command::Login { operator, password } => terminal.login(&operator, &password).await,
            Command::Password { operator, old, new } => {
                terminal.change_password(&operator, &old, &new).await
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
