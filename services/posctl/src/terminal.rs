//! `posctl terminal …` and `posctl operator …`

use clap::Subcommand;
use pos_proto::v1 as pb;

use crate::client::Connection;
use crate::print;

#[derive(Debug, Subcommand)]
pub enum TerminalCommand {
    /// Register a terminal for an approved merchant (a terminal master key is generated).
    Register {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        serial: String,
        /// 8-character terminal id; generated when omitted.
        #[arg(long, default_value = "")]
        terminal_id: String,
        #[arg(long, default_value = "")]
        model: String,
        #[arg(long, default_value = "")]
        city: String,
    },
    /// Issue a one-time activation code for `pos-agent activate`.
    ActivationCode {
        terminal_id: String,
        /// Lifetime in seconds (0 = the gateway's default).
        #[arg(long, default_value_t = 0)]
        ttl: u32,
    },
    /// Show a terminal and its fleet state (connected, last seen, version, batch).
    Show { terminal_id: String },
    /// List a merchant's terminals.
    List {
        #[arg(long, default_value = "")]
        merchant: String,
    },
    /// Suspend a terminal: it can no longer sign in or transact.
    Suspend {
        terminal_id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// List a terminal's operators.
    List { terminal_id: String },
    /// Unlock an operator locked after too many wrong passwords.
    Unlock {
        terminal_id: String,
        operator_no: String,
        #[arg(long)]
        reason: String,
    },
}

/// Runs one `posctl terminal` command.
pub async fn run(connection: &Connection, command: TerminalCommand) -> anyhow::Result<()> {
    let mut api = connection.management().await?;
    match command {
        TerminalCommand::Register {
            merchant,
            serial,
            terminal_id,
            model,
            city,
        } => {
            let terminal = api
                .register_terminal(pb::RegisterTerminalRequest {
                    merchant_id: merchant,
                    terminal_id,
                    serial_number: serial,
                    model,
                    location: Some(pb::TerminalLocation {
                        city,
                        ..pb::TerminalLocation::default()
                    }),
                })
                .await?
                .into_inner()
                .terminal;
            print::terminal(terminal.as_ref(), None);
        }
        TerminalCommand::ActivationCode { terminal_id, ttl } => {
            let code = api
                .issue_activation_code(pb::IssueActivationCodeRequest {
                    terminal_id,
                    ttl_seconds: ttl,
                })
                .await?
                .into_inner();
            print::activation_code(&code);
        }
        TerminalCommand::Show { terminal_id } => {
            let answer = api
                .get_terminal(pb::GetTerminalRequest { terminal_id })
                .await?
                .into_inner();
            print::terminal(answer.terminal.as_ref(), answer.status.as_ref());
        }
        TerminalCommand::List { merchant } => {
            let list = api
                .list_terminals(pb::ListTerminalsRequest {
                    merchant_id: merchant,
                    ..pb::ListTerminalsRequest::default()
                })
                .await?
                .into_inner();
            for terminal in &list.terminals {
                print::terminal_line(terminal);
            }
        }
        TerminalCommand::Suspend {
            terminal_id,
            reason,
        } => {
            let terminal = api
                .suspend_terminal(pb::SuspendTerminalRequest {
                    terminal_id,
                    reason,
                })
                .await?
                .into_inner()
                .terminal;
            print::terminal(terminal.as_ref(), None);
        }
    }
    Ok(())
}

/// Runs one `posctl operator` command.
pub async fn run_operator(connection: &Connection, command: OperatorCommand) -> anyhow::Result<()> {
    let mut api = connection.management().await?;
    match command {
        OperatorCommand::List { terminal_id } => {
            let list = api
                .list_operators(pb::ListOperatorsRequest { terminal_id })
                .await?
                .into_inner();
            for operator in &list.operators {
                print::operator(operator);
            }
        }
        OperatorCommand::Unlock {
            terminal_id,
            operator_no,
            reason,
        } => {
            let answer = api
                .unlock_operator(pb::UnlockOperatorRequest {
                    operator: Some(pb::OperatorRef {
                        terminal_id,
                        operator_no,
                    }),
                    reason,
                })
                .await?
                .into_inner();
            if let Some(operator) = &answer.operator {
                print::operator(operator);
            }
        }
    }
    Ok(())
}
