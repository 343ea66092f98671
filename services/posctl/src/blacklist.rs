//! `posctl blacklist add|remove|list`: the cards, BIN ranges, merchants and terminals that
//! fraud-check declines with "59", managed on the fraud-check service (`--fraud-url`,
//! `POS_FRAUD_URL`) with the operator's token; the caller needs the `risk` (or `admin`) role and
//! every call is audited. `add` and `remove` print the entry as `key: value` lines:
//!
//! ```text
//! entry_id: 0195…
//! kind: card
//! target: 3f9a…(card token)
//! masked_pan: 622202****1234
//! reason: lost card reported by issuer
//! added_by: ops:alice (risk)
//! added_at: 2026-11-28T10:00:01+08:00
//! expires_at: never
//! ```
//!
//! `list` prints one tab-separated line per entry: id, kind, target, reason, expiry.
//!
//! A full card number given with `--pan` is sent to fraud-check (which keeps only its token) and
//! never printed, not even when it is rejected as malformed.

use std::ffi::OsStr;

use anyhow::bail;
use clap::builder::{NonEmptyStringValueParser, TypedValueParser};
use clap::error::ErrorKind;
use clap::{ArgGroup, Subcommand, ValueEnum};
use pos_domain::{CardToken, MerchantId, Pan, TerminalId};
use pos_proto::v1 as pb;
use pos_proto::v1::add_blacklist_entry_request::Target as AddTarget;
use pos_proto::v1::blacklist_entry::Target as EntryTarget;

use crate::client::Connection;
use crate::fraud::{now_unix, one_line, or_dash, rfc3339};

#[derive(Debug, Subcommand)]
pub enum BlacklistCommand {
    /// Blacklist one card, BIN range, merchant or terminal (give exactly one).
    Add(AddArgs),
    /// Remove a blacklist entry (removing a removed entry succeeds) and print it.
    Remove {
        /// Id of the entry, as `add` or `list` printed it.
        entry_id: String,
        /// Why it is removed.
        #[arg(long, value_parser = NonEmptyStringValueParser::new())]
        reason: String,
    },
    /// List the active entries, newest first, one tab-separated line each.
    List {
        /// Only entries of this kind.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Entries per page (0 = the service's default, 50; at most 500).
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        /// Page token printed by the previous page.
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

/// `posctl blacklist add`: one target, a reason, an optional lifetime.
#[derive(Debug, clap::Args)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .args(["pan", "card_token", "bin", "merchant", "terminal"])
))]
pub struct AddArgs {
    /// Full card number, sent to fraud-check to be tokenized and never printed (it stays in
    /// your shell history: prefer --card-token when you have it).
    #[arg(long, value_parser = Quiet(parse_pan))]
    pan: Option<Pan>,
    /// Card token: 64 lowercase hex digits.
    #[arg(long)]
    card_token: Option<CardToken>,
    /// BIN or BIN range START[-END]: 6 digits each, e.g. 622200-622299.
    #[arg(long, value_parser = Quiet(parse_bin_range))]
    bin: Option<pb::BinRange>,
    /// Merchant id (15 digits).
    #[arg(long)]
    merchant: Option<MerchantId>,
    /// Terminal id (8 letters or digits).
    #[arg(long)]
    terminal: Option<TerminalId>,
    /// Why, e.g. "lost card reported by issuer".
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    reason: String,
    /// Stop applying after N days (1 to 36500); never when omitted.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    expires_in_days: Option<u32>,
}

impl AddArgs {
    /// The one target given (clap's group makes sure there is exactly one).
    fn target(self) -> anyhow::Result<AddTarget> {
        Ok(match self {
            Self { pan: Some(pan), .. } => AddTarget::Pan(pan.expose_digits().to_owned()),
            Self {
                card_token: Some(token),
                ..
            } => AddTarget::CardToken(token.to_string()),
            Self { bin: Some(bin), .. } => AddTarget::BinRange(bin),
            Self {
                merchant: Some(merchant),
                ..
            } => AddTarget::MerchantId(merchant.to_string()),
            Self {
                terminal: Some(terminal),
                ..
            } => AddTarget::TerminalId(terminal.to_string()),
            _ => bail!("give one of --pan, --card-token, --bin, --merchant or --terminal"),
        })
    }
}

/// What `posctl blacklist list --kind` filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Cards (by token).
    Card,
    /// BIN ranges.
    Bin,
    /// Merchants.
    Merchant,
    /// Terminals.
    Terminal,
}

