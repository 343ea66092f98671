//! `posctl txn show|list`: a transaction's state and full history (approved, voided, refunded
//! 30.00 of 50.00, reversed, ...), and lists by merchant, terminal, batch or business date.
//!
//! Output is one `key: value` line per summary field, then `history:` and one line per step:
//!
//! ```text
//! status: PARTIALLY_REFUNDED  refunded 30.00 of 50.00 CNY
//! 2026-11-28 10:00:01  AuthorizationApproved  PURCHASE  50.00 CNY  00  rrn 123456789012
//! 2026-11-28 10:05:00  TransactionRefunded  REFUND  30.00 CNY  00  refunded 30.00 of 50.00
//! ```
//!
//! Times are China Standard Time, as on receipts.

use anyhow::{Context, bail};
use clap::{ArgGroup, Subcommand};
use pos_domain::time::ChinaTime;
use pos_domain::{BatchNo, Currency, Money, Stan, TerminalId};
use pos_proto::v1 as pb;
use pos_proto::v1::get_transaction_history_request::Lookup;

use crate::client::Connection;

#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// Show a transaction's state and every step of its history, by id, trace or RRN.
    #[command(group(ArgGroup::new("lookup").required(true).args(["id", "trace", "rrn"])))]
    Show {
        /// Host transaction id (or a void's or refund's id).
        #[arg(long)]
        id: Option<String>,
        /// Terminal, batch and STAN of the request: TERMINAL:BATCH:STAN, e.g. T0000001:1:42.
        #[arg(long)]
        trace: Option<String>,
        /// Retrieval reference number (with --date).
        #[arg(long, requires = "date")]
        rrn: Option<String>,
        /// Business date YYYY-MM-DD of the RRN.
        #[arg(long, requires = "rrn")]
        date: Option<String>,
    },
    /// List transactions, newest first.
    List {
        /// Only this merchant's.
        #[arg(long)]
        merchant: Option<String>,
        /// Only this terminal's.
        #[arg(long)]
        terminal: Option<String>,
        /// Only this batch of the terminal.
        #[arg(long, requires = "terminal")]
        batch: Option<u32>,
        /// Only this business date YYYY-MM-DD.
        #[arg(long)]
        date: Option<String>,
        /// Transactions per page (0 = the gateway's default, 50; at most 500).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Page token printed by the previous page.
        #[arg(long, default_value = "")]
        page_token: String,
        /// Fetch every page.
        #[arg(long)]
        all: bool,
    },
}

/// Runs one `posctl txn` command.
pub async fn run(connection: &Connection, command: TxnCommand) -> anyhow::Result<()> {
    match command {
        TxnCommand::Show {
            id,
            trace,
            rrn,
            date,
        } => {
            let lookup = lookup(id, trace.as_deref(), rrn, date)?;
            let mut api = connection.management().await?;
            let answer = api
                .get_transaction_history(pb::GetTransactionHistoryRequest {
                    lookup: Some(lookup),
                })
                .await?
                .into_inner();
            let summary = answer.transaction.unwrap_or_default();
            for line in summary_lines(&summary) {
                println!("{line}");
            }
            println!("history:");
            for entry in &answer.entries {
                println!("{}", entry_line(entry));
            }
        }
        TxnCommand::List {
            merchant,
            terminal,
            batch,
            date,
            limit,
            page_token,
            all,
        } => {
            let mut api = connection.management().await?;
            let mut request = pb::ListTransactionsRequest {
                merchant_id: merchant.unwrap_or_default(),
                terminal_id: terminal.unwrap_or_default(),
                batch_no: batch.unwrap_or(0),
                business_date: date.unwrap_or_default(),
                page: Some(pb::PageRequest {
                    page_size: limit,
                    page_token,
                }),
            };
            loop {
                let answer = api.list_transactions(request.clone()).await?.into_inner();
                for summary in &answer.transactions {
                    println!("{}", list_line(summary));
                }
                let next = answer.page.map(|p| p.next_page_token).unwrap_or_default();
                if next.is_empty() {
                    break;
                }
                if !all {
                    println!("next_page_token: {next}");
                    break;
                }
                if let Some(page) = request.page.as_mut() {
                    page.page_token = next;
                }
            }
        }
    }
    Ok(())
}

/// The lookup the options ask for.
fn lookup(
    id: Option<String>,
    trace: Option<&str>,
    rrn: Option<String>,
    date: Option<String>,
) -> anyhow::Result<Lookup> {
    if let Some(id) = id {
        return Ok(Lookup::TransactionId(id));
    }
    if let Some(trace) = trace {
        return Ok(Lookup::Trace(parse_trace(trace)?));
    }
    match (rrn, date) {
        (Some(rrn), Some(business_date)) => Ok(Lookup::Rrn(pb::RrnLookup { rrn, business_date })),
        _ => bail!("give --id, --trace TERMINAL:BATCH:STAN, or --rrn with --date"),
    }
}

