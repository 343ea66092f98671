//! `posctl fraud alerts`: recent fraud alerts (assessments that reviewed, declined or hit a
//! rule), straight from the fraud-check service (`--fraud-url`, `POS_FRAUD_URL`) with the
//! operator's token; the caller needs the `risk` (or `admin`) role. One line per alert, newest
//! first, its columns separated by tabs (shown as two spaces here), then each reason indented
//! under it:
//!
//! ```text
//! 2026-11-28T10:00:01+08:00  0195…  898310048990001  T0000001  622202****1234  50.00 CNY  DECLINE  850  BLACKLIST_CARD,NIGHT_TIME
//!   BLACKLIST_CARD +800: card is blacklisted
//!   NIGHT_TIME +50: 03:12 outside trading hours 07:00-22:00
//! ```
//!
//! Also the printing helpers `posctl blacklist` shares: instants as RFC 3339 in China Standard
//! Time, money in the currency's own minor digits.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Subcommand, ValueEnum};
use pos_domain::time::ChinaTime;
use pos_domain::{Currency, MerchantId, Money};
use pos_proto::v1 as pb;

use crate::client::Connection;

#[derive(Debug, Subcommand)]
pub enum FraudCommand {
    /// Recent fraud alerts, newest first, with the reasons behind each.
    Alerts {
        /// Only this merchant's alerts (15 digits).
        #[arg(long)]
        merchant: Option<MerchantId>,
        /// Only alerts raised in the last N minutes.
        #[arg(long, default_value_t = 1440, value_parser = clap::value_parser!(u32).range(1..))]
        since_minutes: u32,
        /// Only alerts with this decision.
        #[arg(long, value_enum)]
        decision: Option<Decision>,
        /// Alerts per page (0 = the service's default, 50; at most 500).
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        /// Page token printed by the previous page.
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

/// The decision filter of `posctl fraud alerts --decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Decision {
    /// Approved, but a rule was hit.
    Approve,
    /// Sent on to the issuer with an alert for an analyst.
    Review,
    /// Declined with "59" (suspected fraud).
    Decline,
}

impl From<Decision> for pb::FraudDecision {
    fn from(decision: Decision) -> Self {
        match decision {
            Decision::Approve => Self::Approve,
            Decision::Review => Self::Review,
            Decision::Decline => Self::Decline,
        }
    }
}

/// Runs one `posctl fraud` command.
pub async fn run(connection: &Connection, command: FraudCommand) -> anyhow::Result<()> {
    match command {
        FraudCommand::Alerts {
            merchant,
            since_minutes,
            decision,
            page_size,
            page_token,
        } => {
            let since = now_unix().saturating_sub(i64::from(since_minutes) * 60);
            let mut api = connection.fraud().await?;
            let answer = api
                .list_fraud_alerts(pb::ListFraudAlertsRequest {
                    merchant_id: merchant.map(|m| m.to_string()).unwrap_or_default(),
                    since: Some(prost_types::Timestamp {
                        seconds: since,
                        nanos: 0,
                    }),
                    decision: decision.map_or(pb::FraudDecision::Unspecified, Into::into) as i32,
                    page: Some(pb::PageRequest {
                        page_size,
                        page_token,
                    }),
                })
                .await?
                .into_inner();
            if answer.alerts.is_empty() {
                println!("no alerts");
            }
            for view in &answer.alerts {
                for line in alert_lines(view) {
                    println!("{line}");
                }
            }
            if let Some(page) = answer.page.filter(|p| !p.next_page_token.is_empty()) {
                println!("next_page_token: {}", page.next_page_token);
            }
        }
    }
    Ok(())
}

/// The alert's line, then one indented line per reason.
fn alert_lines(view: &pb::FraudAlertView) -> Vec<String> {
    let alert = view.alert.clone().unwrap_or_default();
    let codes: Vec<&str> = alert.reasons.iter().map(|r| r.code.as_str()).collect();
    let mut lines = vec![
        [
            rfc3339(view.raised_at.as_ref()),
            or_dash(&alert.alert_id).to_owned(),
            or_dash(&alert.merchant_id).to_owned(),
            or_dash(&alert.terminal_id).to_owned(),
            alert
                .card
                .as_ref()
                .map_or("-", |c| or_dash(&c.masked_pan))
                .to_owned(),
            amount(alert.amount.as_ref()),
            decision_name(alert.decision).to_owned(),
            alert.score.to_string(),
            or_dash(&codes.join(",")).to_owned(),
        ]
        .join("\t"),
    ];
    lines.extend(alert.reasons.iter().map(|r| {
        format!(
            "  {} {:+}: {}",
            r.code,
            r.score,
            one_line(or_dash(&r.detail))
        )
    }));
    lines
}

fn decision_name(value: i32) -> &'static str {
    match pb::FraudDecision::try_from(value) {
        Ok(pb::FraudDecision::Approve) => "APPROVE",
        Ok(pb::FraudDecision::Review) => "REVIEW",
        Ok(pb::FraudDecision::Decline) => "DECLINE",
        Ok(pb::FraudDecision::Unspecified) => "-",
        Err(_) => "UNKNOWN",
    }
}

