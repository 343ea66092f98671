//! `issuer-sim account --pan PAN`: a card's account and ledger, read straight from the books,
//! for people and for tests that check balances to the fen. The PAN is shown masked.
//!
//! ```text
//! card: 621700****5677
//! label: UnionPay debit, chip, PIN required: the happy path
//! funding: debit
//! status: active
//! available: 9950.00 CNY
//! balance: 9950.00 CNY
//! holds: 0.00 CNY
//! pin_tries: 0
//! expiry: 3012
//! service_code: 220
//! per_transaction_limit: none
//! ledger:
//!   2025-03-11T10:00:00+08:00 open            0.00 balance 10000.00 available 10000.00 holds 0.00
//!   2025-03-11T10:01:02+08:00 purchase      -50.00 balance 9950.00 available 9950.00 holds 0.00 txn 0197...
//! ```
//!
//! A credit card also shows `credit_limit` and `owed`; its `balance` is minus what is owed.

use std::fmt::Write as _;

use pos_domain::{Currency, Money, Pan};

use crate::books::{Books, LedgerEntry};
use crate::card::{CardRecord, Funding};

/// The account report of the card `pan`, or `None` when the bank has no such card.
pub async fn report(books: &Books, pan: &Pan) -> anyhow::Result<Option<String>> {
    let token = books.token(pan);
    let Some(card) = books.card(&token).await? else {
        return Ok(None);
    };
    let ledger = books.ledger(&token).await?;
    Ok(Some(render(&card, &ledger)))
}

/// The text of the report.
pub fn render(card: &CardRecord, ledger: &[LedgerEntry]) -> String {
    let money = |minor: i64| card.money(minor).to_string();
    let mut out = String::new();
    let mut line = |name: &str, value: String| {
        let _ = writeln!(out, "{name}: {value}");
    };
    line("card", card.masked.clone());
    if !card.label.is_empty() {
        line("label", card.label.clone());
    }
    line("funding", card.funding.to_string());
    line("status", card.status.to_string());
    line("available", money(card.available()));
    line("balance", money(card.book_balance()));
    line("holds", money(card.holds));
    if card.funding == Funding::Credit {
        line("credit_limit", money(card.credit_limit));
        line("owed", money(card.owed));
    }
    line("pin_tries", card.pin_tries.to_string());
    line("expiry", card.expiry.to_string());
    line("service_code", card.service_code.to_string());
    line(
        "per_transaction_limit",
        card.per_transaction_limit
            .map_or_else(|| "none".to_owned(), money),
    );
    let _ = writeln!(out, "ledger:");
    for entry in ledger {
        let _ = writeln!(out, "  {}", ledger_line(entry, card.currency));
    }
    out
}

fn ledger_line(entry: &LedgerEntry, currency: Currency) -> String {
    let amount = |text: &str| {
        text.parse::<i64>()
            .map(|minor| Money::from_minor(minor, currency).amount().to_string())
            .unwrap_or_else(|_| text.to_owned())
    };
    let mut line = format!(
        "{} {:<9} {:>12} balance {} available {} holds {}",
        entry.at,
        entry.op,
        amount(&entry.amount),
        amount(&entry.balance),
        amount(&entry.available),
        amount(&entry.holds),
    );
    if !entry.hold.is_empty() && entry.hold != "0" {
        let _ = write!(line, " hold {}", amount(&entry.hold));
    }
    if !entry.txn.is_empty() {
        let _ = write!(line, " txn {}", entry.txn);
    }
    line
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn renders_balances_to_the_fen_and_the_ledger() {
        let fields: HashMap<String, String> = [
            ("masked", "622588****3345"),
            ("expiry", "2912"),
            ("service_code", "201"),
            ("funding", "credit"),
            ("status", "active"),
            ("currency", "CNY"),
            ("pin_hash", "$argon2id$secret"),
            ("pin_tries", "2"),
            ("credit_limit", "2000000"),
            ("owed", "5000"),
            ("holds", "1000"),
            ("per_txn_limit", "10000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let card = CardRecord::from_hash("k", &fields).unwrap();
        let entry: LedgerEntry = serde_json::from_str(
            r#"{"at":"2025-03-11T10:01:02+08:00","txn":"t-1","op":"purchase","amount":"-5000",
               "hold":"0","balance":"-5000","available":"1994000","holds":"1000"}"#,
        )
        .unwrap();
        let text = render(&card, &[entry]);
        for expected in [
            "card: 622588****3345\n",
            "available: 19940.00 CNY\n",
            "balance: -50.00 CNY\n",
            "holds: 10.00 CNY\n",
            "credit_limit: 20000.00 CNY\n",
            "owed: 50.00 CNY\n",
            "pin_tries: 2\n",
            "status: active\n",
            "per_transaction_limit: 100.00 CNY\n",
            "purchase",
            "-50.00 balance -50.00 available 19940.00 holds 10.00 txn t-1",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        assert!(!text.contains("argon2"));
    }
}
