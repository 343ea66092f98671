//! The bank's view of a card account: funding type, status, and the account as the Redis
//! hash `<prefix>:card:<token>` holds it (amounts in integer minor units).
//!
//! A debit account has a `balance` (the cardholder's money); a credit account has a
//! `credit_limit` and the amount `owed`. Both have `holds`, the sum of open
//! pre-authorizations. What the cardholder may still spend is
//! - debit: balance − holds;
//! - credit: credit_limit − owed − holds.
//!
//! The same formulas are in the Lua scripts that move money (`lua/prelude.lua`); this copy
//! serves reads (the `account` command, the service's pre-checks).

use std::collections::HashMap;
use std::fmt;

use pos_domain::{Currency, Expiry, Money, ServiceCode};

use crate::error::{IssuerError, Result};

/// Kind of account behind a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Funding {
    /// Debit card (借记卡): spends the balance.
    Debit,
    /// Credit card (贷记卡): spends the credit limit.
    Credit,
}

impl Funding {
    /// "debit" or "credit", as the seed file and Redis write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debit => "debit",
            Self::Credit => "credit",
        }
    }

    /// Parses "debit" or "credit".
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "debit" => Some(Self::Debit),
            "credit" => Some(Self::Credit),
            _ => None,
        }
    }
}

impl fmt::Display for Funding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the card may be used at all. The scripts decline a lost card "41", a stolen one
/// "43" and a blocked one "57".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardStatus {
    /// In use.
    Active,
    /// Reported lost: declined "41".
    Lost,
    /// Reported stolen: declined "43".
    Stolen,
    /// Blocked by the bank: declined "57".
    Blocked,
}

impl CardStatus {
    /// "active", "lost", "stolen" or "blocked".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Lost => "lost",
            Self::Stolen => "stolen",
            Self::Blocked => "blocked",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "lost" => Some(Self::Lost),
            "stolen" => Some(Self::Stolen),
            "blocked" => Some(Self::Blocked),
            _ => None,
        }
    }
}

impl fmt::Display for CardStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A card account as stored in Redis.
#[derive(Clone)]
pub struct CardRecord {
    /// BIN + "****" + last four.
    pub masked: String,
    /// Free text from the seed file saying what the card is for.
    pub label: String,
    /// Expiry month.
    pub expiry: Expiry,
    /// Service code on the card.
    pub service_code: ServiceCode,
    /// Debit or credit.
    pub funding: Funding,
    /// Status.
    pub status: CardStatus,
    /// Account currency.
    pub currency: Currency,
    /// argon2id PHC string of the PIN.
    pub pin_hash: String,
    /// Consecutive wrong PINs.
    pub pin_tries: u32,
    /// Debit: the balance; credit: unused (0).
    pub balance: i64,
    /// Credit: the limit; debit: unused (0).
    pub credit_limit: i64,
    /// Credit: the amount owed; debit: unused (0).
    pub owed: i64,
    /// Sum of open holds.
    pub holds: i64,
    /// Largest amount of one purchase or pre-authorization, if limited.
    pub per_transaction_limit: Option<i64>,
}

/// Never shows the PIN hash.
impl fmt::Debug for CardRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardRecord")
            .field("masked", &self.masked)
            .field("funding", &self.funding)
            .field("status", &self.status)
            .field("pin_tries", &self.pin_tries)
            .finish_non_exhaustive()
    }
}