/// Seconds since 1970 now (0 if the clock is before 1970).
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// "2026-11-28T10:00:01+08:00": RFC 3339 in China Standard Time, as on receipts; "-" when unset.
pub(crate) fn rfc3339(at: Option<&prost_types::Timestamp>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |t| format!("{}+08:00", ChinaTime::from_unix(t.seconds).iso()),
    )
}

/// "123.45 CNY" (the currency's own minor digits); "-" when unset.
pub(crate) fn amount(money: Option<&pb::Money>) -> String {
    let Some(m) = money else {
        return "-".to_owned();
    };
    match Currency::parse(&m.currency) {
        Ok(currency) => Money::from_minor(m.minor_units, currency).to_string(),
        Err(_) => format!("{} {} (minor units)", m.minor_units, m.currency),
    }
}

/// "-" for an empty field, so that columns never collapse.
pub(crate) fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// Free text on one line of one column: tabs and line breaks become spaces.
pub(crate) fn one_line(text: &str) -> String {
    text.replace(['\t', '\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn alerts(args: &[&str]) -> Result<FraudCommand, clap::Error> {
        let cli = Cli::try_parse_from(["posctl", "fraud", "alerts"].iter().chain(args))?;
        match cli.command {
            Command::Fraud(command) => Ok(command),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn alerts_default_to_the_last_day_of_every_decision() {
        let FraudCommand::Alerts {
            merchant,
            since_minutes,
            decision,
            page_size,
            page_token,
        } = alerts(&[]).unwrap();
        assert_eq!(merchant, None);
        assert_eq!(since_minutes, 1440);
        assert_eq!(decision, None);
        assert_eq!((page_size, page_token.as_str()), (0, ""));
    }

    #[test]
    fn the_decision_filter_is_approve_review_or_decline() {
        let FraudCommand::Alerts { decision, .. } =
            alerts(&["--decision", "decline", "--merchant", "898310048990001"]).unwrap();
        assert_eq!(
            decision.map(pb::FraudDecision::from),
            Some(pb::FraudDecision::Decline)
        );
        assert!(alerts(&["--decision", "block"]).is_err());
        assert!(alerts(&["--merchant", "M1"]).is_err());
        assert!(alerts(&["--since-minutes", "0"]).is_err());
    }

    #[test]
    fn an_alert_is_one_line_and_its_reasons_are_indented_under_it() {
        let view = pb::FraudAlertView {
            alert: Some(pb::FraudAlert {
                alert_id: "0195".to_owned(),
                merchant_id: "898310048990001".to_owned(),
                terminal_id: "T0000001".to_owned(),
                card: Some(pb::MaskedCard {
                    masked_pan: "622202****1234".to_owned(),
                    ..Default::default()
                }),
                amount: Some(pb::Money {
                    minor_units: 12_345,
                    currency: "CNY".to_owned(),
                }),
                decision: pb::FraudDecision::Review as i32,
                score: 420,
                reasons: vec![
                    pb::FraudReason {
                        code: "VELOCITY_CARD".to_owned(),
                        detail: "6 transactions in 10 min (limit 5)".to_owned(),
                        score: 300,
                    },
                    pb::FraudReason {
                        code: "NIGHT_TIME".to_owned(),
                        detail: String::new(),
                        score: 120,
                    },
                ],
                ..Default::default()
            }),
            // 2026-11-28 10:00:01 in China.
            raised_at: Some(prost_types::Timestamp {
                seconds: 1_795_831_201,
                nanos: 0,
            }),
        };
        assert_eq!(
            alert_lines(&view),
            [
                "2026-11-28T10:00:01+08:00\t0195\t898310048990001\tT0000001\t622202****1234\t\
                 123.45 CNY\tREVIEW\t420\tVELOCITY_CARD,NIGHT_TIME",
                "  VELOCITY_CARD +300: 6 transactions in 10 min (limit 5)",
                "  NIGHT_TIME +120: -",
            ]
        );
    }

    #[test]
    fn missing_fields_print_as_dashes() {
        let lines = alert_lines(&pb::FraudAlertView::default());
        assert_eq!(lines, ["-\t-\t-\t-\t-\t-\t-\t0\t-"]);
    }
}
