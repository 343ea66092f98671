//! The seed file: the cards a fresh bank starts with (`--seed FILE`, JSON).
//!
//! ```json
//! {
//!   "about": "free text for people",
//!   "cards": [
//!     { "label": "UnionPay debit, chip", "pan": "6217000010012345677", "expiry": "3012",
//!       "service_code": "220", "funding": "debit", "pin": "123456", "currency": "CNY",
//!       "balance": "10000.00", "per_transaction_limit": "5000.00", "status": "active" },
//!     { "pan": "6225880011223345", "expiry": "2912", "service_code": "201",
//!       "funding": "credit", "pin": "654321", "credit_limit": "20000.00",
//!       "balance_owed": "0.00" }
//!   ]
//! }
//! ```
//!
//! Amounts are decimal text in major units ("10000.00" yuan), never numbers, so no float ever
//! touches them. `currency` defaults to CNY, `status` to active; a debit card needs `balance`
//! and a credit card `credit_limit` (`balance_owed` defaults to 0). Unknown fields are refused
//! so that a typo does not silently seed a card without its limit. Parsing checks everything
//! (Luhn, expiry, service code, PIN digits, amounts) before anything is written; errors name
//! the card by its position and masked PAN, never by the full number or the PIN.

use std::collections::HashSet;
use std::path::Path;

use pos_domain::{Currency, Expiry, Money, Pan, ServiceCode};
use serde::Deserialize;

use crate::card::{CardStatus, Funding};

/// A seed file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The file could not be read.
    #[error("cannot read the seed file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not JSON of the expected shape.
    #[error("the seed file is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// One card is invalid.
    #[error("card {index} ({masked}): {problem}")]
    Card {
        index: usize,
        masked: String,
        problem: String,
    },
}

/// The accounts of one card, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// A debit account with its balance.
    Debit { balance: i64 },
    /// A credit account with its limit and the amount owed.
    Credit { credit_limit: i64, owed: i64 },
}

impl Account {
    /// Debit or credit.
    pub fn funding(self) -> Funding {
        match self {
            Self::Debit { .. } => Funding::Debit,
            Self::Credit { .. } => Funding::Credit,
        }
    }
}

/// One card to seed, validated.
pub struct CardSeed {
    /// The card number.
    pub pan: Pan,
    /// What the card is for (shown by `account`).
    pub label: String,
    /// Expiry month.
    pub expiry: Expiry,
    /// Service code.
    pub service_code: ServiceCode,
    /// The PIN digits (hashed with argon2id before they are stored).
    pub pin: String,
    /// Account currency.
    pub currency: Currency,
    /// Balance or limit.
    pub account: Account,
    /// Largest single purchase or pre-authorization, minor units.
    pub per_transaction_limit: Option<i64>,
    /// Status.
    pub status: CardStatus,
}

/// Never shows the PIN; the PAN shows masked.
impl std::fmt::Debug for CardSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardSeed")
            .field("pan", &self.pan)
            .field("label", &self.label)
            .field("account", &self.account)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    #[allow(dead_code)]
    about: Option<String>,
    cards: Vec<RawCard>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCard {
    pan: String,
    #[serde(default)]
    label: Option<String>,
    expiry: String,
    service_code: String,
    funding: String,
    pin: String,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    balance: Option<String>,
    #[serde(default)]
    credit_limit: Option<String>,
    #[serde(default)]
    balance_owed: Option<String>,
    #[serde(default)]
    per_transaction_limit: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// Reads and validates a seed file.
pub fn load(path: &Path) -> Result<Vec<CardSeed>, SeedError> {
    let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text)
}