/// `T0000001:1:42` or `T0000001:000001:000042`.
fn parse_trace(text: &str) -> anyhow::Result<pb::TerminalTraceRef> {
    let parts: Vec<&str> = text.split(':').collect();
    let [terminal, batch, stan] = parts.as_slice() else {
        bail!("--trace must be TERMINAL:BATCH:STAN, e.g. T0000001:1:42");
    };
    let terminal = TerminalId::parse(terminal).context("--trace terminal")?;
    let batch = BatchNo::parse(batch).context("--trace batch")?;
    let stan = Stan::parse(stan).context("--trace STAN")?;
    Ok(pb::TerminalTraceRef {
        terminal_id: terminal.to_string(),
        batch_no: batch.value(),
        stan: stan.value(),
    })
}

/// "50.00 CNY" (the currency's own minor digits); "-" when unset.
fn amount(money: Option<&pb::Money>) -> String {
    let Some(m) = money else {
        return "-".to_owned();
    };
    match Currency::parse(&m.currency) {
        Ok(currency) => Money::from_minor(m.minor_units, currency).to_string(),
        Err(_) => format!("{} {} (minor units)", m.minor_units, m.currency),
    }
}

/// "30.00": the amount without its currency.
fn major(money: &pb::Money) -> String {
    let text = amount(Some(money));
    text.split(' ').next().unwrap_or_default().to_owned()
}

/// "2026-11-28 10:00:01" in China Standard Time; "-" when unset.
fn time(at: Option<&prost_types::Timestamp>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |t| {
            let local = ChinaTime::from_unix(t.seconds);
            format!(
                "{} {:02}:{:02}:{:02}",
                local.date_iso(),
                local.hour,
                local.minute,
                local.second
            )
        },
    )
}

fn type_name(value: i32) -> &'static str {
    pb::TransactionType::try_from(value).map_or("UNKNOWN", |t| {
        t.as_str_name()
            .strip_prefix("TRANSACTION_TYPE_")
            .unwrap_or("UNKNOWN")
    })
}

fn status_name(value: i32) -> &'static str {
    pb::TransactionStatus::try_from(value).map_or("UNKNOWN", |s| {
        s.as_str_name()
            .strip_prefix("TRANSACTION_STATUS_")
            .unwrap_or("UNKNOWN")
    })
}

fn entry_mode(value: i32) -> String {
    pb::CardEntryMode::try_from(value).map_or_else(
        |_| "unknown".to_owned(),
        |m| {
            m.as_str_name()
                .strip_prefix("CARD_ENTRY_MODE_")
                .unwrap_or("UNSPECIFIED")
                .to_lowercase()
        },
    )
}

