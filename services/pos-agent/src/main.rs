//! `pos-agent`: the POS terminal (DESIGN.md §2). Each command is what the cashier does on a
//! real terminal: activate the device once, sign in (签到) for fresh working keys, log an
//! operator in, take payments, void and refund them, settle the batch (结算). The terminal's
//! keys live in its data directory (owner-only), beside its journal of pending reversals (冲正)
//! and of the batch's transactions.

mod answer;
mod card;
mod commands;
mod device;
mod emv;
mod journal;
mod link;
mod original;
mod receipt;
mod reversal;
mod sale;
mod settlement;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pos-agent",
    version,
    about = "A POS terminal for the acquiring platform",
    after_help = "A purchase, pre-auth, completion, pre-auth void or void that gets no valid answer \
                  is reversed (冲正): its reversal is written to the journal (DATA_DIR/journal.redb) \
                  before the request goes out and is sent until the host acknowledges it, right \
                  after sign-in, before the next transaction, or with `pos-agent reverse`.\n\n\
                  Settlement (结算, `pos-agent settle [--list]`) sends the pending reversals first, \
                  then the batch totals; when the host's totals differ, every transaction that \
                  counts in them is uploaded; then the host closes the batch, the terminal moves \
                  to the next batch number and saves the settlement slip (结算单) with the \
                  receipts (DATA_DIR/receipts). If anything is refused the batch stays open: \
                  run `pos-agent settle` again."
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
    /// Seconds to wait for each answer of the host; a financial request unanswered by then is
    /// reversed.
    #[arg(
        long,
        global = true,
        env = "POS_AGENT_ANSWER_TIMEOUT_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    answer_timeout_secs: u64,
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
    /// Void 撤销 of a purchase or completion of the current batch, by STAN or RRN.
    Void(VoidArgs),
    /// Refund 退货 of an earlier purchase by its RRN and date (partial amounts allowed).
    Refund(RefundArgs),
    /// Send every pending reversal (冲正) now; fails while any remains.
    Reverse,
    /// Print the pending reversals and the current batch's transactions with its totals.
    Journal,
    /// Settlement 结算 of the open batch: totals to the host, batch upload when they differ,
    /// then the batch is closed and the next one opens.
    Settle {
        /// Also print the batch's transaction list (明细) before the summary.
        #[arg(long)]
        list: bool,
    },
    /// Supervisor (operator 00) unlocks a locked cashier.
    Unlock {
        #[arg(long)]
        operator: String,
        #[arg(long)]
        supervisor_password: String,
    },
}

/// The original of a void, the card when presented, the supervisor's password.
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("original").required(true).args(["stan", "rrn"])))]
struct VoidArgs {
    /// STAN (原凭证号) of the original in the current batch.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=999_999))]
    stan: Option<u32>,
    /// RRN (参考号) of the original.
    #[arg(long)]
    rrn: Option<String>,
    /// The original's amount (yuan with fen), required when the journal does not have it.
    #[arg(long)]
    amount: Option<String>,
    /// The original's card (file or PAN[/YYMM[/SERVICE_CODE]]), when it is presented.
    #[arg(long)]
    card: Option<String>,
    /// How the card is read: swipe, chip, tap or fallback.
    #[arg(long, default_value = "chip")]
    entry: String,
    /// The cardholder's PIN (needs --card).
    #[arg(long)]
    pin: Option<String>,
    /// The supervisor's password, when the host requires the supervisor for voids.
    #[arg(long)]
    supervisor_password: Option<String>,
}

/// The original of a refund, the amount, the card, the supervisor's password.
#[derive(Debug, clap::Args)]
struct RefundArgs {
    /// RRN (参考号) of the original purchase.
    #[arg(long)]
    rrn: String,
    /// Date of the original purchase: MMDD (this year, or last year when still to come) or
    /// YYYY-MM-DD.
    #[arg(long)]
    date: String,
    /// Amount to refund, yuan with fen; at most what remains of the original.
    #[arg(long)]
    amount: String,
    #[command(flatten)]
    card: CardArgs,
    /// The supervisor's password, when the host requires the supervisor for refunds.
    #[arg(long)]
    supervisor_password: Option<String>,
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
    /// The last four digits printed on the card, as the cashier keys them when checking the
    /// number the terminal shows against the card (核对卡号). The host declines a card whose
    /// face and chip or stripe disagree. Omitted: the cashier confirmed the number shown.
    #[arg(long, value_name = "DIGITS")]
    card_face_last4: Option<String>,
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
    /// The pre-authorization's date, MMDD or YYYY-MM-DD (default today).
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
        face_last4: card.card_face_last4.as_deref(),
        original: original.map(|o| (o.auth_code.as_str(), o.date.as_deref())),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        let dir = device::DataDir::open(&cli.data_dir)?;
        let terminal = commands::Terminal::new(
            dir,
            cli.gateway.clone(),
            cli.ca.clone(),
            Duration::from_secs(cli.answer_timeout_secs),
        );
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
            Command::Void(args) => {
                let by = match (args.stan, args.rrn.as_deref()) {
                    (Some(stan), _) => original::VoidBy::Stan(stan),
                    (None, Some(rrn)) => original::VoidBy::Rrn(rrn.trim().to_owned()),
                    (None, None) => anyhow::bail!("name the original: --stan N or --rrn R"),
                };
                terminal
                    .void(commands::Void {
                        by,
                        amount: args.amount.as_deref(),
                        card: args.card.as_deref(),
                        entry: &args.entry,
                        pin: args.pin.as_deref(),
                        supervisor_password: args.supervisor_password.as_deref(),
                    })
                    .await
            }
            Command::Refund(args) => {
                terminal
                    .refund(commands::Refund {
                        rrn: args.rrn.trim(),
                        date: &args.date,
                        amount: &args.amount,
                        card: &args.card.card,
                        entry: &args.card.entry,
                        pin: args.card.pin.as_deref(),
                        supervisor_password: args.supervisor_password.as_deref(),
                    })
                    .await
            }
            Command::Reverse => terminal.reverse().await,
            Command::Journal => terminal.show_journal(),
            Command::Settle { list } => terminal.settle(list).await,
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