impl From<Kind> for pb::BlacklistKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Card => Self::CardToken,
            Kind::Bin => Self::BinRange,
            Kind::Merchant => Self::Merchant,
            Kind::Terminal => Self::Terminal,
        }
    }
}

/// Runs one `posctl blacklist` command.
pub async fn run(connection: &Connection, command: BlacklistCommand) -> anyhow::Result<()> {
    match command {
        BlacklistCommand::Add(args) => {
            let reason = args.reason.clone();
            let expires_at = args
                .expires_in_days
                .map(|days| expires_at(now_unix(), days));
            let target = args.target()?;
            let mut api = connection.fraud().await?;
            let entry = api
                .add_blacklist_entry(pb::AddBlacklistEntryRequest {
                    target: Some(target),
                    reason,
                    expires_at,
                })
                .await?
                .into_inner()
                .entry
                .ok_or_else(|| anyhow::anyhow!("fraud-check returned no entry"))?;
            print_entry(&entry);
        }
        BlacklistCommand::Remove { entry_id, reason } => {
            let mut api = connection.fraud().await?;
            let entry = api
                .remove_blacklist_entry(pb::RemoveBlacklistEntryRequest { entry_id, reason })
                .await?
                .into_inner()
                .entry
                .ok_or_else(|| anyhow::anyhow!("fraud-check returned no entry"))?;
            print_entry(&entry);
        }
        BlacklistCommand::List {
            kind,
            page_size,
            page_token,
        } => {
            let mut api = connection.fraud().await?;
            let answer = api
                .list_blacklist_entries(pb::ListBlacklistEntriesRequest {
                    kind: kind.map_or(pb::BlacklistKind::Unspecified, Into::into) as i32,
                    page: Some(pb::PageRequest {
                        page_size,
                        page_token,
                    }),
                })
                .await?
                .into_inner();
            for entry in &answer.entries {
                println!("{}", list_line(entry));
            }
            if let Some(page) = answer.page.filter(|p| !p.next_page_token.is_empty()) {
                println!("next_page_token: {}", page.next_page_token);
            }
        }
    }
    Ok(())
}

/// Digits in each end of a BIN range: fraud-check sees the first six digits of a card, never
/// more (fraud.proto `BinRange`).
const BIN_DIGITS: usize = 6;

/// `622200-622299`, or `622200` for the single BIN (start = end).
fn parse_bin_range(text: &str) -> Result<pb::BinRange, String> {
    let (start, end) = text.split_once('-').unwrap_or((text, text));
    for prefix in [start, end] {
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err("a BIN range is START[-END], digits only, e.g. 622200-622299".to_owned());
        }
        if prefix.len() != BIN_DIGITS {
            return Err(format!(
                "a BIN has 6 digits, not {} (a card number goes to --pan)",
                prefix.len()
            ));
        }
    }
    if start.len() != end.len() {
        return Err("both ends of a BIN range have the same number of digits".to_owned());
    }
    // Equal lengths of digits: text order is number order.
    if end < start {
        return Err("a BIN range cannot end before it starts".to_owned());
    }
    Ok(pb::BinRange {
        start: start.to_owned(),
        end: end.to_owned(),
    })
}

fn parse_pan(text: &str) -> Result<Pan, String> {
    Pan::parse(text).map_err(|error| error.to_string())
}

/// A value parser whose errors do not repeat the value (clap's own errors quote it): a card
/// number, typed where it should be or by mistake, never ends up in scrollback or a log.
#[derive(Debug, Clone, Copy)]
struct Quiet<T>(fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Quiet<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let name = arg
            .and_then(clap::Arg::get_long)
            .map_or_else(|| "value".to_owned(), |long| format!("--{long}"));
        let parsed = value
            .to_str()
            .ok_or_else(|| "not valid UTF-8".to_owned())
            .and_then(self.0);
        parsed.map_err(|problem| {
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid {name} (not shown): {problem}\n"),
            )
            .with_cmd(cmd)
        })
    }
}

/// `now` plus `days` whole days.
fn expires_at(now: i64, days: u32) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: now.saturating_add(i64::from(days) * 86_400),
        nanos: 0,
    }
}

fn kind_name(value: i32) -> &'static str {
    match pb::BlacklistKind::try_from(value) {
        Ok(pb::BlacklistKind::CardToken) => "card",
        Ok(pb::BlacklistKind::BinRange) => "bin",
        Ok(pb::BlacklistKind::Merchant) => "merchant",
        Ok(pb::BlacklistKind::Terminal) => "terminal",
        Ok(pb::BlacklistKind::Unspecified) => "-",
        Err(_) => "unknown",
    }
}