fn trace_text(trace: Option<&pb::TerminalTraceRef>) -> String {
    trace.map_or_else(
        || "-".to_owned(),
        |t| format!("{}:{:06}:{:06}", t.terminal_id, t.batch_no, t.stan),
    )
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// `status: PARTIALLY_REFUNDED  refunded 30.00 of 50.00 CNY` (the refund part only when
/// something was refunded).
pub fn status_line(summary: &pb::TransactionSummary) -> String {
    let mut line = format!("status: {}", status_name(summary.status));
    if let Some(refunded) = summary
        .refunded_amount
        .as_ref()
        .filter(|m| m.minor_units != 0)
    {
        let of = summary
            .amount
            .as_ref()
            .map(|a| format!(" of {}", major(a)))
            .unwrap_or_default();
        line.push_str(&format!(
            "  refunded {}{of} {}",
            major(refunded),
            refunded.currency
        ));
    }
    line
}

/// Every line of a summary.
pub fn summary_lines(s: &pb::TransactionSummary) -> Vec<String> {
    let mut lines = vec![
        format!("transaction_id: {}", or_dash(&s.transaction_id)),
        format!("type: {}", type_name(s.transaction_type)),
        status_line(s),
        format!("merchant_id: {}", or_dash(&s.merchant_id)),
        format!("trace: {}", trace_text(s.trace.as_ref())),
        format!("operator: {}", or_dash(&s.operator_no)),
        format!("amount: {}", amount(s.amount.as_ref())),
    ];
    if let Some(card) = &s.card {
        lines.push(format!(
            "card: {} {}",
            or_dash(&card.masked_pan),
            entry_mode(s.entry_mode)
        ));
    }
    lines.extend([
        format!("rrn: {}", or_dash(&s.rrn)),
        format!("approval_code: {}", or_dash(&s.approval_code)),
        format!("response_code: {}", or_dash(&s.response_code)),
        format!("business_date: {}", or_dash(&s.business_date)),
        format!("decided_at: {}", time(s.occurred_at.as_ref())),
        format!("refunded: {}", amount(s.refunded_amount.as_ref())),
        format!("refundable: {}", amount(s.refundable_amount.as_ref())),
    ]);
    if let Some(o) = &s.original {
        let trace = pb::TerminalTraceRef {
            terminal_id: o.terminal_id.clone(),
            batch_no: o.batch_no,
            stan: o.stan,
        };
        lines.push(format!(
            "original: {} {} {}  rrn {}  {}",
            type_name(o.transaction_type),
            trace_text(Some(&trace)),
            amount(o.amount.as_ref()),
            or_dash(&o.rrn),
            or_dash(&o.transaction_id)
        ));
    }
    lines
}

/// `2026-11-28 10:00:01  AuthorizationApproved  PURCHASE  50.00 CNY  00  rrn 123456789012`
pub fn entry_line(e: &pb::TransactionHistoryEntry) -> String {
    let mut line = format!(
        "{}  {}  {}  {}  {}",
        time(e.occurred_at.as_ref()),
        e.event_type,
        type_name(e.transaction_type),
        amount(e.amount.as_ref()),
        or_dash(&e.response_code)
    );
    if !e.detail.is_empty() {
        line.push_str("  ");
        line.push_str(&e.detail);
    }
    line
}

/// `2026-11-28 10:00:01  T0000001:000001:000042  PURCHASE  APPROVED  50.00 CNY  00
/// 622202****1234  {transaction id}`
pub fn list_line(s: &pb::TransactionSummary) -> String {
    format!(
        "{}  {}  {}  {}  {}  {}  {}  {}",
        time(s.occurred_at.as_ref()),
        trace_text(s.trace.as_ref()),
        type_name(s.transaction_type),
        status_name(s.status),
        amount(s.amount.as_ref()),
        or_dash(&s.response_code),
        s.card.as_ref().map_or("-", |c| or_dash(&c.masked_pan)),
        or_dash(&s.transaction_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(minor: i64) -> Option<pb::Money> {
        Some(pb::Money {
            minor_units: minor,
            currency: "CNY".to_owned(),
        })
    }

    /// 2026-11-28 10:00:01 in China.
    fn at() -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: 1_795_831_201,
            nanos: 0,
        })
    }

    #[test]
    fn the_status_line_says_how_much_was_refunded() {
        let summary = pb::TransactionSummary {
            status: pb::TransactionStatus::PartiallyRefunded as i32,
            amount: cny(5000),
            refunded_amount: cny(3000),
            ..Default::default()
        };
        assert_eq!(
            status_line(&summary),
            "status: PARTIALLY_REFUNDED  refunded 30.00 of 50.00 CNY"
        );
        let standing = pb::TransactionSummary {
            status: pb::TransactionStatus::Approved as i32,
            amount: cny(5000),
            refunded_amount: cny(0),
            ..Default::default()
        };
        assert_eq!(status_line(&standing), "status: APPROVED");
    }

    #[test]
    fn an_entry_is_one_line() {
        let approved = pb::TransactionHistoryEntry {
            occurred_at: at(),
            event_type: "AuthorizationApproved".to_owned(),
            transaction_type: pb::TransactionType::Purchase as i32,
            amount: cny(5000),
            response_code: "00".to_owned(),
            detail: "rrn 123456789012".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            entry_line(&approved),
            "2026-11-28 10:00:01  AuthorizationApproved  PURCHASE  50.00 CNY  00  rrn 123456789012"
        );
        let refunded = pb::TransactionHistoryEntry {
            occurred_at: at(),
            event_type: "TransactionRefunded".to_owned(),
            transaction_type: pb::TransactionType::Refund as i32,
            amount: cny(3000),
            response_code: "00".to_owned(),
            detail: "refunded 30.00 of 50.00".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            entry_line(&refunded),
            "2026-11-28 10:00:01  TransactionRefunded  REFUND  30.00 CNY  00  refunded 30.00 of 50.00"
        );
    }

    #[test]
    fn a_list_line_names_trace_type_status_and_amount() {
        let summary = pb::TransactionSummary {
            transaction_id: "0195".to_owned(),
            transaction_type: pb::TransactionType::Purchase as i32,
            status: pb::TransactionStatus::Voided as i32,
            trace: Some(pb::TerminalTraceRef {
                terminal_id: "T0000001".to_owned(),
                batch_no: 1,
                stan: 42,
            }),
            amount: cny(5000),
            response_code: "00".to_owned(),
            occurred_at: at(),
            ..Default::default()
        };
        assert_eq!(
            list_line(&summary),
            "2026-11-28 10:00:01  T0000001:000001:000042  PURCHASE  VOIDED  50.00 CNY  00  -  0195"
        );
    }

    #[test]
    fn traces_are_read_with_or_without_padding() {
        let trace = parse_trace("T0000001:1:42").unwrap();
        assert_eq!((trace.batch_no, trace.stan), (1, 42));
        assert_eq!(parse_trace("T0000001:000001:000042").unwrap(), trace);
        assert!(parse_trace("T0000001:1").is_err());
        assert!(parse_trace("T0000001:0:1").is_err());
    }
}
