//! Parsing an amount as a cashier keys it in ("50.00"), with one clear error per mistake.

use super::{Currency, Money};
use crate::error::{DomainError, Result};

/// Parses a non-negative amount in major units with at most the currency's minor digits.
pub(super) fn parse_major(input: &str, currency: Currency) -> Result<Money> {
    reject_bad_characters(input)?;
    let (whole, fraction) = input.split_once('.').unwrap_or((input, ""));
    if whole.is_empty() || (input.contains('.') && fraction.is_empty()) {
        return Err(DomainError::InvalidAmount(
            "digits are needed on both sides of the decimal point",
        ));
    }
    if fraction.contains('.') {
        return Err(DomainError::InvalidAmount("more than one decimal point"));
    }
    let allowed = currency.minor_units() as usize;
    if fraction.len() > allowed {
        let got = u32::try_from(fraction.len()).unwrap_or(u32::MAX);
        return Err(DomainError::TooManyDecimals { currency, got });
    }
    let minor_digits = format!("{whole}{fraction:0<allowed$}");
    let minor = minor_digits
        .parse::<i64>()
        .map_err(|_| DomainError::AmountOverflow("the keyed amount"))?;
    Ok(Money::from_minor(minor, currency))
}

/// Refuses everything but digits and decimal points, naming the likely mistake.
fn reject_bad_characters(input: &str) -> Result<()> {
    let reason = if input.is_empty() {
        "the amount is empty"
    } else if input.starts_with('-') {
        "negative amounts are not accepted"
    } else if input.contains(['e', 'E']) {
        "exponent notation is not accepted"
    } else if input.contains([',', '_', '\'']) {
        "thousands separators are not accepted"
    } else if input.chars().any(char::is_whitespace) {
        "spaces are not accepted"
    } else if !input.chars().all(|c| c.is_ascii_digit() || c == '.') {
        "only digits and a decimal point are accepted"
    } else {
        return Ok(());
    };
    Err(DomainError::InvalidAmount(reason))
}
