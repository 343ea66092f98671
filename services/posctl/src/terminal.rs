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
        /// City the terminal stands in; the merchant's city when omitted.
        #[arg(long, default_value = "")]
        city: String,
        /// Street address the terminal stands at.
        #[arg(long, default_value = "")]
        address: String,
        /// WGS-84 latitude in degrees, -90 to 90 (with --longitude).
        #[arg(long, requires = "longitude", allow_negative_numbers = true, value_parser = latitude)]
        latitude: Option<f64>,
        /// WGS-84 longitude in degrees, -180 to 180 (with --latitude).
        #[arg(long, requires = "latitude", allow_negative_numbers = true, value_parser = longitude)]
        longitude: Option<f64>,
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

/// Parses a WGS-84 latitude: degrees from -90 to 90.
fn latitude(text: &str) -> Result<f64, String> {
    degrees(text, 90.0)
}

/// Parses a WGS-84 longitude: degrees from -180 to 180.
fn longitude(text: &str) -> Result<f64, String> {
    degrees(text, 180.0)
}

/// Parses decimal degrees within ±`limit` (NaN and infinities are out of range).
fn degrees(text: &str, limit: f64) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of decimal degrees (e.g. 31.1880)"))?;
    if !(-limit..=limit).contains(&value) {
        return Err(format!(
            "must be between -{limit} and {limit} degrees (WGS-84), got {text}"
        ));
    }
    Ok(value)
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
            address,
            latitude,
            longitude,
        } => {
            let terminal = api
                .register_terminal(pb::RegisterTerminalRequest {
                    merchant_id: merchant,
                    terminal_id,
                    serial_number: serial,
                    model,
                    location: Some(pb::TerminalLocation {
                        city,
                        address,
                        latitude,
                        longitude,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: TerminalCommand,
    }

    fn register(extra: &[&str]) -> Result<TerminalCommand, clap::Error> {
        let args = [
            "posctl",
            "register",
            "--merchant",
            "898310048990001",
            "--serial",
            "SN-0001",
        ];
        Cli::try_parse_from(args.iter().chain(extra)).map(|cli| cli.command)
    }

    #[test]
    fn a_terminal_may_be_registered_with_its_position_and_address() {
        let command = register(&[
            "--latitude",
            "-31.1880",
            "--longitude",
            "121.4365",
            "--address",
            "漕溪北路88号",
        ])
        .unwrap();
        let TerminalCommand::Register {
            latitude,
            longitude,
            address,
            ..
        } = command
        else {
            panic!("expected register, got {command:?}");
        };
        assert_eq!(latitude, Some(-31.188));
        assert_eq!(longitude, Some(121.4365));
        assert_eq!(address, "漕溪北路88号");
        let TerminalCommand::Register {
            latitude,
            longitude,
            ..
        } = register(&[]).unwrap()
        else {
            panic!("expected register");
        };
        assert_eq!((latitude, longitude), (None, None));
    }

    #[test]
    fn positions_out_of_range_or_half_given_are_refused() {
        let err = register(&["--latitude", "91", "--longitude", "121"]).unwrap_err();
        assert!(
            err.to_string().contains("between -90 and 90 degrees"),
            "{err}"
        );
        let err = register(&["--latitude", "31", "--longitude", "-180.5"]).unwrap_err();
        assert!(
            err.to_string().contains("between -180 and 180 degrees"),
            "{err}"
        );
        let err = register(&["--latitude", "NaN", "--longitude", "121"]).unwrap_err();
        assert!(err.to_string().contains("between -90 and 90"), "{err}");
        let err = register(&["--latitude", "north", "--longitude", "121"]).unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");
        let err = register(&["--latitude", "31.2"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(err.to_string().contains("--longitude"), "{err}");
        let err = register(&["--longitude", "121.4"]).unwrap_err();
        assert!(err.to_string().contains("--latitude"), "{err}");
    }
}
