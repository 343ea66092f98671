//! Fee schedules and amounts in merchant data: what a valid schedule is, and which schedule
//! applies on a business date.
//!
//! A rate is a decimal FRACTION of the amount written as text ("0.0050" = 0.50 %): more than
//! 0 and at most 0.05 (5 %), with at most 4 decimal places (0.01 %), the platform's policy
//! within the contract's wider range (common.proto `FeeSchedule`). Caps and limits are
//! positive CNY amounts.

use std::str::FromStr;

use pos_domain::Currency;
use pos_proto::v1::{FeeRounding, FeeSchedule, Money, RefundFeePolicy};
use rust_decimal::Decimal;

use crate::error::{Problems, Result};

/// Highest rate the platform accepts: 5 %.
const MAX_RATE: Decimal = Decimal::from_parts(5, 0, 0, false, 2);
/// Most decimal places of a rate.
const MAX_RATE_DECIMALS: u32 = 4;

/// A fee schedule that passed [`validate_fee_schedule`]; only this type goes into commands.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidFeeSchedule(FeeSchedule);

impl ValidFeeSchedule {
    /// The schedule as the contract carries it (caps normalized to currency "CNY").
    pub fn as_proto(&self) -> &FeeSchedule {
        &self.0
    }

    /// The schedule as the contract carries it.
    pub fn into_proto(self) -> FeeSchedule {
        self.0
    }
}

/// Validates a fee schedule from a request; problems are reported under "fee_schedule.…".
pub fn validate_fee_schedule(schedule: Option<&FeeSchedule>) -> Result<ValidFeeSchedule> {
    let mut problems = Problems::default();
    let valid = check_fee_schedule(schedule, &mut problems);
    problems.into_result()?;
    valid.ok_or_else(|| crate::RegistryError::invalid("fee_schedule", "required"))
}

/// Checks a fee schedule, recording every problem; `Some` only when it is valid.
pub(crate) fn check_fee_schedule(
    schedule: Option<&FeeSchedule>,
    problems: &mut Problems,
) -> Option<ValidFeeSchedule> {
    let Some(schedule) = schedule else {
        problems.add(
            "fee_schedule",
            "required: debit and credit rates, e.g. debit 0.0050 (0.50 %) and credit 0.0060",
        );
        return None;
    };
    let debit_rate = problems.check("fee_schedule.debit_rate", parse_rate(&schedule.debit_rate));
    let credit_rate = problems.check(
        "fee_schedule.credit_rate",
        parse_rate(&schedule.credit_rate),
    );
    let debit_cap = optional_cap(problems, "fee_schedule.debit_cap", &schedule.debit_cap);
    let credit_cap = optional_cap(problems, "fee_schedule.credit_cap", &schedule.credit_cap);
    if FeeRounding::try_from(schedule.rounding).is_err() {
        let message = format!("unknown rounding {}", schedule.rounding);
        problems.add("fee_schedule.rounding", message);
    }
    if RefundFeePolicy::try_from(schedule.refund_fee_policy).is_err() {
        let message = format!("unknown refund fee policy {}", schedule.refund_fee_policy);
        problems.add("fee_schedule.refund_fee_policy", message);
    }
    let (Some(_), Some(_), Some(debit_cap), Some(credit_cap)) =
        (debit_rate, credit_rate, debit_cap, credit_cap)
    else {
        return None;
    };
    Some(ValidFeeSchedule(FeeSchedule {
        debit_cap,
        credit_cap,
        ..schedule.clone()
    }))
}

/// `Some(cap)` when the optional cap is absent (`None`) or valid.
fn optional_cap(
    problems: &mut Problems,
    field: &str,
    cap: &Option<Money>,
) -> Option<Option<Money>> {
    match cap {
        None => Some(None),
        Some(money) => problems.check(field, positive_cny(money)).map(Some),
    }
}

