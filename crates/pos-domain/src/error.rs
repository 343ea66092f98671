//! The crate's one error type and its `Result` alias.
//!
//! Messages are written for the person who typed or sent the bad value: they say what rule
//! was broken and what was found, and never echo a card number.

use crate::money::Currency;

/// Result of every fallible operation in this crate.
pub type Result<T, E = DomainError> = std::result::Result<T, E>;

/// Why a value could not become a domain type, or an operation on it was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The currency code is not one this platform knows.
    #[error("unknown currency {0:?}: expected an ISO 4217 code such as CNY or 156")]
    UnknownCurrency(String),

    /// Two amounts in different currencies were combined or compared.
    #[error("cannot combine amounts in different currencies: {left} and {right}")]
    CurrencyMismatch {
        /// Currency of the left-hand amount.
        left: Currency,
        /// Currency of the right-hand amount.
        right: Currency,
    },

    /// An amount has more decimal places than its currency's minor unit.
    #[error("{}", too_many_decimals(*currency, *got))]
    TooManyDecimals {
        /// The amount's currency.
        currency: Currency,
        /// How many decimal places the amount has.
        got: u32,
    },

    /// An arithmetic result does not fit.
    #[error("{0} overflows the range of a payment amount")]
    AmountOverflow(&'static str),

    /// A keyed-in amount is not a plain non-negative decimal number.
    #[error("invalid amount: {0}")]
    InvalidAmount(&'static str),

    /// The PAN contains something other than the digits 0-9.
    #[error(
        "PAN must contain only digits 0-9 (no spaces or separators); character {position} is not a digit"
    )]
    PanNotDigits {
        /// One-based position of the first offending character.
        position: usize,
    },

    /// The PAN is too short or too long.
    #[error("PAN must be 13 to 19 digits, got {0}")]
    PanLength(usize),

    /// The PAN's check digit is wrong.
    #[error("PAN fails the Luhn check")]
    PanLuhn,

    /// The tokenization key is unusable.
    #[error("token key {0}")]
    InvalidTokenKey(String),

    /// A fixed-format field (identifier, code, date) is malformed.
    #[error("{field} {problem}")]
    InvalidField {
        /// What the field is, e.g. "terminal id".
        field: &'static str,
        /// What is wrong with it, e.g. "must be exactly 8 ..., got 7".
        problem: String,
    },

    /// The card entry mode is not one of the known names.
    #[error("unknown entry mode {0:?}: expected swipe, chip, tap, contactless, fallback or manual")]
    UnknownEntryMode(String),

    /// The DE39 response code is not one this platform knows.
    #[error("unknown response code {0:?}")]
    UnknownResponseCode(String),
}

impl DomainError {
    /// Shorthand for [`DomainError::InvalidField`].
    pub(crate) fn field(field: &'static str, problem: impl Into<String>) -> Self {
        Self::InvalidField {
            field,
            problem: problem.into(),
        }
    }
}

fn too_many_decimals(currency: Currency, got: u32) -> String {
    match currency.minor_units() {
        0 => format!("{currency} amounts have no decimal places, got {got}"),
        1 => format!("{currency} amounts have at most 1 decimal place, got {got}"),
        n => format!("{currency} amounts have at most {n} decimal places, got {got}"),
    }
}