/// The card token, "START-END", the merchant id or the terminal id.
fn target_text(entry: &pb::BlacklistEntry) -> String {
    match &entry.target {
        Some(EntryTarget::CardToken(token)) => or_dash(token).to_owned(),
        Some(EntryTarget::BinRange(range)) => format!("{}-{}", range.start, range.end),
        Some(EntryTarget::MerchantId(merchant)) => or_dash(merchant).to_owned(),
        Some(EntryTarget::TerminalId(terminal)) => or_dash(terminal).to_owned(),
        None => "-".to_owned(),
    }
}

/// "2026-11-28T10:00:01+08:00", or "never".
fn expiry(entry: &pb::BlacklistEntry) -> String {
    entry
        .expires_at
        .as_ref()
        .map_or_else(|| "never".to_owned(), |at| rfc3339(Some(at)))
}

/// Every line of an entry.
fn entry_lines(entry: &pb::BlacklistEntry) -> Vec<String> {
    let mut lines = vec![
        format!("entry_id: {}", or_dash(&entry.entry_id)),
        format!("kind: {}", kind_name(entry.kind)),
        format!("target: {}", target_text(entry)),
    ];
    if !entry.masked_pan.is_empty() {
        lines.push(format!("masked_pan: {}", entry.masked_pan));
    }
    let added_by = entry.added_by.as_ref().map_or_else(
        || "-".to_owned(),
        |actor| format!("{} ({})", or_dash(&actor.subject), or_dash(&actor.role)),
    );
    lines.extend([
        format!("reason: {}", one_line(or_dash(&entry.reason))),
        format!("added_by: {added_by}"),
        format!("added_at: {}", rfc3339(entry.added_at.as_ref())),
        format!("expires_at: {}", expiry(entry)),
    ]);
    lines
}

fn print_entry(entry: &pb::BlacklistEntry) {
    for line in entry_lines(entry) {
        println!("{line}");
    }
}