/// Validates the JSON text of a seed file.
pub fn parse(text: &str) -> Result<Vec<CardSeed>, SeedError> {
    let raw: RawFile = serde_json::from_str(text)?;
    let mut seen = HashSet::new();
    let mut cards = Vec::with_capacity(raw.cards.len());
    for (position, card) in raw.cards.into_iter().enumerate() {
        let index = position + 1;
        let masked = mask_for_errors(&card.pan);
        let error = |problem: String| SeedError::Card {
            index,
            masked: masked.clone(),
            problem,
        };
        let seed = validate(card).map_err(error)?;
        if !seen.insert(seed.pan.expose_digits().to_owned()) {
            return Err(SeedError::Card {
                index,
                masked,
                problem: "the same PAN appears twice".to_owned(),
            });
        }
        cards.push(seed);
    }
    Ok(cards)
}

fn validate(card: RawCard) -> Result<CardSeed, String> {
    let pan = Pan::parse(&card.pan).map_err(|e| e.to_string())?;
    let expiry = Expiry::parse(&card.expiry).map_err(|e| e.to_string())?;
    let service_code = ServiceCode::parse(&card.service_code).map_err(|e| e.to_string())?;
    let pin_ok = (4..=12).contains(&card.pin.len()) && card.pin.bytes().all(|b| b.is_ascii_digit());
    if !pin_ok {
        return Err("pin must be 4 to 12 digits".to_owned());
    }
    let currency = match card.currency.as_deref() {
        None => Currency::CNY,
        Some(code) => Currency::parse(code).map_err(|e| e.to_string())?,
    };
    let amount = |name: &str, text: &str| -> Result<i64, String> {
        Money::parse_major(text, currency)
            .and_then(|m| m.to_minor())
            .map_err(|e| format!("{name}: {e}"))
    };
    let account = match card.funding.as_str() {
        "debit" => {
            if card.credit_limit.is_some() || card.balance_owed.is_some() {
                return Err("a debit card has a balance, not credit_limit or balance_owed".into());
            }
            let balance = card.balance.ok_or("a debit card needs a balance")?;
            Account::Debit {
                balance: amount("balance", &balance)?,
            }
        }
        "credit" => {
            if card.balance.is_some() {
                return Err("a credit card has credit_limit and balance_owed, not balance".into());
            }
            let limit = card
                .credit_limit
                .ok_or("a credit card needs a credit_limit")?;
            let owed = match card.balance_owed {
                Some(text) => amount("balance_owed", &text)?,
                None => 0,
            };
            Account::Credit {
                credit_limit: amount("credit_limit", &limit)?,
                owed,
            }
        }
        other => return Err(format!("funding must be debit or credit, got {other:?}")),
    };
    let per_transaction_limit = match card.per_transaction_limit {
        None => None,
        Some(text) => {
            let limit = amount("per_transaction_limit", &text)?;
            if limit <= 0 {
                return Err("per_transaction_limit must be greater than zero".to_owned());
            }
            Some(limit)
        }
    };
    let status = match card.status.as_deref() {
        None => CardStatus::Active,
        Some(text) => CardStatus::parse(text).ok_or_else(|| {
            format!("status must be active, lost, stolen or blocked, got {text:?}")
        })?,
    };
    Ok(CardSeed {
        pan,
        label: card.label.unwrap_or_default(),
        expiry,
        service_code,
        pin: card.pin,
        currency,
        account,
        per_transaction_limit,
        status,
    })
}