impl CardRecord {
    /// Reads the fields of the card hash; `key` names it in errors.
    pub fn from_hash(key: &str, fields: &HashMap<String, String>) -> Result<Self> {
        let corrupt = |detail: String| IssuerError::Corrupt {
            key: key.to_owned(),
            detail,
        };
        let text = |name: &str| {
            fields
                .get(name)
                .map(String::as_str)
                .ok_or_else(|| corrupt(format!("field {name} is missing")))
        };
        let minor = |name: &str| -> Result<i64> {
            match fields.get(name).map(String::as_str) {
                None | Some("") => Ok(0),
                Some(value) => value
                    .parse()
                    .map_err(|_| corrupt(format!("field {name} is not an integer"))),
            }
        };
        let per_transaction_limit = match fields.get("per_txn_limit").map(String::as_str) {
            None | Some("") => None,
            Some(_) => Some(minor("per_txn_limit")?),
        };
        Ok(Self {
            masked: text("masked")?.to_owned(),
            label: fields.get("label").cloned().unwrap_or_default(),
            expiry: Expiry::parse(text("expiry")?).map_err(|e| corrupt(e.to_string()))?,
            service_code: ServiceCode::parse(text("service_code")?)
                .map_err(|e| corrupt(e.to_string()))?,
            funding: Funding::parse(text("funding")?)
                .ok_or_else(|| corrupt("unknown funding".to_owned()))?,
            status: CardStatus::parse(text("status")?)
                .ok_or_else(|| corrupt("unknown status".to_owned()))?,
            currency: Currency::parse(text("currency")?).map_err(|e| corrupt(e.to_string()))?,
            pin_hash: text("pin_hash")?.to_owned(),
            pin_tries: u32::try_from(minor("pin_tries")?.max(0)).unwrap_or(u32::MAX),
            balance: minor("balance")?,
            credit_limit: minor("credit_limit")?,
            owed: minor("owed")?,
            holds: minor("holds")?,
            per_transaction_limit,
        })
    }

    /// What may still be spent, in minor units.
    pub fn available(&self) -> i64 {
        match self.funding {
            Funding::Debit => self.balance - self.holds,
            Funding::Credit => self.credit_limit - self.owed - self.holds,
        }
    }

    /// The book balance: debit, the balance; credit, minus what is owed.
    pub fn book_balance(&self) -> i64 {
        match self.funding {
            Funding::Debit => self.balance,
            Funding::Credit => -self.owed,
        }
    }

    /// An amount of this account's currency from minor units.
    pub fn money(&self, minor: i64) -> Money {
        Money::from_minor(minor, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("masked", "621700****5677"),
            ("expiry", "3012"),
            ("service_code", "220"),
            ("funding", "debit"),
            ("status", "active"),
            ("currency", "CNY"),
            ("pin_hash", "$argon2id$x"),
            ("pin_tries", "1"),
            ("balance", "1000000"),
            ("holds", "2500"),
            ("per_txn_limit", ""),
        ]
    }

    #[test]
    fn debit_available_is_balance_minus_holds() {
        let card = CardRecord::from_hash("k", &hash(&base())).unwrap();
        assert_eq!(card.available(), 997_500);
        assert_eq!(card.book_balance(), 1_000_000);
        assert_eq!(card.per_transaction_limit, None);
        assert_eq!(card.money(card.available()).to_string(), "9975.00 CNY");
        assert!(!format!("{card:?}").contains("argon2"));
    }

    #[test]
    fn credit_available_is_limit_minus_owed_minus_holds() {
        let mut fields = base();
        fields.retain(|(k, _)| *k != "funding" && *k != "balance");
        fields.extend([
            ("funding", "credit"),
            ("credit_limit", "2000000"),
            ("owed", "1995000"),
        ]);
        let card = CardRecord::from_hash("k", &hash(&fields)).unwrap();
        assert_eq!(card.available(), 2_500);
        assert_eq!(card.book_balance(), -1_995_000);
    }

    #[test]
    fn statuses_round_trip_their_names() {
        for status in ["active", "lost", "stolen", "blocked"] {
            assert_eq!(CardStatus::parse(status).unwrap().as_str(), status);
        }
        assert_eq!(CardStatus::parse("frozen"), None);
    }

    #[test]
    fn a_damaged_hash_is_an_error_naming_the_field() {
        let mut fields = base();
        fields.retain(|(k, _)| *k != "expiry");
        let err = CardRecord::from_hash("issuer:card:ab", &hash(&fields)).unwrap_err();
        assert!(err.to_string().contains("expiry"), "{err}");
    }
}