/// `{entry id}\tbin\t622200-622299\t{reason}\tnever`
fn list_line(entry: &pb::BlacklistEntry) -> String {
    [
        or_dash(&entry.entry_id).to_owned(),
        kind_name(entry.kind).to_owned(),
        target_text(entry),
        one_line(or_dash(&entry.reason)),
        expiry(entry),
    ]
    .join("\t")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    /// A Luhn-valid test card.
    const PAN: &str = "6222021234567890128";

    fn blacklist(args: &[&str]) -> Result<BlacklistCommand, clap::Error> {
        let cli = Cli::try_parse_from(["posctl", "blacklist"].iter().chain(args))?;
        match cli.command {
            Command::Blacklist(command) => Ok(command),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn add(args: &[&str]) -> Result<AddArgs, clap::Error> {
        let all: Vec<&str> = ["add", "--reason", "test"]
            .iter()
            .chain(args)
            .copied()
            .collect();
        match blacklist(&all)? {
            BlacklistCommand::Add(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn range(start: &str, end: &str) -> pb::BinRange {
        pb::BinRange {
            start: start.to_owned(),
            end: end.to_owned(),
        }
    }

    #[test]
    fn bin_ranges_are_equal_length_digit_prefixes_in_order() {
        assert_eq!(
            parse_bin_range("622200-622299"),
            Ok(range("622200", "622299"))
        );
        assert_eq!(
            parse_bin_range("622200-622200"),
            Ok(range("622200", "622200"))
        );
        for bad in [
            "6222",
            "622200-6222",
            "622299-622200",
            "622200-6222999",
            "62220a",
            "622200-",
            "-622200",
            "622200-622299-622300",
            "",
            "622202123456",
            "62220012",
        ] {
            assert!(parse_bin_range(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn exactly_one_target_is_added() {
        let card = add(&["--pan", PAN]).unwrap().target().unwrap();
        assert_eq!(card, AddTarget::Pan(PAN.to_owned()));
        let bin = add(&["--bin", "622200"]).unwrap().target().unwrap();
        assert_eq!(bin, AddTarget::BinRange(range("622200", "622200")));
        let merchant = add(&["--merchant", "898310048990001"]).unwrap();
        assert_eq!(
            merchant.target().unwrap(),
            AddTarget::MerchantId("898310048990001".to_owned())
        );
        let terminal = add(&["--terminal", "T0000001"]).unwrap().target().unwrap();
        assert_eq!(terminal, AddTarget::TerminalId("T0000001".to_owned()));
        let token = "ab".repeat(32);
        let card = add(&["--card-token", &token]).unwrap().target().unwrap();
        assert_eq!(card, AddTarget::CardToken(token));

        let none = add(&[]).unwrap_err();
        assert_eq!(none.kind(), ErrorKind::MissingRequiredArgument);
        let two = add(&["--merchant", "898310048990001", "--terminal", "T0000001"]).unwrap_err();
        assert_eq!(two.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn add_needs_a_reason_and_a_sane_lifetime() {
        let missing = blacklist(&["add", "--terminal", "T0000001"]).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::MissingRequiredArgument);
        assert!(add(&["--terminal", "T0000001", "--reason", ""]).is_err());
        assert!(add(&["--terminal", "T0000001", "--expires-in-days", "0"]).is_err());
        let args = add(&["--terminal", "T0000001", "--expires-in-days", "30"]).unwrap();
        assert_eq!(args.expires_in_days, Some(30));
        assert_eq!(expires_at(1_000, 30).seconds, 1_000 + 30 * 86_400);
    }

    #[test]
    fn a_malformed_card_number_is_refused_without_being_repeated() {
        let wrong_check_digit = "6222021234567890127";
        let error = add(&["--pan", wrong_check_digit]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        let text = error.to_string();
        assert!(text.contains("--pan"), "{text}");
        assert!(!text.contains("1234567890"), "{text}");
        let error = add(&["--bin", PAN]).unwrap_err().to_string();
        assert!(!error.contains("1234567890"), "{error}");
    }

    #[test]
    fn malformed_ids_are_refused() {
        assert!(add(&["--merchant", "M1"]).is_err());
        assert!(add(&["--terminal", "t1"]).is_err());
        assert!(add(&["--card-token", "ABCD"]).is_err());
    }

    #[test]
    fn list_kinds_are_card_bin_merchant_or_terminal() {
        let kind = |name: &str| match blacklist(&["list", "--kind", name]) {
            Ok(BlacklistCommand::List { kind, .. }) => kind.map(pb::BlacklistKind::from),
            other => panic!("--kind {name}: {other:?}"),
        };
        assert_eq!(kind("card"), Some(pb::BlacklistKind::CardToken));
        assert_eq!(kind("bin"), Some(pb::BlacklistKind::BinRange));
        assert_eq!(kind("merchant"), Some(pb::BlacklistKind::Merchant));
        assert_eq!(kind("terminal"), Some(pb::BlacklistKind::Terminal));
        assert!(blacklist(&["list", "--kind", "pan"]).is_err());
        let Ok(BlacklistCommand::List { kind, .. }) = blacklist(&["list"]) else {
            panic!("plain list refused");
        };
        assert_eq!(kind, None);
    }

    #[test]
    fn an_entry_prints_its_target_and_never_expires_unless_told() {
        let entry = pb::BlacklistEntry {
            entry_id: "0195".to_owned(),
            kind: pb::BlacklistKind::CardToken as i32,
            target: Some(EntryTarget::CardToken("ab".repeat(32))),
            masked_pan: "622202****0128".to_owned(),
            reason: "lost card\nreported by issuer".to_owned(),
            added_by: Some(pb::Actor {
                subject: "ops:alice".to_owned(),
                role: "risk".to_owned(),
            }),
            // 2026-11-28 10:00:01 in China.
            added_at: Some(prost_types::Timestamp {
                seconds: 1_795_831_201,
                nanos: 0,
            }),
            expires_at: None,
        };
        let token = "ab".repeat(32);
        assert_eq!(
            entry_lines(&entry),
            [
                "entry_id: 0195".to_owned(),
                "kind: card".to_owned(),
                format!("target: {token}"),
                "masked_pan: 622202****0128".to_owned(),
                "reason: lost card reported by issuer".to_owned(),
                "added_by: ops:alice (risk)".to_owned(),
                "added_at: 2026-11-28T10:00:01+08:00".to_owned(),
                "expires_at: never".to_owned(),
            ]
        );
        let bin = pb::BlacklistEntry {
            entry_id: "0196".to_owned(),
            kind: pb::BlacklistKind::BinRange as i32,
            target: Some(EntryTarget::BinRange(range("622200", "622299"))),
            reason: "skimming ring".to_owned(),
            expires_at: Some(prost_types::Timestamp {
                seconds: 1_795_831_201,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            list_line(&bin),
            "0196\tbin\t622200-622299\tskimming ring\t2026-11-28T10:00:01+08:00"
        );
    }
}