/// BIN + "****" + last four of whatever was given, so errors can name the card even when it
/// is not a valid PAN; short or non-digit input is not echoed at all.
fn mask_for_errors(text: &str) -> String {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    if digits && text.len() >= 13 {
        format!("{}****{}", &text[..6], &text[text.len() - 4..])
    } else {
        "unreadable PAN".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIT: &str = r#"{"pan":"6217000010012345677","expiry":"3012","service_code":"220",
        "funding":"debit","pin":"123456","balance":"10000.00"}"#;

    fn file(cards: &[&str]) -> String {
        format!(r#"{{"about":"test","cards":[{}]}}"#, cards.join(","))
    }

    fn refused(card: &str) -> String {
        match parse(&file(&[card])) {
            Err(e) => e.to_string(),
            Ok(cards) => panic!("accepted {cards:?}"),
        }
    }

    #[test]
    fn parses_a_debit_and_a_credit_card_with_defaults() {
        let credit = r#"{"pan":"6225880011223345","expiry":"2912","service_code":"201",
            "funding":"credit","pin":"654321","credit_limit":"20000.00","balance_owed":"12.34",
            "per_transaction_limit":"5000","status":"lost","label":"credit"}"#;
        let cards = parse(&file(&[DEBIT, credit])).unwrap();
        assert_eq!(cards.len(), 2);
        let debit = &cards[0];
        assert_eq!(debit.pan.to_string(), "621700****5677");
        assert_eq!(debit.account, Account::Debit { balance: 1_000_000 });
        assert_eq!(debit.currency, Currency::CNY);
        assert_eq!(debit.status, CardStatus::Active);
        assert_eq!(debit.per_transaction_limit, None);
        let credit = &cards[1];
        assert_eq!(
            credit.account,
            Account::Credit {
                credit_limit: 2_000_000,
                owed: 1_234
            }
        );
        assert_eq!(credit.per_transaction_limit, Some(500_000));
        assert_eq!(credit.status, CardStatus::Lost);
        assert_eq!(credit.account.funding(), Funding::Credit);
        assert!(!format!("{credit:?}").contains("654321"));
    }

    #[test]
    fn the_demo_seed_file_is_valid() {
        let text = include_str!("../../../deploy/demo/cards.json");
        let cards = parse(text).unwrap();
        assert!(cards.len() >= 6);
        let nineteen = cards.iter().any(|c| {
            c.pan.expose_digits().len() == 19
                && c.pin == "123456"
                && c.service_code.to_string() == "220"
                && c.account == Account::Debit { balance: 1_000_000 }
        });
        assert!(nineteen, "the 19-digit chip debit card with PIN 123456");
    }

    #[test]
    fn refuses_bad_cards_without_echoing_the_pan_or_pin() {
        let luhn = DEBIT.replace("5677", "5678");
        let err = refused(&luhn);
        assert!(
            err.contains("card 1 (621700****5678)") && err.contains("Luhn"),
            "{err}"
        );
        assert!(!err.contains("6217000010012345678"));
        let err = refused(&DEBIT.replace("123456\"", "12a\""));
        assert!(err.contains("pin must be") && !err.contains("12a"), "{err}");
        assert!(refused(&DEBIT.replace("3012", "3013")).contains("month"));
        assert!(refused(&DEBIT.replace("\"220\"", "\"22\"")).contains("service code"));
        assert!(refused(&DEBIT.replace("10000.00", "-5.00")).contains("balance"));
        assert!(refused(&DEBIT.replace("10000.00", "1.001")).contains("balance"));
        assert!(refused(&DEBIT.replace("\"debit\"", "\"prepaid\"")).contains("funding"));
        assert!(refused(&DEBIT.replace(",\"balance\":\"10000.00\"", "")).contains("needs a"));
        let typo = DEBIT.replace("\"balance\"", "\"balanse\"");
        assert!(refused(&typo).contains("unknown field"));
        let both = DEBIT.replace("}", ",\"credit_limit\":\"1.00\"}");
        assert!(refused(&both).contains("not credit_limit"));
        let limit = DEBIT.replace("}", ",\"per_transaction_limit\":\"0\"}");
        assert!(refused(&limit).contains("greater than zero"));
        let status = DEBIT.replace("}", ",\"status\":\"frozen\"}");
        assert!(refused(&status).contains("status"));
    }

    #[test]
    fn refuses_duplicates() {
        let err = parse(&file(&[DEBIT, DEBIT])).unwrap_err().to_string();
        assert!(err.contains("card 2") && err.contains("twice"), "{err}");
    }
}