/// Parses a rate: a plain decimal fraction in (0, 0.05] with at most 4 decimal places.
pub(crate) fn parse_rate(text: &str) -> std::result::Result<Decimal, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("required: a decimal fraction such as 0.0050 for 0.50 %".to_owned());
    }
    if text.contains('%') {
        return Err("write the rate as a fraction, not a percentage: 0.50 % is 0.0050".to_owned());
    }
    let plain = text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|&b| b == b'.').count() <= 1;
    let rate = plain
        .then(|| Decimal::from_str(text).ok())
        .flatten()
        .ok_or_else(|| format!("must be a decimal fraction such as 0.0050, got {text:?}"))?;
    if rate.is_zero() {
        return Err("must be greater than 0".to_owned());
    }
    if rate > MAX_RATE {
        return Err(format!(
            "must be at most 0.05 (5 %), got {text}: a rate is a fraction, 0.60 % is 0.0060"
        ));
    }
    let decimals = rate.normalize().scale();
    if decimals > MAX_RATE_DECIMALS {
        return Err(format!(
            "at most {MAX_RATE_DECIMALS} decimal places (0.01 %), got {decimals}"
        ));
    }
    Ok(rate)
}

/// Checks an amount that must be positive and in CNY; returns it with the alpha code "CNY".
pub(crate) fn positive_cny(money: &Money) -> std::result::Result<Money, String> {
    let currency = Currency::parse(&money.currency)
        .map_err(|_| format!("unknown currency {:?}: amounts are in CNY", money.currency))?;
    if currency != Currency::CNY {
        return Err(format!("must be in CNY, got {currency}"));
    }
    if money.minor_units <= 0 {
        return Err("must be a positive amount".to_owned());
    }
    Ok(Money {
        minor_units: money.minor_units,
        currency: Currency::CNY.to_string(),
    })
}

/// One fee schedule and the first business date it applies to.
#[derive(Debug, Clone, PartialEq)]
pub struct DatedFeeSchedule {
    /// First business date "YYYY-MM-DD"; empty for the schedule given at onboarding, which
    /// applies from the start.
    pub effective_from: String,
    /// The schedule.
    pub fee_schedule: FeeSchedule,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(minor_units: i64) -> Money {
        Money {
            minor_units,
            currency: "CNY".into(),
        }
    }

    fn schedule(debit: &str, credit: &str) -> FeeSchedule {
        FeeSchedule {
            debit_rate: debit.into(),
            debit_cap: Some(cny(2000)),
            credit_rate: credit.into(),
            ..Default::default()
        }
    }

    #[test]
    fn rates_are_small_fractions_with_four_decimals_at_most() {
        assert_eq!(parse_rate("0.0050"), Ok(Decimal::new(50, 4)));
        assert_eq!(parse_rate("0.006"), Ok(Decimal::new(6, 3)));
        assert_eq!(parse_rate("0.05"), Ok(Decimal::new(5, 2)));
        assert_eq!(parse_rate("0.00500"), Ok(Decimal::new(5, 3)));
        assert_eq!(
            parse_rate("0.5").unwrap_err(),
            "must be at most 0.05 (5 %), got 0.5: a rate is a fraction, 0.60 % is 0.0060"
        );
        assert_eq!(
            parse_rate("0.00005").unwrap_err(),
            "at most 4 decimal places (0.01 %), got 5"
        );
        assert_eq!(
            parse_rate("0.50%").unwrap_err(),
            "write the rate as a fraction, not a percentage: 0.50 % is 0.0050"
        );
        assert_eq!(parse_rate("0").unwrap_err(), "must be greater than 0");
        assert!(parse_rate("-0.005").is_err());
        assert!(parse_rate("5e-3").is_err());
        assert!(parse_rate("").is_err());
    }

    #[test]
    fn debit_half_a_percent_capped_at_twenty_yuan_is_valid() {
        let valid = validate_fee_schedule(Some(&schedule("0.0050", "0.0060"))).unwrap();
        assert_eq!(valid.as_proto().debit_cap, Some(cny(2000)));
        assert_eq!(valid.as_proto().credit_cap, None);
    }

    #[test]
    fn caps_must_be_positive_cny() {
        let mut usd_cap = schedule("0.0050", "0.0060");
        usd_cap.credit_cap = Some(Money {
            minor_units: 100,
            currency: "USD".into(),
        });
        usd_cap.debit_cap = Some(cny(0));
        let err = validate_fee_schedule(Some(&usd_cap)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid request: fee_schedule.debit_cap: must be a positive amount; fee_schedule.credit_cap: must be in CNY, got USD"
        );
        let numeric = positive_cny(&Money {
            minor_units: 5,
            currency: "156".into(),
        });
        assert_eq!(numeric, Ok(cny(5)));
    }

    #[test]
    fn a_missing_schedule_is_reported() {
        let err = validate_fee_schedule(None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid request: fee_schedule: required")
        );
    }
}
